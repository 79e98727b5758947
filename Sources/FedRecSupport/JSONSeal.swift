/// A checksum a JSON document carries of itself: `xxh64:` + the XXH64 (seed 0) of the
/// document's canonical text (`JSONValue.canonicalText`) with the seal's own key left out.
///
/// fedrec seals the JSON it writes beside data (safetensors headers, shard headers, a
/// shard user's `KEY.json`) so that a flipped byte in a value a reader trusts (`round`,
/// `objective`, a user index, the checksums of the data) is refused rather than used. The
/// seal covers the parsed content, not the bytes: a reader re-serialises what it parsed, so
/// the padding of a safetensors header and the order of keys do not matter, and Python can
/// check it with `json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`.
/// It detects corruption, not a forger (XXH64 is not cryptographic).
public enum JSONSeal {
    /// Prefix of a seal value.
    public static let prefix = "xxh64:"

    /// The seal of `object` as written: its canonical text without `key`, hashed.
    public static func seal(of object: [String: JSONValue], excluding key: String) -> String {
        var object = object
        object[key] = nil
        return digest(.object(object))
    }

    /// `xxh64:` + the XXH64 of `value`'s canonical text.
    public static func digest(_ value: JSONValue) -> String {
        let text = Array(value.canonicalText.utf8)
        return prefix + text.withUnsafeBytes { XXHash64.hex($0) }
    }

    /// `object` with its seal stored under `key`.
    public static func sealed(_ object: [String: JSONValue], key: String = "checksum") -> JSONValue {
        var object = object
        object[key] = .string(seal(of: object, excluding: key))
        return .object(object)
    }

    /// Whether the seal stored under `key` matches `object`'s content: nil when `object`
    /// has no seal there (a file from before seals), false on a mismatch or a seal that is
    /// not a string.
    public static func verify(_ object: [String: JSONValue], key: String = "checksum") -> Bool? {
        guard let stored = object[key] else { return nil }
        guard let text = stored.stringValue else { return false }
        return text == seal(of: object, excluding: key)
    }

    /// As `verify(_:key:)` for `object` parsed from `raw`, faster for what fedrec writes:
    /// when `raw` is canonical text whose first member is the seal, the rest of the bytes
    /// are hashed as they are (no re-serialisation); otherwise the parsed content is.
    public static func verify(_ object: [String: JSONValue], raw: UnsafeRawBufferPointer, key: String = "checksum") -> Bool? {
        guard let stored = object[key]?.stringValue, stored.utf8.count == prefix.utf8.count + 16 else {
            return verify(object, key: key)
        }
        let lead = Array("{\"\(key)\":\"\(stored)\",".utf8)
        if raw.count > lead.count, raw.prefix(lead.count).elementsEqual(lead) {
            var rest = [UInt8](repeating: UInt8(ascii: "{"), count: raw.count - lead.count + 1)
            rest.withUnsafeMutableBytes { UnsafeMutableRawBufferPointer(rebasing: $0[1...]).copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[lead.count...])) }
            if prefix + rest.withUnsafeBytes({ XXHash64.hex($0) }) == stored { return true }
        }
        return verify(object, key: key)
    }
}
