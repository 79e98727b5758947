#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension JSONValue {
    /// A JSON object as a two-line TSV table for people: a header line of the keys, `round`
    /// first and the others sorted, then one line of values (strings made TSV-safe, integers
    /// without a fraction, other numbers with up to six decimals, anything else as canonical
    /// JSON).
    public var tsvTable: String { table(aligned: false) }

    /// The same table; with `aligned` (for a terminal) columns are padded to a common width
    /// with two spaces between them instead of separated by tabs.
    public func table(aligned: Bool) -> String {
        guard case .object(let members) = self else { return canonicalText }
        let keys = members.keys.sorted { ($0 == "round" ? 0 : 1, $0) < ($1 == "round" ? 0 : 1, $1) }
        let values = keys.map { key -> String in
            switch members[key] {
            case .string(let s): return tsvField(s)
            case .number(let d): return d.rounded() == d && abs(d) < 1e15 ? String(Int64(d)) : sixDecimals(d)
            case let other?: return other.canonicalText
            case nil: return ""
            }
        }
        guard aligned else { return keys.joined(separator: "\t") + "\n" + values.joined(separator: "\t") }
        let widths = zip(keys, values).map { max($0.count, $1.count) }
        func line(_ fields: [String]) -> String {
            var text = zip(fields, widths).map { $0 + String(repeating: " ", count: $1 - $0.count) }.joined(separator: "  ")
            while text.last == " " { text.removeLast() }
            return text
        }
        return line(keys) + "\n" + line(values)
    }
}

/// Whether standard output is a terminal (tables are then aligned, progress shown).
public var standardOutputIsTerminal: Bool { isatty(STDOUT_FILENO) == 1 }

/// A number with up to six decimals, for tables people read (`nan` when not finite).
public func sixDecimals(_ d: Double) -> String {
    guard d.isFinite else { return "nan" }
    let scaled = (d * 1_000_000).rounded() / 1_000_000
    return "\(scaled)"
}
