import FedRecFormats
import FedRecSupport

/// One query of a client's log as a shard stores it: the query text, the dense index of
/// the item it led to (the one relevant item), its time, and whether it is held out.
public struct Query: Sendable, Equatable {
    public var item: Int32
    public var text: String
    public var time: Int64
    /// A test query (at or after the user's cut), never trained on.
    public var isTest: Bool

    public init(item: Int32, text: String, time: Int64, isTest: Bool) {
        self.item = item
        self.text = text
        self.time = time
        self.isTest = isTest
    }
}

/// How `fl-partition --queries` attaches a query log to a dataset, and what it found.
///
/// The hold-out is per user and by time, as `bench/quality-search per-user` makes it: a
/// user with at least `minimum` queries has the latest `testFraction` of them (sorted by
/// time, file order among equal times) as test queries: every query from the time
/// `T_u` of the event at position ⌊testFraction'·n⌋ on, with testFraction' = 1 −
/// testFraction, so ties go to the test side; everyone else's queries are all training.
public struct QueryLogOptions: Sendable, Equatable {
    /// The query log (CSV/TSV with user, item, text and time columns).
    public var path: String
    /// Fraction of each user's latest queries held out as test queries.
    public var testFraction = 0.2
    /// Users with fewer queries keep them all for training.
    public var minimum = 5

    public init(path: String) { self.path = path }

    /// What the dataset id and `dataset.json` record of the options.
    public var json: JSONValue {
        ["file": .string(path == "-" ? "-" : baseName(path)), "test_fraction": .number(testFraction), "min_per_user": .number(Double(minimum))]
    }
}

/// The queries of a dataset's users and how many were kept.
public struct QueryAssignment: Sendable {
    /// Dense user index → the user's queries, ordered by (time, file order).
    public var byUser: [[Query]]
    public var train = 0
    public var test = 0
    /// Queries of users the ratings do not have, or of items outside the dataset: dropped.
    public var unknownUsers = 0
    public var unknownItems = 0

    /// The counts as `dataset.json` records them under `queries`.
    public func json(options: QueryLogOptions) -> JSONValue {
        var object = options.json.objectValue ?? [:]
        object["train"] = .number(Double(train))
        object["test"] = .number(Double(test))
        object["users"] = .number(Double(byUser.filter { !$0.isEmpty }.count))
        object["test_users"] = .number(Double(byUser.filter { $0.contains(where: \.isTest) }.count))
        object["dropped_unknown_users"] = .number(Double(unknownUsers))
        object["dropped_unknown_items"] = .number(Double(unknownItems))
        return .object(object)
    }
}

/// Query logs: the per-user time hold-out and the shard member `KEY.queries.jsonl`.
public enum QueryLog {
    /// The member's name after `KEY.` in a shard (listed and checksummed in `KEY.json`'s
    /// `files` like every member).
    public static let memberSuffix = "queries.jsonl"

    /// Splits `events` per user by time and maps them to dense indices.
    /// - Parameters:
    ///   - userIndex, itemIndex: raw id → dense index of the dataset.
    ///   - users: the dataset's user count.
    public static func assign(
        _ events: [QueryEvent], options: QueryLogOptions, userIndex: [String: Int], itemIndex: [String: Int32], users: Int
    ) -> QueryAssignment {
        var result = QueryAssignment(byUser: [[Query]](repeating: [], count: users))
        var positions: [String: [Int]] = [:]
        for (p, event) in events.enumerated() { positions[event.user, default: []].append(p) }
        for (user, list) in positions {
            // Stable: equal times keep file order.
            let ordered = list.enumerated().sorted { (events[$0.element].time, $0.offset) < (events[$1.element].time, $1.offset) }.map(\.element)
            let cut: Int64? = ordered.count >= options.minimum ? events[ordered[ordered.count * Int((1 - options.testFraction) * 1000 + 0.5) / 1000]].time : nil
            guard let u = userIndex[user] else {
                result.unknownUsers += ordered.count
                continue
            }
            for p in ordered {
                let event = events[p]
                guard let item = itemIndex[event.item] else {
                    result.unknownItems += 1
                    continue
                }
                let isTest = cut.map { event.time >= $0 } ?? false
                result.byUser[u].append(Query(item: item, text: event.text, time: event.time, isTest: isTest))
                if isTest { result.test += 1 } else { result.train += 1 }
            }
        }
        return result
    }

    /// The member's bytes: one JSON object a line, `{"item": i, "test": bool, "text": …, "time": t}`
    /// (canonical: keys sorted, no white space).
    public static func encode(_ queries: [Query]) -> [UInt8] {
        var text = ""
        for q in queries {
            let line: JSONValue = ["item": .number(Double(q.item)), "test": .bool(q.isTest), "text": .string(q.text), "time": .number(Double(q.time))]
            text += line.canonicalText + "\n"
        }
        return Array(text.utf8)
    }

    /// Reads a member written by `encode`.
    /// - Throws: `.corrupt` naming `file` for a line that is not such an object or an item
    ///   index outside `items`.
    public static func decode(_ bytes: [UInt8], file: String, items: Int?) throws -> [Query] {
        let lines = try bytes.withUnsafeBytes { try JSONLines.parse($0, path: file) }
        return try lines.enumerated().map { n, line in
            guard let item = line["item"]?.intValue, let item32 = Int32(exactly: item), item32 >= 0, items.map({ item < $0 }) ?? true,
                let test = line["test"]?.boolValue, let text = line["text"]?.stringValue, let time = line["time"]?.intValue
            else {
                throw FedRecError(.corrupt, file: file, "\(memberSuffix) line \(n + 1) is not a query (item index, test, text, time)")
            }
            return Query(item: item32, text: text, time: Int64(time), isTest: test)
        }
    }
}

extension Partitioner {
    /// Reads the query log of `options`, records its digest among the dataset's inputs and
    /// assigns its queries to the dataset's users (dense indices of `userOrder`, `itemOrder`).
    static func attachQueries(
        _ options: QueryLogOptions, log: RatingsLog, userOrder: [Int], itemOrder: [Int], inputDigests: inout [JSONValue]
    ) throws -> QueryAssignment {
        guard options.testFraction >= 0, options.testFraction < 1, options.minimum >= 1 else {
            throw FedRecError(.usage, "--query-test-ratio must be in [0, 1) and --query-min-per-user at least 1")
        }
        let file = try CompressedInput.open(path: options.path).file
        inputDigests.append(.string(file.withBytes { XXHash64.hex($0) }))
        let events = try QueryLogReader.read(path: options.path)
        var userIndex: [String: Int] = [:]
        for (dense, raw) in userOrder.enumerated() { userIndex[log.users.ids[raw]] = dense }
        var itemIndex: [String: Int32] = [:]
        for (dense, raw) in itemOrder.enumerated() { itemIndex[log.items.ids[raw]] = Int32(dense) }
        let assignment = QueryLog.assign(events, options: options, userIndex: userIndex, itemIndex: itemIndex, users: userOrder.count)
        guard assignment.train + assignment.test > 0 else {
            throw FedRecError(.emptyInput, file: options.path, "no query names a user and an item of the dataset")
        }
        return assignment
    }
}
