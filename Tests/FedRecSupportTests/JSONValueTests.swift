import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecSupport

@Suite("JSON parser: RFC 8259, nothing more")
struct JSONValueTests {
    /// Texts RFC 8259's grammar does not produce (or, for `1e400` and duplicate names, that
    /// no value of ours can stand for), each with why.
    static let refused: [(text: String, why: String)] = [
        ("+1", "a plus sign is not part of a number"),
        ("01", "leading zero"),
        ("-01", "leading zero after the sign"),
        ("[00]", "leading zero in an array"),
        (".5", "no digit before the point"),
        ("-.5", "no digit before the point"),
        ("1.", "no digit after the point"),
        ("1.e5", "no digit after the point"),
        ("1e", "empty exponent"),
        ("1e+", "empty exponent"),
        ("-", "a sign alone"),
        ("1e400", "beyond the double range"),
        ("-1e400", "beyond the double range"),
        ("[1e999]", "beyond the double range, in an array"),
        ("NaN", "not a JSON literal"),
        ("Infinity", "not a JSON literal"),
        ("0x10", "hex is not JSON"),
        (#"{"a":1,"a":2}"#, "duplicate name"),
        (#"{"a":{"b":1},"c":0,"a":{"b":1}}"#, "duplicate name with an equal value"),
        ("[1,]", "trailing comma in an array"),
        (#"{"a":1,}"#, "trailing comma in an object"),
        ("[,1]", "leading comma"),
        (#"{"a" 1}"#, "missing colon"),
        (#""\ud800""#, "lone high surrogate"),
        (#""\udc00""#, "lone low surrogate"),
        (#""\ud800\u0041""#, "high surrogate followed by a non-surrogate"),
        (#""\x41""#, "unknown escape"),
        ("\"a\tb\"", "raw control character in a string"),
        ("\"abc", "unterminated string"),
        ("1 2", "two documents"),
        ("\u{00A0}1", "no-break space is not JSON whitespace"),
        ("tru", "truncated literal"),
        ("", "empty text"),
    ]

    @Test("every text outside RFC 8259 is refused as bad data", arguments: refused.indices)
    func refusals(index: Int) {
        let (text, why) = Self.refused[index]
        let error = #expect(throws: FedRecError.self, "\(why): \(text)") { try JSONValue.parse(text) }
        #expect(error?.failure == .badData, "\(why): \(text)")
    }

    @Test("a duplicate name is named in the message")
    func duplicateMessage() {
        let error = #expect(throws: FedRecError.self) { try JSONValue.parse(#"{"round":1,"round":2}"#) }
        #expect(error?.message.contains(#"duplicate key "round""#) == true, "\(String(describing: error))")
    }

    @Test("what RFC 8259 allows is read, with the value the decimal text names")
    func accepted() throws {
        let numbers: [(String, Double)] = [
            ("0", 0), ("-0", -0.0), ("7", 7), ("-12", -12), ("0.5", 0.5), ("-0.25", -0.25), ("1e3", 1000), ("1E+3", 1000),
            ("25e-1", 2.5), ("1.5e-3", 0.0015), ("3000000000", 3_000_000_000), ("1.7976931348623157e308", .greatestFiniteMagnitude),
            // Underflow is no refusal: the nearest double to 1e-400 is 0 (RFC 8259 § 6).
            ("1e-400", 0),
        ]
        for (text, value) in numbers {
            #expect(try JSONValue.parse(text) == .number(value), "\(text)")
            #expect(try JSONValue.parse(" \t\n\r[\(text)] ") == .array([.number(value)]), "\(text)")
        }
        #expect(try JSONValue.parse("-0").doubleValue?.sign == .minus)
        // U+1F600 as a surrogate pair, and every short escape.
        #expect(try JSONValue.parse(#""\ud83d\ude00 \"\\\/\b\f\n\r\t\u00e9""#) == .string("\u{1F600} \"\\/\u{08}\u{0C}\n\r\té"))
        let object = try JSONValue.parse(#"{"b":[true,false,null],"a":{"":1}}"#)
        #expect(object == .object(["a": .object(["": .number(1)]), "b": .array([.bool(true), .bool(false), .null])]))
        #expect(object.canonicalText == #"{"a":{"":1},"b":[true,false,null]}"#)
    }
}
