import FedRecFormats
import FedRecSupport

/// The id tables of a dataset directory: `items.tsv` (index, raw id, title, genres) and
/// `users.tsv` (index, raw id or pseudonym, client, shard).
public struct DatasetTables: Sendable {
    public struct Item: Sendable { public var id: String; public var title: String; public var genres: String }
    public struct User: Sendable { public var index: Int32; public var client: Int32; public var shard: Int }

    public var items: [Item]
    public var users: [String: User]

    public init(directory: String, manifest: DatasetManifest) throws {
        let items = try Self.readItems(directory + "/items.tsv")
        self.items = items
        guard items.count == manifest.items else {
            throw FedRecError(.badData, file: directory + "/items.tsv", "holds \(items.count) items, dataset.json says \(manifest.items)")
        }
        var users: [String: User] = [:]
        try Self.readTSV(directory + "/users.tsv", columns: 4) { fields, line in
            guard let index = Int32(fields[0]), let client = Int32(fields[2]), let shard = Int(fields[3]) else {
                throw FedRecError(.badData, file: directory + "/users.tsv", "line \(line): bad numbers")
            }
            // Indices into the dataset's tables: out of range is corrupt (84), not a crash later.
            guard index >= 0, Int(index) < max(manifest.users, 1), client >= 0, (0..<manifest.shards.count).contains(shard) else {
                throw FedRecError(.corrupt, file: directory + "/users.tsv",
                                  "line \(line): user \(index), client \(client) or shard \(shard) is outside the dataset's \(manifest.users) users and \(manifest.shards.count) shards")
            }
            users[fields[1]] = User(index: index, client: client, shard: shard)
        }
        self.users = users
    }

    /// Reads a dataset's `items.tsv`: header `index id title genres`, then one line per
    /// item with indices 0, 1, 2, … in order.
    /// - Returns: the items, element i being item index i.
    /// - Throws: `FedRecError(.badData)` naming the file and line for a wrong header, a
    ///   short line or an index out of order; `.noInput` when the file is missing.
    /// - Complexity: O(file size).
    public static func readItems(_ path: String) throws -> [Item] {
        var items: [Item] = []
        try readTSV(path, columns: 4, header: ["index", "id", "title", "genres"]) { fields, line in
            guard let index = Int(fields[0]), index == items.count else {
                throw FedRecError(.badData, file: path, "line \(line): index \(fields[0]) out of order, expected \(items.count)")
            }
            items.append(Item(id: fields[1], title: fields[2], genres: fields[3]))
        }
        return items
    }

    /// Calls `row` with the fields and line number of every non-empty line after the
    /// header; `header`, when given, must be the header's first fields.
    static func readTSV(_ path: String, columns: Int, header: [String]? = nil, _ row: ([String], Int) throws -> Void) throws {
        let file = try MappedFile(path: path)
        defer { withExtendedLifetime(file) {} }
        var scanner = LineScanner(file.bytes)
        let first = scanner.next()  // header
        if let header {
            guard first != nil else { throw FedRecError(.emptyInput, file: path, "is empty, expected the header \(header.joined(separator: " "))") }
            let found = first.map { splitFields(file.bytes, $0, .tab).map(String.init) } ?? []
            guard found.count >= header.count, Array(found.prefix(header.count)) == header else {
                throw FedRecError(.badData, file: path, "line 1: expected the header \(header.joined(separator: " ")), found \(found.prefix(header.count + 1).joined(separator: " "))")
            }
        }
        while let line = scanner.next() {
            if line.isEmpty { continue }
            let fields = splitFields(file.bytes, line, .tab).map(String.init)
            guard fields.count >= columns else {
                throw FedRecError(.badData, file: path, "line \(scanner.lineNumber): expected \(columns) fields, found \(fields.count)")
            }
            try row(fields, scanner.lineNumber)
        }
    }
}

/// A dataset directory with its `dataset.json` and id tables read once, for commands that
/// need the manifest, titles and user index together.
public struct DatasetDirectory: Sendable {
    public let path: String
    public let manifest: DatasetManifest
    public let tables: DatasetTables

    public init(path: String) throws {
        self.path = path
        manifest = try DatasetManifest.load(path)
        tables = try DatasetTables(directory: path, manifest: manifest)
    }

    /// Paths of the shard files, in `dataset.json` order.
    public var shardPaths: [String] { manifest.shards.map { path + "/" + $0.file } }
}
