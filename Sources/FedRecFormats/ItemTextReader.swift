import FedRecSupport

/// Reads free text about items (tags, descriptions, plots) keyed by raw item id, from a
/// CSV or TSV file: MovieLens `tags.csv` (`userId,movieId,tag,timestamp`), or any file
/// whose header names an item id column and a text column, or a headerless file of
/// `id<TAB>text` lines.
public enum ItemTextReader {
    /// Header names of the text column, in order of preference.
    public static let textNames = ["tag", "tags", "text", "description", "overview", "plot", "summary", "keywords"]

    /// The texts of every item the file names, in file order, each distinct text once
    /// (compared without case; the first spelling is kept).
    /// - Returns: raw item id → its texts; items the file does not name are absent.
    /// - Throws: `FedRecError(.badData)` naming the file and line for a header without a
    ///   text column, an undetectable delimiter or a line with too few fields;
    ///   `.emptyInput` when the file holds no text; `.noInput` when it is missing.
    /// - Complexity: O(file size).
    public static func read(path: String) throws -> [String: [String]] {
        let file = try CompressedInput.open(path: path).file
        defer { withExtendedLifetime(file) {} }
        let bytes = file.bytes
        func bad(_ line: Int, _ what: String) -> FedRecError { FedRecError(.badData, file: path, "line \(line): \(what)") }
        var rows = DelimitedRows(bytes)
        var idAt = 0, textAt = 1
        var headerless = false
        var first = true
        var texts: [String: [String]] = [:]
        var seen: [String: Set<String>] = [:]
        let undetectable = { bad($0, "cannot tell the field delimiter (expected id and text separated by a tab or comma)") }
        while let (fields, number) = try rows.next(undetectable: undetectable) {
            if first {
                first = false
                let lowered = fields.map { $0.trimmingSpaces.lowercased() }
                if let id = lowered.firstIndex(where: { RatingsColumns.itemNames.contains($0) || $0 == "id" }) {
                    guard let text = textNames.lazy.compactMap({ name in lowered.firstIndex(of: name) }).first else {
                        throw bad(number, "header names no text column (one of \(textNames.joined(separator: ", ")))")
                    }
                    idAt = id
                    textAt = text
                    continue
                }
                headerless = true
            }
            guard fields.count > max(idAt, textAt) else {
                throw bad(number, "expected an item id and a text, found \(fields.count) field\(fields.count == 1 ? "" : "s")")
            }
            let id = fields[idAt].trimmingSpaces
            guard !id.isEmpty else { throw bad(number, "empty item id") }
            // Without a header the text is the rest of the line, delimiters and all.
            let raw = headerless && fields.count > 2 ? fields[1...].joined(separator: rows.delimiter!.text) : String(fields[textAt])
            let text = raw[...].trimmingSpaces
            guard !text.isEmpty else { continue }
            if seen[id, default: []].insert(text.lowercased()).inserted {
                texts[id, default: []].append(text)
            }
        }
        guard !texts.isEmpty else { throw FedRecError(.emptyInput, file: path, "holds no item text") }
        return texts
    }
}

extension Delimiter {
    /// The delimiter as it appears in a line.
    var text: String {
        switch self {
        case .tab: "\t"
        case .comma: ","
        case .doubleColon: "::"
        case .pipe: "|"
        case .semicolon: ";"
        case .space: " "
        }
    }
}
