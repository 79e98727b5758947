extension JSONValue {
    /// A JSON object as a two-line TSV table for people: a header line of the sorted keys,
    /// then one line of values (strings as they are, integers without a fraction, other
    /// numbers with up to six decimals, anything else as canonical JSON).
    public var tsvTable: String {
        guard case .object(let members) = self else { return canonicalText }
        let keys = members.keys.sorted()
        let values = keys.map { key -> String in
            switch members[key] {
            case .string(let s): return tsvField(s)
            case .number(let d): return d.rounded() == d && abs(d) < 1e15 ? String(Int64(d)) : sixDecimals(d)
            case let other?: return other.canonicalText
            case nil: return ""
            }
        }
        return keys.joined(separator: "\t") + "\n" + values.joined(separator: "\t")
    }
}

/// A number with up to six decimals, for tables people read (`nan` when not finite).
public func sixDecimals(_ d: Double) -> String {
    guard d.isFinite else { return "nan" }
    let scaled = (d * 1_000_000).rounded() / 1_000_000
    return "\(scaled)"
}
