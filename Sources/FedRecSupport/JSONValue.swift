/// A JSON document, parsed and printed without Foundation so output is canonical:
/// object keys sorted, numbers in shortest round-trip form, no insignificant whitespace.
/// Canonical bytes matter: safetensors headers and privacy-ledger lines are hashed.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    // MARK: Accessors

    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var doubleValue: Double? {
        if case .number(let d) = self { return d }
        return nil
    }

    /// The number as an `Int` when it is integral and in range.
    public var intValue: Int? {
        guard case .number(let d) = self, d.rounded() == d, abs(d) < 9.0e15 else { return nil }
        return Int(d)
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var objectValue: [String: JSONValue]? {
        if case .object(let o) = self { return o }
        return nil
    }

    // MARK: Printing

    /// Canonical compact text: sorted keys, no spaces.
    public var canonicalText: String {
        var out = ""
        write(to: &out, indent: nil, level: 0)
        return out
    }

    /// Indented text for files people read (`dataset.json`); keys still sorted.
    public var prettyText: String {
        var out = ""
        write(to: &out, indent: "  ", level: 0)
        return out + "\n"
    }

    private func write(to out: inout String, indent: String?, level: Int) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let d): out += JSONValue.format(d)
        case .string(let s): JSONValue.quote(s, into: &out)
        case .array(let items):
            if items.isEmpty { out += "[]"; return }
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                if let indent { out += "\n" + String(repeating: indent, count: level + 1) }
                item.write(to: &out, indent: indent, level: level + 1)
            }
            if let indent { out += "\n" + String(repeating: indent, count: level) }
            out += "]"
        case .object(let members):
            if members.isEmpty { out += "{}"; return }
            out += "{"
            for (i, key) in members.keys.sorted().enumerated() {
                if i > 0 { out += "," }
                if let indent { out += "\n" + String(repeating: indent, count: level + 1) }
                JSONValue.quote(key, into: &out)
                out += indent == nil ? ":" : ": "
                members[key]!.write(to: &out, indent: indent, level: level + 1)
            }
            if let indent { out += "\n" + String(repeating: indent, count: level) }
            out += "}"
        }
    }

    /// Integral values print without a fraction; others in Swift's shortest round-trip form.
    static func format(_ d: Double) -> String {
        if !d.isFinite { return "null" }
        if d.rounded() == d && abs(d) < 1e15 { return String(Int64(d)) }
        return "\(d)"
    }

    static func quote(_ s: String, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let c where c.value < 0x20:
                let hex = String(c.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }

    // MARK: Parsing

    /// Parses one JSON document; trailing non-space bytes are an error.
    public static func parse(_ text: String) throws -> JSONValue {
        var copy = text
        return try copy.withUTF8 { try parse(UnsafeRawBufferPointer($0)) }
    }

    /// Parses one JSON document from UTF-8 bytes.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws -> JSONValue {
        var parser = JSONParser(bytes: bytes)
        let value = try parser.value(depth: 0)
        parser.skipSpace()
        guard parser.offset == bytes.count else { throw parser.failure("unexpected text after the document") }
        return value
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { $1 }))
    }
}

/// A recursive-descent parser over UTF-8 bytes (RFC 8259).
struct JSONParser {
    let bytes: UnsafeRawBufferPointer
    var offset = 0

    init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    func failure(_ what: String) -> FedRecError {
        FedRecError(.badData, "invalid JSON at byte \(offset): \(what)")
    }

    mutating func skipSpace() {
        while offset < bytes.count {
            let c = bytes[offset]
            guard c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 else { return }
            offset += 1
        }
    }

    mutating func value(depth: Int) throws -> JSONValue {
        guard depth < 512 else { throw failure("nesting too deep") }
        skipSpace()
        guard offset < bytes.count else { throw failure("unexpected end") }
        switch bytes[offset] {
        case UInt8(ascii: "{"):
            offset += 1
            var members: [String: JSONValue] = [:]
            skipSpace()
            if offset < bytes.count && bytes[offset] == UInt8(ascii: "}") { offset += 1; return .object(members) }
            while true {
                skipSpace()
                guard offset < bytes.count, bytes[offset] == UInt8(ascii: "\"") else { throw failure("expected a key") }
                let keyOffset = offset
                let key = try string()
                skipSpace()
                guard offset < bytes.count, bytes[offset] == UInt8(ascii: ":") else { throw failure("expected ':'") }
                offset += 1
                let member = try value(depth: depth + 1)
                // RFC 8259 leaves duplicate names' meaning open; refuse them so no reader
                // silently takes one value and another reader the other.
                guard members.updateValue(member, forKey: key) == nil else {
                    offset = keyOffset
                    throw failure("duplicate key \"\(key)\"")
                }
                skipSpace()
                guard offset < bytes.count else { throw failure("unexpected end in object") }
                if bytes[offset] == UInt8(ascii: ",") { offset += 1; continue }
                if bytes[offset] == UInt8(ascii: "}") { offset += 1; return .object(members) }
                throw failure("expected ',' or '}'")
            }
        case UInt8(ascii: "["):
            offset += 1
            var items: [JSONValue] = []
            skipSpace()
            if offset < bytes.count && bytes[offset] == UInt8(ascii: "]") { offset += 1; return .array(items) }
            while true {
                items.append(try value(depth: depth + 1))
                skipSpace()
                guard offset < bytes.count else { throw failure("unexpected end in array") }
                if bytes[offset] == UInt8(ascii: ",") { offset += 1; continue }
                if bytes[offset] == UInt8(ascii: "]") { offset += 1; return .array(items) }
                throw failure("expected ',' or ']'")
            }
        case UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        default:
            return .number(try number())
        }
    }

    mutating func literal(_ word: StaticString) throws {
        let n = word.utf8CodeUnitCount
        guard offset + n <= bytes.count else { throw failure("unexpected end") }
        for i in 0..<n where bytes[offset + i] != word.utf8Start[i] {
            throw failure("unknown literal")
        }
        offset += n
    }

    /// A number by RFC 8259's grammar, `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`:
    /// no `+1`, `01`, `.5`, `1.` or `1e`; a value beyond the double range (`1e400`) is
    /// refused rather than read as infinity.
    mutating func number() throws -> Double {
        let start = offset
        func digits() -> Int {
            let from = offset
            while offset < bytes.count, bytes[offset] >= 0x30, bytes[offset] <= 0x39 { offset += 1 }
            return offset - from
        }
        func at(_ c: Unicode.Scalar) -> Bool { offset < bytes.count && bytes[offset] == UInt8(ascii: c) }
        if at("-") { offset += 1 }
        guard offset < bytes.count, bytes[offset] >= 0x30, bytes[offset] <= 0x39 else { throw failure("bad number") }
        if at("0") {
            offset += 1
            guard !(offset < bytes.count && bytes[offset] >= 0x30 && bytes[offset] <= 0x39) else {
                throw failure("bad number (leading zero)")
            }
        } else {
            _ = digits()
        }
        if at(".") {
            offset += 1
            guard digits() > 0 else { throw failure("bad number (no digit after '.')") }
        }
        if at("e") || at("E") {
            offset += 1
            if at("+") || at("-") { offset += 1 }
            guard digits() > 0 else { throw failure("bad number (no digit in the exponent)") }
        }
        // Integers of up to 15 digits (counts, indices, rounds) are exact in a double: no text.
        let negative = bytes[start] == UInt8(ascii: "-")
        let first = negative ? start + 1 : start
        if offset - first <= 15, (first..<offset).allSatisfy({ bytes[$0] >= 0x30 && bytes[$0] <= 0x39 }) {
            var integer: Int64 = 0
            for i in first..<offset { integer = integer * 10 + Int64(bytes[i] - 0x30) }
            return negative ? -Double(integer) : Double(integer)
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<offset]), as: UTF8.self)
        guard let value = Double(text) else { throw failure("bad number") }
        guard value.isFinite else { throw failure("number \(text) is beyond the range of a double") }
        return value
    }

    mutating func hex4() throws -> UInt32 {
        guard offset + 4 <= bytes.count else { throw failure("short \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[offset]
            offset += 1
            let digit: UInt32
            switch c {
            case 0x30...0x39: digit = UInt32(c - 0x30)
            case 0x41...0x46: digit = UInt32(c - 0x41 + 10)
            case 0x61...0x66: digit = UInt32(c - 0x61 + 10)
            default: throw failure("bad \\u escape")
            }
            v = v << 4 | digit
        }
        return v
    }

    mutating func string() throws -> String {
        offset += 1  // opening quote
        // Fast path: a run of plain bytes up to the closing quote becomes the string at once
        // (what fedrec writes: keys, ids, checksums), with no byte-by-byte copy.
        let start = offset
        while offset < bytes.count {
            let c = bytes[offset]
            if c == UInt8(ascii: "\"") {
                let run = UnsafeRawBufferPointer(rebasing: bytes[start..<offset])
                offset += 1
                guard let s = String(validating: run.bindMemory(to: UInt8.self), as: UTF8.self) else {
                    throw failure("invalid UTF-8")
                }
                return s
            }
            if c == UInt8(ascii: "\\") || c < 0x20 { break }
            offset += 1
        }
        var utf8 = Array(UnsafeRawBufferPointer(rebasing: bytes[start..<offset]))
        while true {
            guard offset < bytes.count else { throw failure("unterminated string") }
            let c = bytes[offset]
            offset += 1
            if c == UInt8(ascii: "\"") { break }
            if c < 0x20 { throw failure("control character in string") }
            if c != UInt8(ascii: "\\") { utf8.append(c); continue }
            guard offset < bytes.count else { throw failure("unterminated escape") }
            let e = bytes[offset]
            offset += 1
            switch e {
            case UInt8(ascii: "\""): utf8.append(0x22)
            case UInt8(ascii: "\\"): utf8.append(0x5C)
            case UInt8(ascii: "/"): utf8.append(0x2F)
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0C)
            case UInt8(ascii: "n"): utf8.append(0x0A)
            case UInt8(ascii: "r"): utf8.append(0x0D)
            case UInt8(ascii: "t"): utf8.append(0x09)
            case UInt8(ascii: "u"):
                var code = try hex4()
                if code >= 0xD800 && code < 0xDC00 {
                    guard offset + 2 <= bytes.count, bytes[offset] == UInt8(ascii: "\\"),
                        bytes[offset + 1] == UInt8(ascii: "u")
                    else { throw failure("lone surrogate") }
                    offset += 2
                    let low = try hex4()
                    guard low >= 0xDC00 && low < 0xE000 else { throw failure("bad surrogate pair") }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let scalar = Unicode.Scalar(code) else { throw failure("bad code point") }
                utf8.append(contentsOf: Array(String(Character(scalar)).utf8))
            default: throw failure("bad escape")
            }
        }
        guard let s = String(validating: utf8, as: UTF8.self) else { throw failure("invalid UTF-8") }
        return s
    }
}
