/// JSON lines (`*.jsonl`): one JSON value a line, each line ended by a newline. fedrec's
/// metrics logs, round records and privacy ledgers are JSON lines, appended one line at a
/// time, so a last line without its newline is a write that was cut off.
public enum JSONLines {
    /// The values of a JSON-lines file; an empty file has none.
    /// - Throws: `.noInput` / `.io` when the file cannot be read; `.corrupt` naming the line
    ///   that is not JSON or the last line when it has no newline.
    public static func read(path: String) throws -> [JSONValue] {
        let file = try MappedFile(path: path)
        return try file.withBytes { try parse($0, path: path) }
    }

    /// The values of JSON-lines bytes read from `path` (named in errors).
    public static func parse(_ bytes: UnsafeRawBufferPointer, path: String) throws -> [JSONValue] {
        var lines: [JSONValue] = []
        var start = 0
        while start < bytes.count {
            let number = lines.count + 1
            guard let end = bytes[start...].firstIndex(of: 0x0A) else {
                throw FedRecError(.corrupt, file: path, "line \(number): truncated (no newline at the end)")
            }
            do {
                lines.append(try JSONValue.parse(UnsafeRawBufferPointer(rebasing: bytes[start..<end])))
            } catch {
                throw FedRecError(.corrupt, file: path, "line \(number): not JSON (\(error))")
            }
            start = end + 1
        }
        return lines
    }
}
