import Crypto

/// Lowercase hex of a digest's (or any byte sequence's) bytes.
public func hexDigest<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
    var text = ""
    text.reserveCapacity(64)
    for byte in digest {
        if byte < 16 { text.append("0") }
        text.append(String(byte, radix: 16))
    }
    return text
}

/// SHA-256 of `bytes` as lowercase hex: the identity of files, updates and ledger lines.
public func sha256Hex(_ bytes: UnsafeRawBufferPointer) -> String {
    hexDigest(SHA256.hash(data: bytes))
}

/// SHA-256 of a byte sequence as lowercase hex.
public func sha256Hex<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
    hexDigest(SHA256.hash(data: Array(bytes)))
}
