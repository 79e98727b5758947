import FedRecSupport

/// Line and field splitting for the delimited text formats fedrec reads (MovieLens TSV,
/// `::`-separated `.dat`, CSV with RFC 4180 quotes, `|`-separated `u.item`).
public enum Delimiter: Sendable, Equatable, CustomStringConvertible {
    case tab, comma, doubleColon, pipe, semicolon
    /// Single spaces: the one-user-per-line lists (`user item item …`), never detected,
    /// only asked for.
    case space

    public var description: String {
        switch self {
        case .tab: "tab"
        case .comma: "comma"
        case .doubleColon: "::"
        case .pipe: "|"
        case .semicolon: ";"
        case .space: "space"
        }
    }

    /// Whether fields may be `"`-quoted (RFC 4180): comma and semicolon files. In tab,
    /// `|` and `::` files a quote is an ordinary character.
    var allowsQuotes: Bool { self == .comma || self == .semicolon }

    /// The delimiter of a line: `::` first, then tab, `|`, comma, semicolon.
    static func detect<C: Collection>(_ line: C) -> Delimiter? where C.Element == UInt8 {
        var previousColon = false
        var seenTab = false, seenPipe = false, seenComma = false, seenSemicolon = false
        for byte in line {
            if byte == UInt8(ascii: ":") {
                if previousColon { return .doubleColon }
                previousColon = true
                continue
            }
            previousColon = false
            switch byte {
            case 0x09: seenTab = true
            case UInt8(ascii: "|"): seenPipe = true
            case UInt8(ascii: ","): seenComma = true
            case UInt8(ascii: ";"): seenSemicolon = true
            default: break
            }
        }
        if seenTab { return .tab }
        if seenPipe { return .pipe }
        if seenComma { return .comma }
        if seenSemicolon { return .semicolon }
        return nil
    }
}

/// Iterates over the lines of a byte buffer (LF or CRLF), with 1-based line numbers.
/// With `quotes`, a line break inside a `"`-quoted field (RFC 4180) does not end the
/// record: the record runs on to the line break after the closing quote.
public struct LineScanner {
    let bytes: UnsafeRawBufferPointer
    var offset = 0
    /// The line number the record last returned starts on.
    public var lineNumber = 0
    private var nextLineNumber = 1
    let quotes: Bool

    public init(_ bytes: UnsafeRawBufferPointer, quotes: Bool = false) {
        self.bytes = bytes
        self.quotes = quotes
        // Skip a UTF-8 byte-order mark.
        if bytes.count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF { offset = 3 }
    }

    /// The next line's (record's) byte range, without its terminator.
    public mutating func next() -> Range<Int>? {
        guard offset < bytes.count else { return nil }
        let start = offset
        var end = start
        var inQuotes = false, breaks = 0
        while end < bytes.count {
            let byte = bytes[end]
            if byte == 0x0A {
                guard inQuotes else { break }
                breaks += 1
            } else if quotes && byte == UInt8(ascii: "\"") {
                // A doubled quote inside a quoted field toggles twice: still inside.
                inQuotes.toggle()
            }
            end += 1
        }
        offset = end + 1
        lineNumber = nextLineNumber
        nextLineNumber += 1 + breaks
        var stop = end
        if stop > start && bytes[stop - 1] == 0x0D { stop -= 1 }
        return start..<stop
    }
}

/// Splits one line into fields. CSV fields may be quoted with `"` (doubled to escape).
public func splitFields(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ delimiter: Delimiter) -> [Substring] {
    var problem: String?
    return splitFields(bytes, range, delimiter, problem: &problem)
}

/// Splits one record into fields, noting in `problem` where its quoting breaks RFC 4180
/// (the field is then read as the bytes say): a quoted field that never closes, text
/// between a closing quote and the delimiter, a quote inside an unquoted field. Spaces
/// and tabs around a quoted field are allowed and dropped.
public func splitFields(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ delimiter: Delimiter, problem: inout String?) -> [Substring] {
    var fields: [Substring] = []
    var field: [UInt8] = []
    var i = range.lowerBound
    let end = range.upperBound
    let separator: UInt8
    switch delimiter {
    case .tab: separator = 0x09
    case .comma: separator = UInt8(ascii: ",")
    case .doubleColon: separator = UInt8(ascii: ":")
    case .pipe: separator = UInt8(ascii: "|")
    case .semicolon: separator = UInt8(ascii: ";")
    case .space: separator = 0x20
    }
    let quotes = delimiter.allowsQuotes
    var inQuotes = false
    var atFieldStart = true
    var closed = false  // the field's closing quote has been read
    func note(_ what: String) { if problem == nil { problem = what } }
    while i < end {
        let byte = bytes[i]
        if quotes && byte == UInt8(ascii: "\"") {
            if inQuotes {
                if i + 1 < end && bytes[i + 1] == UInt8(ascii: "\"") {
                    field.append(byte)
                    i += 2
                    continue
                }
                inQuotes = false
                closed = true
                i += 1
                continue
            } else if atFieldStart {
                inQuotes = true
                atFieldStart = false
                field.removeAll(keepingCapacity: true)  // spaces before the quote
                i += 1
                continue
            }
            note(closed ? "text after a closing quote" : "a '\"' inside an unquoted field (quote the whole field and double the quote)")
        }
        if !inQuotes && byte == separator
            && (delimiter != .doubleColon || (i + 1 < end && bytes[i + 1] == separator))
        {
            fields.append(Substring(decodeText(field)))
            field.removeAll(keepingCapacity: true)
            i += delimiter == .doubleColon ? 2 : 1
            atFieldStart = true
            closed = false
            continue
        }
        if closed && !inQuotes && byte != 0x20 && byte != 0x09 { note("text after a closing quote") }
        if !(closed && !inQuotes) { field.append(byte) }
        if byte != 0x20 && byte != 0x09 { atFieldStart = false }
        i += 1
    }
    if inQuotes { note("a quoted field that never closes") }
    fields.append(Substring(decodeText(field)))
    return fields
}

/// UTF-8 text, or Latin-1 where the bytes are not valid UTF-8 (MovieLens 100K and 1M
/// titles are ISO-8859-1).
func decodeText<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
    if let text = String(validating: bytes, as: UTF8.self) { return text }
    return String(String.UnicodeScalarView(bytes.map { Unicode.Scalar($0) }))
}

/// The non-blank lines of a delimited file split into fields, with 1-based line numbers
/// and the delimiter detected from the first of them: the loop the item-file readers
/// (catalogues, item texts) share.
struct DelimitedRows {
    let bytes: UnsafeRawBufferPointer
    private var scanner: LineScanner
    /// The delimiter, known once the first row has been read.
    private(set) var delimiter: Delimiter?

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        scanner = LineScanner(bytes)
    }

    /// The next row, or nil at the end.
    /// - Parameter undetectable: the error for a first row that shows no delimiter,
    ///   given its line number.
    mutating func next(undetectable: (Int) -> FedRecError) throws -> (fields: [Substring], line: Int)? {
        while let line = scanner.next() {
            if RatingsReader.isBlank(bytes, line) { continue }
            if delimiter == nil {
                guard let found = Delimiter.detect(bytes[line]) else { throw undetectable(scanner.lineNumber) }
                delimiter = found
            }
            return (splitFields(bytes, line, delimiter!), scanner.lineNumber)
        }
        return nil
    }
}
