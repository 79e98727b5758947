#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Numbers as people read them in a report, without Foundation's formatters (the same
/// text on every platform, so a report is bit-identical for the same run).
enum NumberText {
    /// `value` with `places` decimals, rounded half away from zero; `–` when not finite.
    static func fixed(_ value: Double, _ places: Int) -> String {
        guard value.isFinite else { return value.isNaN ? "–" : (value > 0 ? "∞" : "-∞") }
        var scale: Int64 = 1
        for _ in 0..<places { scale *= 10 }
        let scaled = (abs(value) * Double(scale)).rounded()
        guard scaled < 9e15 else { return "\(value)" }
        let units = Int64(scaled)
        let whole = units / scale, fraction = units % scale
        var text = (value < 0 && units != 0 ? "-" : "") + String(whole)
        if places > 0 {
            let digits = String(fraction)
            text += "." + String(repeating: "0", count: places - digits.count) + digits
        }
        return text
    }

    /// A metric or ε: four significant decimals below 10, two up to 1000, none above.
    static func metric(_ value: Double) -> String {
        let magnitude = abs(value)
        return fixed(value, magnitude < 10 ? 4 : magnitude < 1000 ? 2 : 0)
    }

    /// A count with thousands separated by commas (12,345).
    static func count(_ value: Int) -> String {
        let digits = String(value.magnitude)
        var grouped = ""
        for (i, digit) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { grouped.append(",") }
            grouped.append(digit)
        }
        return (value < 0 ? "-" : "") + grouped
    }

    /// Bytes in decimal units (kB, MB, GB: powers of 1000), three significant figures.
    static func bytes(_ value: Int) -> String {
        let units = ["B", "kB", "MB", "GB", "TB"]
        var scaled = Double(value), unit = 0
        while scaled >= 1000 && unit < units.count - 1 { scaled /= 1000; unit += 1 }
        if unit == 0 { return "\(value) B" }
        return fixed(scaled, scaled < 10 ? 2 : scaled < 100 ? 1 : 0) + " " + units[unit]
    }

    /// Seconds: three decimals below 10 s, one below 100 s, whole seconds above.
    static func seconds(_ value: Double) -> String {
        fixed(value, value < 10 ? 3 : value < 100 ? 1 : 0) + " s"
    }

    /// An axis tick: as many decimals as the tick step needs.
    static func tick(_ value: Double, step: Double) -> String {
        let places = step >= 1 ? 0 : min(10, Int((-log10(step)).rounded(.up)))
        return fixed(value, places)
    }
}

/// Text made safe inside HTML and SVG elements and attribute values.
func escapeMarkup(_ text: String) -> String {
    var out = ""
    out.reserveCapacity(text.utf8.count)
    for character in text {
        switch character {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default: out.append(character)
        }
    }
    return out
}
