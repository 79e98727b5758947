import FedRecFormats
import FedRecSupport

/// `dataset.json`: what `fl-partition` produced, so later commands know the dataset's
/// shape and files without reading the data.
public struct DatasetManifest: Sendable, Equatable {
    /// One shard file and its counts.
    public struct Shard: Sendable, Equatable {
        /// Path relative to the dataset directory.
        public var file: String
        public var clients: Int
        public var users: Int
        public var train: Int
        public var test: Int
    }

    /// Identifies this partition (inputs' checksums and every option): files that carry it
    /// refuse to mix with another dataset's.
    public var datasetId: String
    public var users: Int
    public var items: Int
    public var clients: Int
    public var train: Int
    public var test: Int
    /// `explicit` when ratings vary, `implicit` when every event counts the same.
    public var feedback: String
    public var ratingMin: Double
    public var ratingMax: Double
    public var shards: [Shard]
    /// Everything else `fl-partition` recorded (source, split, scheme, seed, counts).
    public var details: [String: JSONValue]

    static let kind = "dataset"

    /// Dense indices of the items `fl-partition --cold-items` held out of training,
    /// ascending (empty when none).
    public var coldItems: [Int32] {
        details["cold_items"]?.arrayValue?.compactMap { $0.intValue.flatMap { Int32(exactly: $0) } } ?? []
    }

    public var json: JSONValue {
        var object = details
        object["format"] = .string(FedRecFormat.name)
        object["format_version"] = .number(Double(FedRecFormat.version))
        object["kind"] = .string(Self.kind)
        object["dataset_id"] = .string(datasetId)
        object["users"] = .number(Double(users))
        object["items"] = .number(Double(items))
        object["clients"] = .number(Double(clients))
        object["interactions"] = ["train": .number(Double(train)), "test": .number(Double(test))]
        object["feedback"] = .string(feedback)
        object["rating_scale"] = [.number(ratingMin), .number(ratingMax)]
        object["shards"] = .array(shards.map {
            ["file": .string($0.file), "clients": .number(Double($0.clients)), "users": .number(Double($0.users)),
             "train": .number(Double($0.train)), "test": .number(Double($0.test))]
        })
        return .object(object)
    }

    /// Reads and checks `dataset.json` (or a directory holding it).
    public static func load(_ path: String) throws -> DatasetManifest {
        let file = path.hasSuffix(".json") ? path : path + "/dataset.json"
        let mapped = try MappedFile(path: file)
        defer { withExtendedLifetime(mapped) {} }
        let json: JSONValue
        do { json = try JSONValue.parse(mapped.bytes) } catch let error as FedRecError {
            throw FedRecError(.badData, file: file, error.message)
        }
        func bad(_ what: String) -> FedRecError { FedRecError(.badData, file: file, what) }
        guard json["format"]?.stringValue == FedRecFormat.name, json["kind"]?.stringValue == kind else {
            throw FedRecError(.wrongKind, file: file, "not a fedrec dataset.json")
        }
        guard let version = json["format_version"]?.intValue else { throw bad("no format_version") }
        guard version <= FedRecFormat.version else {
            throw FedRecError(.newerVersion, file: file, "written by format version \(version); this fedrec reads up to \(FedRecFormat.version)")
        }
        guard let id = json["dataset_id"]?.stringValue, let users = json["users"]?.intValue,
            let items = json["items"]?.intValue, let clients = json["clients"]?.intValue,
            let train = json["interactions"]?["train"]?.intValue, let test = json["interactions"]?["test"]?.intValue,
            let feedback = json["feedback"]?.stringValue, let scale = json["rating_scale"]?.arrayValue, scale.count == 2,
            let low = scale[0].doubleValue, let high = scale[1].doubleValue, let shardList = json["shards"]?.arrayValue
        else { throw bad("missing or malformed fields (dataset_id, users, items, clients, interactions, feedback, rating_scale, shards)") }
        // Counts index Int32 tables: refuse (84) what a reader could not hold rather than trap.
        func count(_ value: Int, _ name: String) throws -> Int {
            guard value >= 0, value <= FedRecFile.maximumCount else {
                throw FedRecError(.corrupt, file: file, "\(name) is \(value), outside 0...\(FedRecFile.maximumCount)")
            }
            return value
        }
        _ = try count(users, "users")
        guard items > 0 else { throw FedRecError(.corrupt, file: file, "items is \(items), expected at least 1") }
        _ = try count(items, "items")
        _ = try count(clients, "clients")
        guard train >= 0, test >= 0 else { throw FedRecError(.corrupt, file: file, "interactions are negative") }
        guard low.isFinite, high.isFinite, low <= high else {
            throw FedRecError(.corrupt, file: file, "rating_scale [\(low), \(high)] is not a finite range")
        }
        var shards: [Shard] = []
        for entry in shardList {
            guard let f = entry["file"]?.stringValue, let c = entry["clients"]?.intValue, let u = entry["users"]?.intValue,
                let tr = entry["train"]?.intValue, let te = entry["test"]?.intValue
            else { throw bad("malformed shard entry") }
            shards.append(Shard(file: f, clients: try count(c, "a shard's clients"), users: try count(u, "a shard's users"),
                                train: try count(tr, "a shard's train"), test: try count(te, "a shard's test")))
        }
        if let cold = json["cold_items"] {
            guard let list = cold.arrayValue, list.allSatisfy({ $0.intValue.map { $0 >= 0 && $0 < items } == true }) else {
                throw FedRecError(.corrupt, file: file, "cold_items must be item indices below \(items)")
            }
        }
        var details = json.objectValue ?? [:]
        for key in ["format", "format_version", "kind", "dataset_id", "users", "items", "clients", "interactions", "feedback", "rating_scale", "shards"] {
            details[key] = nil
        }
        return DatasetManifest(datasetId: id, users: users, items: items, clients: clients, train: train, test: test,
                               feedback: feedback, ratingMin: low, ratingMax: high, shards: shards, details: details)
    }
}

extension TextEmbeddingTable {
    /// Throws unless the table's rows are the items of `manifest`'s dataset.
    /// - Throws: `.shape` (83) for another number of items, `.mismatch` (86) for another dataset.
    public func requireAligned(with manifest: DatasetManifest) throws {
        try requireAligned(items: manifest.items, datasetId: manifest.datasetId)
    }
}

extension DatasetManifest {
    /// What `fl-partition` reports of the dataset written at `path`: its identity, sizes,
    /// feedback kind and, with a cold-item split, the cold items and interactions.
    public func summary(path: String) -> JSONValue {
        var members: [String: JSONValue] = [
            "dataset": .string(path), "dataset_id": .string(datasetId), "users": .number(Double(users)),
            "items": .number(Double(items)), "clients": .number(Double(clients)), "shards": .number(Double(shards.count)),
            "train": .number(Double(train)), "test": .number(Double(test)), "feedback": .string(feedback),
        ]
        if !coldItems.isEmpty {
            members["cold_items"] = .number(Double(coldItems.count))
            members["cold"] = details["cold_interactions"] ?? .null
        }
        return .object(members)
    }

    /// The paths of the shards of the dataset directory `directory`, as its manifest lists them.
    public func shardPaths(in directory: String) -> [String] {
        shards.map { directory + "/" + $0.file }
    }
}
