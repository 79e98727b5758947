import FedRecFormats
import FedRecSupport

/// One user's data as a shard stores it.
public struct UserRecord: Sendable {
    public var user: Int32
    /// The raw user id, or its pseudonym.
    public var id: String
    public var client: Int32
    public var train: Interactions
    public var test: Interactions
    /// Interactions with cold items, held out of train and test (`KEY.cold.npy`; empty
    /// when the dataset has no cold items).
    public var cold: Interactions = Interactions()
    /// Sampled negatives for the sampled ranking protocol (may be empty).
    public var negatives: [Int32]
    /// The user's query log (`KEY.queries.jsonl`, `fl-partition --queries`; empty without).
    public var queries: [Query] = []
    /// The user's own categorical features (`field=value`, `KEY.features.txt`): private.
    public var features: [String] = []
    /// Items shown in training and not interacted with (`KEY.imp.npy`).
    public var impressions: [Int32] = []
    /// Items shown in the test period and not interacted with (`KEY.testimp.npy`).
    public var testImpressions: [Int32] = []
}

/// Streams the users of a shard in archive order, one group of files at a time, so memory
/// stays O(one user). Checks the shard header and, when given, the dataset it belongs to.
public final class ShardUserReader {
    public let path: String
    /// The shard header (`__shard__.json`).
    public let header: JSONValue
    private let reader: ShardReader
    private var pending: ShardEntry?

    /// Opens the shard at `path` (`-` for stdin).
    /// - Parameters:
    ///   - datasetId: the dataset the shard must belong to (`.mismatch` otherwise).
    ///   - items: the dataset's item count; an item index outside it is `.corrupt`.
    public convenience init(path: String, datasetId: String? = nil, items: Int? = nil) throws {
        try self.init(reader: ShardReader(path: path), datasetId: datasetId, items: items)
    }

    /// Reads the users of an opened shard (one given in memory, say), as `init(path:)`.
    public init(reader: ShardReader, datasetId: String? = nil, items: Int? = nil) throws {
        let path = reader.path
        self.path = path
        self.reader = reader
        guard let first = try reader.next() else { throw FedRecError(.emptyInput, file: path, "shard archive holds no files") }
        guard first.name == ShardLayout.headerName else {
            throw FedRecError(.wrongKind, file: path, "not a fedrec shard: first entry is \(first.name), expected \(ShardLayout.headerName)")
        }
        let header = try first.bytes.withUnsafeBytes { bytes in
            do { return try JSONValue.parse(bytes) } catch let error as FedRecError {
                throw FedRecError(.corrupt, file: path, "\(ShardLayout.headerName): \(error.message)")
            }
        }
        let sealed = header.objectValue.flatMap { JSONSeal.verify($0, key: ShardLayout.sealKey) }
        guard header["kind"]?.stringValue == "shard", header["format"]?.stringValue == FedRecFormat.name else {
            throw FedRecError(.wrongKind, file: path, "not a fedrec shard")
        }
        let version = header["format_version"]?.intValue ?? 1
        if version > FedRecFormat.version {
            throw FedRecError(.newerVersion, file: path, "written by format version \(version); this fedrec reads up to \(FedRecFormat.version)")
        }
        // Before any other value of the header is used (a newer version may seal otherwise).
        if sealed == false {
            throw FedRecError(.checksum, file: path, "\(ShardLayout.headerName) does not match its checksum: the shard is corrupt")
        }
        guard version < 3 || sealed == true else {
            throw FedRecError(.corrupt, file: path, "\(ShardLayout.headerName) of format version \(version) has no checksum: the shard is corrupt")
        }
        checksummed = version >= 3
        if let users = header["users"] {
            guard let n = users.intValue, n >= 0, n <= Int(Int32.max) else {
                throw FedRecError(.corrupt, file: path, "\(ShardLayout.headerName): users is not a count")
            }
        }
        if let shard = header["shard"] {
            guard let n = shard.intValue, n >= 0, n <= Int(Int32.max) else {
                throw FedRecError(.corrupt, file: path, "\(ShardLayout.headerName): shard is not a shard index")
            }
        }
        identity = sha256Hex(first.bytes)
        if let datasetId, header["dataset_id"]?.stringValue != datasetId {
            throw FedRecError(.mismatch, file: path, "belongs to dataset \(header["dataset_id"]?.stringValue?.prefix(12) ?? "?"), expected \(datasetId.prefix(12))")
        }
        self.header = header
        self.items = items
    }

    private let items: Int?
    private var usersRead = 0
    /// Whether every member is covered by a checksum (format version 3 and later).
    public let checksummed: Bool
    /// The shard's identity: SHA-256 (hex) of its `__shard__.json` bytes, which name the
    /// dataset and the shard's index. State files and updates record it (`shard_identity`).
    public let identity: String
    /// The shard's index in its dataset (`shard` of the header), if it says.
    public var index: Int? { header["shard"]?.intValue }
    /// The shard as state files and updates record it.
    public var origin: ShardOrigin { ShardOrigin(identity: identity, index: index) }

    /// Calls `body` once per client with the client's users (a client's users are
    /// consecutive in a shard) and the number of users read so far, to the end.
    public func forEachClient(_ body: (_ users: [UserRecord], _ usersRead: Int) throws -> Void) throws {
        var client: [UserRecord] = []
        var count = 0
        while let record = try next() {
            count += 1
            if let first = client.first, first.client != record.client {
                try body(client, count)
                client.removeAll(keepingCapacity: true)
            }
            client.append(record)
        }
        if !client.isEmpty { try body(client, count) }
    }

    /// The next user, or nil at the end of the shard.
    /// - Throws: `.corrupt` when the archive ends before the header's count of users (a
    ///   tar cut at a block boundary reads as a valid, shorter archive).
    public func next() throws -> UserRecord? {
        var entry = pending
        pending = nil
        if entry == nil { entry = try reader.next() }
        guard let first = entry else {
            if let expected = header["users"]?.intValue, expected != usersRead {
                throw FedRecError(.corrupt, file: path, "truncated: holds \(usersRead) users, its header says \(expected)")
            }
            return nil
        }
        usersRead += 1
        let key = Self.key(of: first.name)
        var files: [String: [UInt8]] = [:]
        files[String(first.name.dropFirst(key.count))] = first.bytes
        while let next = try reader.next() {
            if Self.key(of: next.name) != key { pending = next; break }
            files[String(next.name.dropFirst(key.count))] = next.bytes
        }
        func missing(_ suffix: String) -> FedRecError {
            FedRecError(.corrupt, file: path, "user \(key) has no \(key)\(suffix)")
        }
        guard let metaBytes = files[".json"] else { throw missing(".json") }
        let meta = try metaBytes.withUnsafeBytes { bytes in
            do { return try JSONValue.parse(bytes) } catch let error as FedRecError {
                throw FedRecError(.corrupt, file: path, "\(key).json: \(error.message)")
            }
        }
        if checksummed {
            guard let object = meta.objectValue,
                let good = metaBytes.withUnsafeBytes({ JSONSeal.verify(object, raw: $0, key: ShardLayout.sealKey) })
            else {
                throw FedRecError(.corrupt, file: path, "\(key).json has no checksum: the shard is corrupt")
            }
            guard good else { throw FedRecError(.checksum, file: path, "\(key).json does not match its checksum: the shard is corrupt") }
            guard let sums = meta[ShardLayout.filesKey]?.objectValue else {
                throw FedRecError(.corrupt, file: path, "\(key).json lists no checksums of the user's files")
            }
            let present = Set(files.keys.filter { $0 != ".json" })
            let listed = Set(sums.keys.map { "." + $0 })
            guard present == listed else {
                let odd = present.symmetricDifference(listed).sorted().map { key + $0 }.joined(separator: ", ")
                throw FedRecError(.corrupt, file: path, "user \(key)'s files do not match those its \(key).json lists (\(odd))")
            }
            for (suffix, expected) in sums {
                guard expected.stringValue == ShardLayout.memberChecksum(files["." + suffix] ?? []) else {
                    throw FedRecError(.checksum, file: path, "\(key).\(suffix) does not match its checksum in \(key).json: the shard is corrupt")
                }
            }
        }
        guard let user = meta["user"]?.intValue, let client = meta["client"]?.intValue, let id = meta["id"]?.stringValue else {
            throw FedRecError(.corrupt, file: path, "\(key).json lacks user, client or id")
        }
        // Dense indices are Int32 everywhere: refuse what does not fit rather than trap.
        guard let user32 = Int32(exactly: user), user32 >= 0 else {
            throw FedRecError(.corrupt, file: path, "\(key).json: user \(user) is not a user index (0...\(Int32.max))")
        }
        guard let client32 = Int32(exactly: client), client32 >= 0 else {
            throw FedRecError(.corrupt, file: path, "\(key).json: client \(client) is not a client index (0...\(Int32.max))")
        }
        guard let trainBytes = files[".train.npy"] else { throw missing(".train.npy") }
        let name = "\(path)[\(key)]"
        let train = try trainBytes.withUnsafeBytes { try Npy.interactions(Npy.decode($0, file: name), file: name) }
        let test = try files[".test.npy"].map { bytes in
            try bytes.withUnsafeBytes { try Npy.interactions(Npy.decode($0, file: name), file: name) }
        } ?? Interactions()
        let cold = try files[".cold.npy"].map { bytes in
            try bytes.withUnsafeBytes { try Npy.interactions(Npy.decode($0, file: name), file: name) }
        } ?? Interactions()
        let negatives = try files[".neg.npy"].map { bytes in
            try bytes.withUnsafeBytes { try Npy.int32s(Npy.decode($0, file: name), file: name) }
        } ?? []
        func int32s(_ suffix: String) throws -> [Int32] {
            try files[suffix].map { bytes in try bytes.withUnsafeBytes { try Npy.int32s(Npy.decode($0, file: name), file: name) } } ?? []
        }
        let impressions = try int32s("." + ShardLayout.impressionsMember)
        let testImpressions = try int32s("." + ShardLayout.testImpressionsMember)
        var features: [String] = []
        if let bytes = files["." + ShardLayout.featuresMember] {
            guard let text = String(validating: bytes, as: UTF8.self) else {
                throw FedRecError(.corrupt, file: path, "\(key).\(ShardLayout.featuresMember) is not UTF-8")
            }
            features = text.split(separator: "\n").map(String.init)
            guard features.allSatisfy({ $0.contains("=") }) else {
                throw FedRecError(.corrupt, file: path, "\(key).\(ShardLayout.featuresMember) holds a line that is not field=value")
            }
        }
        for item in train.items + test.items + cold.items + negatives + impressions + testImpressions where item < 0 || items.map({ Int(item) >= $0 }) == true {
            let range = items.map { "the dataset's \($0) items" } ?? "the item indices"
            throw FedRecError(.corrupt, file: path, "user \(key) refers to item \(item), outside \(range)")
        }
        for rating in train.ratings + test.ratings + cold.ratings where !rating.isFinite {
            throw FedRecError(.corrupt, file: path, "user \(key) has a rating \(rating), not a finite number")
        }
        var record = UserRecord(user: user32, id: id, client: client32, train: train, test: test, cold: cold, negatives: negatives,
                                features: features, impressions: impressions, testImpressions: testImpressions)
        if let bytes = files["." + QueryLog.memberSuffix] { record.queries = try QueryLog.decode(bytes, file: name, items: items) }
        return record
    }

    /// The WebDataset key of an entry: its name up to the first dot.
    /// - Complexity: O(name's length); an ASCII name (every name fedrec writes) is cut over
    ///   its UTF-8 bytes, any other by characters (a "." that a combining mark follows is
    ///   not a dot then).
    static func key(of name: String) -> String {
        let utf8 = name.utf8
        guard utf8.allSatisfy({ $0 < 0x80 }) else {
            let slash = name.lastIndex(of: "/").map { name.index(after: $0) } ?? name.startIndex
            guard let dot = name[slash...].firstIndex(of: ".") else { return name }
            return String(name[..<dot])
        }
        let slash = utf8.lastIndex(of: UInt8(ascii: "/")).map { utf8.index(after: $0) } ?? utf8.startIndex
        guard let dot = utf8[slash...].firstIndex(of: UInt8(ascii: ".")) else { return name }
        return String(name[..<dot])
    }
}
