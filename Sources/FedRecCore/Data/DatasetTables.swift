/// The id tables of a dataset directory: `items.tsv` (index, raw id, title, genres) and
/// `users.tsv` (index, raw id or pseudonym, client, shard).
public struct DatasetTables: Sendable {
    public struct Item: Sendable { public var id: String; public var title: String; public var genres: String }
    public struct User: Sendable { public var index: Int32; public var client: Int32; public var shard: Int }

    public var items: [Item]
    public var users: [String: User]

    public init(directory: String, manifest: DatasetManifest) throws {
        var items: [Item] = []
        items.reserveCapacity(manifest.items)
        try Self.readTSV(directory + "/items.tsv", columns: 4) { fields, line in
            guard let index = Int(fields[0]), index == items.count else {
                throw FedRecError(.badData, file: directory + "/items.tsv", "line \(line): index \(fields[0]) out of order")
            }
            items.append(Item(id: fields[1], title: fields[2], genres: fields[3]))
        }
        self.items = items
        guard items.count == manifest.items else {
            throw FedRecError(.badData, file: directory + "/items.tsv", "holds \(items.count) items, dataset.json says \(manifest.items)")
        }
        var users: [String: User] = [:]
        try Self.readTSV(directory + "/users.tsv", columns: 4) { fields, line in
            guard let index = Int32(fields[0]), let client = Int32(fields[2]), let shard = Int(fields[3]) else {
                throw FedRecError(.badData, file: directory + "/users.tsv", "line \(line): bad numbers")
            }
            users[fields[1]] = User(index: index, client: client, shard: shard)
        }
        self.users = users
    }

    static func readTSV(_ path: String, columns: Int, _ row: ([String], Int) throws -> Void) throws {
        let file = try MappedFile(path: path)
        defer { withExtendedLifetime(file) {} }
        var scanner = LineScanner(file.bytes)
        _ = scanner.next()  // header
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
