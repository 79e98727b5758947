import FedRecSupport

/// Raw identifiers interned to dense indices in order of first appearance.
public struct IdTable: Sendable {
    public private(set) var ids: [String] = []
    private var index: [String: Int32] = [:]

    public init() {}

    public var count: Int { ids.count }

    /// The index of `id`, adding it if new.
    public mutating func intern(_ id: String) -> Int32 {
        if let existing = index[id] { return existing }
        let next = Int32(ids.count)
        ids.append(id)
        index[id] = next
        return next
    }

    public func lookup(_ id: String) -> Int32? { index[id] }
}

/// Interaction events in columns, with raw user and item ids interned. Where a file has no
/// rating column every event counts 1 (implicit feedback); with no time column, 0.
public struct RatingsLog: Sendable {
    public var users = IdTable()
    public var items = IdTable()
    public var user: [Int32] = []
    public var item: [Int32] = []
    public var rating: [Float] = []
    public var time: [Int64] = []
    /// Whether every file read so far had a rating column / a time column.
    public var hasRatings = true
    public var hasTimes = true
    /// Events read so far per interned user, for the positions of list layouts.
    var eventsPerUser: [Int64] = []

    public init() {}

    public var count: Int { user.count }
}

/// Column names to look for in a header; nil means "the usual names" (MovieLens and
/// common spellings).
public struct RatingsColumns: Sendable, Equatable {
    public var user: String?
    public var item: String?
    public var rating: String?
    public var time: String?

    public init(user: String? = nil, item: String? = nil, rating: String? = nil, time: String? = nil) {
        self.user = user
        self.item = item
        self.rating = rating
        self.time = time
    }

    var isDefault: Bool { user == nil && item == nil && rating == nil && time == nil }

    static let userNames = ["userid", "user_id", "user", "uid", "customer_id", "visitorid"]
    static let itemNames = ["movieid", "itemid", "item_id", "item", "movie_id", "iid", "product_id"]
    static let ratingNames = ["rating", "score", "value", "stars"]
    static let timeNames = ["timestamp", "time", "ts", "date", "datetime"]
}

/// A rating scale declared by the user (`fl-partition --rating-min/--rating-max`): a
/// rating outside it is a bad line, refused with its line number, not a new extreme of
/// the scale. A bound left nil is not checked.
public struct RatingScale: Sendable, Equatable {
    public var min: Float?
    public var max: Float?

    public init(min: Float? = nil, max: Float? = nil) {
        self.min = min
        self.max = max
    }

    public func contains(_ rating: Float) -> Bool {
        (min.map { rating >= $0 } ?? true) && (max.map { rating <= $0 } ?? true)
    }

    var text: String { "[\(min.map { "\($0)" } ?? "-inf"), \(max.map { "\($0)" } ?? "inf")]" }
}

/// How the events are laid out in a ratings file.
public enum InteractionLayout: String, Sendable, CaseIterable {
    /// One event per line, delimited: MovieLens `u.data`, `ratings.dat`, `ratings.csv`, or
    /// any CSV/TSV whose header names its columns.
    case events
    /// One user per line, `user item item …` separated by spaces, items in the user's
    /// order (the files LightGCN, NGCF and S3-Rec publish). Implicit feedback; an event's
    /// position on its user's lines stands in for its time, so leave-last-out holds out
    /// the last item of the line.
    case lists
    /// Jester's user × joke matrix (Goldberg et al. 2001, "Eigentaste"): per line, the
    /// number of jokes the user rated, then one rating in −10…10 per joke, 99 for not
    /// rated; comma-separated, no header, the line number is the user and the column the
    /// joke (from 1).
    case jester
}

/// How a ratings file was read, for `dataset.json`.
public struct RatingsFormat: Sendable, Equatable {
    public var layout: InteractionLayout = .events
    public var delimiter: Delimiter
    public var header: Bool
    public var columns: [String]
}

/// Reads ratings in the MovieLens formats (`u.data`, `ratings.dat`, `ratings.csv`) and any
/// CSV/TSV with a header naming its columns.
public enum RatingsReader {
    /// Appends the events of `path` (`-` for stdin) to `log`.
    /// - Returns: what was detected about the file.
    /// - Throws: `.noInput` for a missing file, `.emptyInput` when it holds no events,
    ///   `.badData` with the line number for a line that does not parse.
    @discardableResult
    public static func read(path: String, columns: RatingsColumns = .init(), scale: RatingScale = .init(),
                            layout: InteractionLayout = .events, into log: inout RatingsLog) throws -> RatingsFormat {
        let file = try CompressedInput.open(path: path).file
        return try file.withBytes { try read(bytes: $0, path: path, columns: columns, scale: scale, layout: layout, into: &log) }
    }

    /// - Parameters:
    ///   - scale: the declared scale; a rating outside it is `.badData` with its line.
    ///   - layout: how the events are laid out; `columns` apply to `.events` only.
    public static func read(bytes: UnsafeRawBufferPointer, path: String, columns: RatingsColumns, scale: RatingScale = .init(),
                            layout: InteractionLayout = .events, into log: inout RatingsLog) throws -> RatingsFormat {
        switch layout {
        case .events: return try readEvents(bytes: bytes, path: path, columns: columns, scale: scale, into: &log)
        case .lists: return try readLists(bytes: bytes, path: path, into: &log)
        case .jester: return try readJester(bytes: bytes, path: path, scale: scale, into: &log)
        }
    }

    static func readEvents(bytes: UnsafeRawBufferPointer, path: String, columns: RatingsColumns, scale: RatingScale,
                           into log: inout RatingsLog) throws -> RatingsFormat {
        func bad(_ line: Int, _ what: String) -> FedRecError { FedRecError(.badData, file: path, "line \(line): \(what)") }
        // The delimiter comes from the first non-blank line; then the records are read
        // again, quote-aware for CSV (a quoted field may hold a line break, RFC 4180).
        var probe = LineScanner(bytes)
        var firstPhysical: Range<Int>?
        while let line = probe.next() {
            if !isBlank(bytes, line) { firstPhysical = line; break }
        }
        guard let firstPhysical else { throw FedRecError(.emptyInput, file: path, "holds no ratings") }
        guard let delimiter = Delimiter.detect(bytes[firstPhysical]) else {
            throw bad(probe.lineNumber, "cannot tell the field delimiter (expected tab, comma, '::' or '|'; for one user per line, `user item item …`, use --format lists)")
        }
        var scanner = LineScanner(bytes, quotes: delimiter.allowsQuotes)
        var firstLine = firstPhysical
        while let line = scanner.next() {
            if !isBlank(bytes, line) { firstLine = line; break }
        }
        let firstNumber = scanner.lineNumber
        func splitRecord(_ line: Range<Int>, number: Int) throws -> [Substring] {
            var problem: String?
            let fields = splitFields(bytes, line, delimiter, problem: &problem)
            if let problem { throw bad(number, problem) }
            return fields
        }
        let firstFields = try splitRecord(firstLine, number: firstNumber)
        let lowered = firstFields.map { $0.trimmingSpaces.lowercased() }
        func find(_ name: String?, _ defaults: [String], required: Bool, what: String) throws -> Int? {
            if let name {
                guard let at = lowered.firstIndex(of: name.lowercased()) else {
                    throw bad(firstNumber, "header has no column named \(name) for the \(what) (columns: \(firstFields.joined(separator: ", ")))")
                }
                return at
            }
            return lowered.firstIndex { defaults.contains($0) }
        }
        let userAt: Int, itemAt: Int
        var ratingAt: Int?, timeAt: Int?
        let hasHeader: Bool
        let looksLikeHeader = lowered.contains { RatingsColumns.userNames.contains($0) } && lowered.contains { RatingsColumns.itemNames.contains($0) }
        if !columns.isDefault || looksLikeHeader {
            guard let u = try find(columns.user, RatingsColumns.userNames, required: true, what: "user id"),
                let i = try find(columns.item, RatingsColumns.itemNames, required: true, what: "item id")
            else {
                throw bad(firstNumber, "header needs a user and an item column (name them with --user-col and --item-col)")
            }
            userAt = u
            itemAt = i
            ratingAt = try find(columns.rating, RatingsColumns.ratingNames, required: false, what: "rating")
            timeAt = try find(columns.time, RatingsColumns.timeNames, required: false, what: "timestamp")
            hasHeader = true
        } else {
            // MovieLens without a header: user, item, rating, timestamp.
            guard firstFields.count >= 2 else { throw bad(firstNumber, "expected at least user and item fields") }
            userAt = 0
            itemAt = 1
            ratingAt = firstFields.count >= 3 ? 2 : nil
            timeAt = firstFields.count >= 4 ? 3 : nil
            hasHeader = false
        }
        let needed = [userAt, itemAt, ratingAt ?? 0, timeAt ?? 0].max()! + 1
        let startCount = log.count
        func add(_ line: Range<Int>, number: Int) throws {
            let fields = try splitRecord(line, number: number)
            guard fields.count >= needed else {
                throw bad(number, "expected \(needed) \(delimiter) separated fields, found \(fields.count)")
            }
            let userId = fields[userAt].trimmingSpaces, itemId = fields[itemAt].trimmingSpaces
            guard !userId.isEmpty else { throw bad(number, "empty user id") }
            guard !itemId.isEmpty else { throw bad(number, "empty item id") }
            var rating: Float = 1
            if let ratingAt {
                let text = fields[ratingAt].trimmingSpaces
                guard let value = Float(text), value.isFinite else { throw bad(number, "rating \"\(text)\" is not a number") }
                guard scale.contains(value) else { throw bad(number, "rating \(text) is outside the declared scale \(scale.text)") }
                rating = value
            }
            var time: Int64 = 0
            if let timeAt {
                let text = fields[timeAt].trimmingSpaces
                if let value = Int64(text) {
                    time = value
                } else if let value = Double(text), value.isFinite, abs(value) < 9e18 {
                    time = Int64(value)
                } else {
                    throw bad(number, "timestamp \"\(text)\" is not a number")
                }
            }
            log.user.append(log.users.intern(userId))
            log.item.append(log.items.intern(itemId))
            log.rating.append(rating)
            log.time.append(time)
        }
        if !hasHeader { try add(firstLine, number: firstNumber) }
        while let line = scanner.next() {
            if isBlank(bytes, line) { continue }
            try add(line, number: scanner.lineNumber)
        }
        guard log.count > startCount else { throw FedRecError(.emptyInput, file: path, "holds a header but no ratings") }
        if ratingAt == nil { log.hasRatings = false }
        if timeAt == nil { log.hasTimes = false }
        let names = hasHeader ? firstFields.map(String.init) : ["user", "item", "rating", "timestamp"].prefix(firstFields.count).map { $0 }
        return RatingsFormat(delimiter: delimiter, header: hasHeader, columns: names)
    }

    static func isBlank(_ bytes: UnsafeRawBufferPointer, _ line: Range<Int>) -> Bool {
        line.allSatisfy { bytes[$0] == 0x20 || bytes[$0] == 0x09 }
    }
}

extension Substring {
    /// The text without leading and trailing spaces and tabs.
    public var trimmingSpaces: String {
        var s = self[...]
        while let first = s.first, first == " " || first == "\t" { s = s.dropFirst() }
        while let last = s.last, last == " " || last == "\t" { s = s.dropLast() }
        return String(s)
    }
}
