/// A value safe for one TSV cell: tabs and line breaks (CR, LF and CR LF) become spaces.
public func tsvField(_ text: String) -> String {
    func isBreak(_ c: Character) -> Bool { c == "\t" || c == "\n" || c == "\r" || c == "\r\n" }
    guard text.contains(where: isBreak) else { return text }
    return String(text.map { isBreak($0) ? " " : $0 })
}
