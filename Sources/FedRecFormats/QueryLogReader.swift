import FedRecSupport

/// One query of a log: who asked, what they typed, the item it led to, and when.
public struct QueryEvent: Sendable, Equatable {
    /// The raw user id.
    public var user: String
    /// The raw item id.
    public var item: String
    /// The query text, runs of white space folded to one space.
    public var text: String
    public var time: Int64

    public init(user: String, item: String, text: String, time: Int64) {
        self.user = user
        self.item = item
        self.text = text
        self.time = time
    }
}

/// Reads a query log (user, query text, item, time) from a CSV or TSV file with a header
/// naming its columns: MovieLens `tags.csv` (`userId,movieId,tag,timestamp`) is one, the
/// tag being the query text and the tagged movie the item it found; any file whose header
/// names a user column, an item column, a text column (`query`, `tag`, `text`, …) and a
/// time column is another.
public enum QueryLogReader {
    /// Header names of the text column, in order of preference.
    public static let textNames = ["query", "tag", "text", "search", "keywords"]

    /// The events in file order; lines whose text is empty (after folding white space) are
    /// skipped.
    /// - Throws: `.badData` naming the file and line for a header that lacks a column, a
    ///   line with too few fields, an empty id or a time that is not an integer;
    ///   `.emptyInput` when no query is left; `.noInput` when the file is missing.
    /// - Complexity: O(file size).
    public static func read(path: String) throws -> [QueryEvent] {
        let file = try CompressedInput.open(path: path).file
        defer { withExtendedLifetime(file) {} }
        func bad(_ line: Int, _ what: String) -> FedRecError { FedRecError(.badData, file: path, "line \(line): \(what)") }
        var rows = DelimitedRows(file.bytes)
        var columns: (user: Int, item: Int, text: Int, time: Int)?
        var events: [QueryEvent] = []
        let undetectable = { bad($0, "cannot tell the field delimiter (expected a comma- or tab-separated header)") }
        while let (fields, number) = try rows.next(undetectable: undetectable) {
            guard let (u, i, t, s) = columns else {
                let lowered = fields.map { $0.trimmingSpaces.lowercased() }
                func column(_ names: [String], _ what: String) throws -> Int {
                    guard let at = names.lazy.compactMap({ lowered.firstIndex(of: $0) }).first else {
                        throw bad(number, "header names no \(what) column (one of \(names.joined(separator: ", ")))")
                    }
                    return at
                }
                columns = (
                    try column(RatingsColumns.userNames, "user id"), try column(RatingsColumns.itemNames, "item id"),
                    try column(textNames, "query text"), try column(RatingsColumns.timeNames, "time")
                )
                continue
            }
            guard fields.count > max(u, i, t, s) else {
                throw bad(number, "expected \(max(u, i, t, s) + 1) fields, found \(fields.count)")
            }
            let user = fields[u].trimmingSpaces, item = fields[i].trimmingSpaces
            guard !user.isEmpty, !item.isEmpty else { throw bad(number, "empty user or item id") }
            guard let time = Int64(fields[s].trimmingSpaces) else { throw bad(number, "time \"\(fields[s])\" is not an integer") }
            let text = fields[t].split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }).joined(separator: " ")
            guard !text.isEmpty else { continue }
            events.append(QueryEvent(user: user, item: item, text: text, time: time))
        }
        guard !events.isEmpty else { throw FedRecError(.emptyInput, file: path, "holds no query") }
        return events
    }
}
