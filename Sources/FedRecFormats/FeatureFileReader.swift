import FedRecSupport

/// Reads a table of categorical features, one row an entity (a user or an item): the
/// first column the entity's raw id, every other column a field. CSV, TSV or
/// pipe-separated (told from the first row), plain or compressed.
///
/// With `names` empty the first row is a header naming the id column and the fields; with
/// `names` given there is no header and column i + 1 is field `names[i]` (a name `-`
/// skips its column, e.g. MovieLens `u.user`'s zip code:
/// `age,gender,occupation,-`). A value holding `|` is several values of its field
/// (genres). Each row becomes the tokens `field=value`, in column order; empty values are
/// left out.
public enum FeatureFileReader {
    /// - Returns: each id's tokens, and the field names in column order.
    /// - Throws: `.badData` naming the file and line for a short row, an empty id, a
    ///   repeated id, or a field name that is empty or holds `=`; `.emptyInput` for no rows.
    public static func read(path: String, names: [String] = []) throws -> (features: [String: [String]], fields: [String]) {
        let file = try CompressedInput.open(path: path).file
        return try read(file: file, path: path, names: names)
    }

    /// Reads a table already opened from `path` (the name in errors).
    public static func read(file: MappedFile, path: String, names: [String] = []) throws -> (features: [String: [String]], fields: [String]) {
        defer { withExtendedLifetime(file) {} }
        func bad(_ line: Int, _ what: String) -> FedRecError { FedRecError(.badData, file: path, "line \(line): \(what)") }
        var rows = DelimitedRows(file.bytes)
        var fields = names
        var table: [String: [String]] = [:]
        var first = names.isEmpty
        while let (row, number) = try rows.next(undetectable: { bad($0, "cannot tell the field delimiter") }) {
            if first {
                first = false
                fields = row.dropFirst().map { String($0.trimmingSpaces) }
                guard !fields.isEmpty else { throw bad(number, "header names no feature column after the id") }
                for name in fields where name.isEmpty || name.contains("=") {
                    throw bad(number, "feature name \"\(name)\" is empty or holds =")
                }
                continue
            }
            guard row.count > fields.count else { throw bad(number, "expected \(fields.count + 1) fields, found \(row.count)") }
            let id = String(row[0].trimmingSpaces)
            guard !id.isEmpty else { throw bad(number, "empty id") }
            var tokens: [String] = []
            for (c, name) in fields.enumerated() where name != "-" {
                for value in row[c + 1].split(separator: "|") {
                    let text = value.trimmingSpaces
                    if !text.isEmpty { tokens.append(name + "=" + text) }
                }
            }
            guard table.updateValue(tokens, forKey: id) == nil else { throw bad(number, "id \(id) appears twice") }
        }
        guard !table.isEmpty else { throw FedRecError(.emptyInput, file: path, "holds no rows of features") }
        return (table, fields.filter { $0 != "-" })
    }

    /// Public item features derived from a catalogue entry: `genre=G` for each genre and
    /// `year=YYYY` from a title ending in `(YYYY)` (MovieLens).
    public static func catalogueTokens(_ info: ItemInfo) -> [String] {
        var tokens = info.genres.map { "genre=" + $0 }
        let title = info.title[...].trimmingSpaces
        if title.hasSuffix(")"), let open = title.lastIndex(of: "(") {
            let year = title[title.index(after: open)..<title.index(before: title.endIndex)]
            if year.count == 4, year.allSatisfy(\.isNumber) { tokens.append("year=" + year) }
        }
        return tokens
    }
}
