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
        guard header["kind"]?.stringValue == "shard", header["format"]?.stringValue == FedRecFormat.name else {
            throw FedRecError(.wrongKind, file: path, "not a fedrec shard")
        }
        if let version = header["format_version"]?.intValue, version > FedRecFormat.version {
            throw FedRecError(.newerVersion, file: path, "written by format version \(version); this fedrec reads up to \(FedRecFormat.version)")
        }
        if let datasetId, header["dataset_id"]?.stringValue != datasetId {
            throw FedRecError(.mismatch, file: path, "belongs to dataset \(header["dataset_id"]?.stringValue?.prefix(12) ?? "?"), expected \(datasetId.prefix(12))")
        }
        self.header = header
        self.items = items
    }

    private let items: Int?
    private var usersRead = 0

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
        guard let userValue = meta["user"]?.intValue, let clientValue = meta["client"]?.intValue, let id = meta["id"]?.stringValue else {
            throw FedRecError(.corrupt, file: path, "\(key).json lacks user, client or id")
        }
        // Indices, not counts: 0 up to Int32.max, which every table of users and clients uses.
        guard let user = Int32(exactly: userValue), user >= 0, let client = Int32(exactly: clientValue), client >= 0 else {
            throw FedRecError(.corrupt, file: path, "\(key).json: user \(userValue) or client \(clientValue) is not an index in 0...\(Int32.max)")
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
        if let items {
            for item in train.items + test.items + cold.items + negatives where item < 0 || Int(item) >= items {
                throw FedRecError(.corrupt, file: path, "user \(key) refers to item \(item), outside the dataset's \(items) items")
            }
        }
        return UserRecord(user: user, id: id, client: client, train: train, test: test, cold: cold, negatives: negatives)
    }

    /// The WebDataset key of an entry: its name up to the first dot.
    static func key(of name: String) -> String {
        let slash = name.lastIndex(of: "/").map { name.index(after: $0) } ?? name.startIndex
        guard let dot = name[slash...].firstIndex(of: ".") else { return name }
        return String(name[..<dot])
    }
}
