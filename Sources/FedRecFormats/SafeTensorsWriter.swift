import FedRecSupport

/// Builds a safetensors file from named tensors and writes it atomically.
///
/// Tensors are laid out by element size (largest first), then by name, as the reference
/// implementation does, so every tensor is aligned to its element size; the header is
/// padded with spaces so the data section starts on an 8-byte boundary.
public struct SafeTensorsWriter {
    /// Tensor payloads; arrays are copy-on-write, so adding one costs no copy.
    public enum Payload {
        case f64([Double])
        case f32([Float])
        case i32([Int32])
        case i64([Int64])
        case u64([UInt64])
        case u8([UInt8])
        /// Bytes written aside as they were computed (`SpilledTensor`), copied in by `write`.
        case spilled(SpilledTensor)

        var dtype: DType {
            switch self {
            case .f64: .f64
            case .f32: .f32
            case .i32: .i32
            case .i64: .i64
            case .u64: .u64
            case .u8: .u8
            case .spilled(let t): t.dtype
            }
        }

        var count: Int {
            switch self {
            case .f64(let a): a.count
            case .f32(let a): a.count
            case .i32(let a): a.count
            case .i64(let a): a.count
            case .u64(let a): a.count
            case .u8(let a): a.count
            case .spilled(let t): t.count
            }
        }

        func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
            switch self {
            case .f64(let a): try a.withUnsafeBytes(body)
            case .f32(let a): try a.withUnsafeBytes(body)
            case .i32(let a): try a.withUnsafeBytes(body)
            case .i64(let a): try a.withUnsafeBytes(body)
            case .u64(let a): try a.withUnsafeBytes(body)
            case .u8(let a): try a.withUnsafeBytes(body)
            case .spilled: preconditionFailure("a spilled tensor's bytes are not in memory")
            }
        }

        /// Appends the chunk hashes of the payload's bytes (`ChunkedChecksum`).
        func appendChunkHashes(to table: inout [UInt64]) {
            if case .spilled(let t) = self {
                table += t.chunkHashes
            } else {
                withBytes { ChunkedChecksum.appendHashes(of: $0, to: &table) }
            }
        }

        /// Writes the payload's bytes to `output`.
        func write(into output: AtomicOutput) throws {
            if case .spilled(let t) = self {
                try t.copy(into: output)
            } else {
                try withBytes { try output.write($0) }
            }
        }
    }

    struct Entry {
        let name: String
        let shape: [Int]
        let payload: Payload
    }

    /// `__metadata__`; `checksum` and `header_checksum` are filled in by `write` when
    /// `checksummed` is set.
    public var metadata: [String: String]
    private var entries: [String: Entry] = [:]
    /// Whether to add fedrec's `checksum` of the tensor bytes to the metadata.
    public var checksummed: Bool
    /// Checksum per 4 KiB chunk (`ChunkedChecksum`) instead of per file, so readers can
    /// verify only what they read: for model checkpoints, which every process of a round
    /// opens but few read whole.
    public var chunkedChecksum = false

    public init(metadata: [String: String] = [:], checksummed: Bool = true) {
        self.metadata = metadata
        self.checksummed = checksummed
    }

    /// Adds (or replaces) a tensor. The element count must match the shape.
    public mutating func add(_ name: String, shape: [Int], _ payload: Payload) {
        precondition(shape.reduce(1, *) == payload.count, "tensor \(name): \(payload.count) elements for shape \(shape)")
        entries[name] = Entry(name: name, shape: shape, payload: payload)
    }

    public mutating func add(_ name: String, shape: [Int], floats: [Float]) {
        add(name, shape: shape, .f32(floats))
    }

    public mutating func add(_ name: String, shape: [Int], int32s: [Int32]) {
        add(name, shape: shape, .i32(int32s))
    }

    /// Entries in data order.
    static func ordered(_ entries: [String: Entry]) -> [Entry] {
        entries.values.sorted {
            ($0.payload.dtype.size, $1.name) > ($1.payload.dtype.size, $0.name)
        }
    }

    /// The complete header bytes (length prefix excluded), padded to 8-byte alignment, and
    /// the entries in data order (with the chunk table when checksums are chunked).
    func finished() -> (header: [UInt8], entries: [Entry]) {
        var metadata = metadata
        var entries = entries
        if checksummed && chunkedChecksum {
            var table: [UInt64] = []
            for entry in Self.ordered(entries) where entry.name != ChunkedChecksum.tensorName {
                entry.payload.appendChunkHashes(to: &table)
            }
            entries[ChunkedChecksum.tensorName] = Entry(name: ChunkedChecksum.tensorName, shape: [table.count], payload: .u64(table))
            metadata["checksum"] = ChunkedChecksum.checksum(ofTable: table)
            metadata["checksum_chunk"] = String(ChunkedChecksum.chunkBytes)
        } else if checksummed {
            precondition(!entries.values.contains { if case .spilled = $0.payload { true } else { false } }, "a spilled tensor needs the chunked checksum")
            var digests: [UInt64] = []
            for entry in Self.ordered(entries) { digests.append(entry.payload.withBytes { XXHash64.hash($0) }) }
            metadata["checksum"] = "xxh64:" + TensorChecksum.combine(digests)
        }
        let ordered = Self.ordered(entries)
        var header: [String: JSONValue] = [:]
        var offset = 0
        for entry in ordered {
            let size = entry.payload.count * entry.payload.dtype.size
            header[entry.name] = .object([
                "dtype": .string(entry.payload.dtype.rawValue),
                "shape": .array(entry.shape.map { .number(Double($0)) }),
                "data_offsets": .array([.number(Double(offset)), .number(Double(offset + size))]),
            ])
            offset += size
        }
        if checksummed {
            // Seal the header last, over everything else in it (shapes, offsets, metadata).
            metadata[HeaderSeal.key] = nil
            header["__metadata__"] = .object(metadata.mapValues { .string($0) })
            metadata[HeaderSeal.key] = HeaderSeal.seal(of: header)
        }
        if !metadata.isEmpty {
            header["__metadata__"] = .object(metadata.mapValues { .string($0) })
        }
        var text = Array(JSONValue.object(header).canonicalText.utf8)
        while (8 + text.count) % 8 != 0 { text.append(0x20) }
        return (text, ordered)
    }

    /// Writes the file atomically to `path` (`-` for stdout).
    /// - Returns: the header bytes written, whose SHA-256 is the file's identity.
    @discardableResult
    public func write(to path: String, durable: Bool = true, privateFile: Bool = false) throws -> [UInt8] {
        let output = try AtomicOutput(path: path, durable: durable, privateFile: privateFile)
        let header = try write(into: output)
        try output.commit()
        return header
    }

    /// Writes the file's bytes into `output` without committing it, for a caller that must
    /// do something (append a privacy ledger line) between writing and releasing.
    /// - Returns: the header bytes written, whose SHA-256 is the file's identity.
    @discardableResult
    public func write(into output: AtomicOutput) throws -> [UInt8] {
        let (header, ordered) = finished()
        var length = UInt64(header.count).littleEndian
        try withUnsafeBytes(of: &length) { try output.write($0) }
        try output.write(contentsOf: header)
        for entry in ordered { try entry.payload.write(into: output) }
        return header
    }
}

/// fedrec's checksum of a safetensors data section: XXH64 of each tensor's bytes in file
/// order, then XXH64 of those 8-byte little-endian digests. Per-tensor hashing lets a
/// writer checksum tensors that live in separate arrays without concatenating them.
public enum TensorChecksum {
    static func combine(_ digests: [UInt64]) -> String {
        let littleEndian = digests.map { $0.littleEndian }
        return littleEndian.withUnsafeBytes { XXHash64.hex($0) }
    }

    /// The checksum of an opened file's tensors, as `write` records it (without prefix).
    public static func of(_ file: SafeTensorsFile) -> String {
        // Zero-size tensors share offsets, but all hash alike, so their relative order is moot.
        let ordered = file.tensors.values.sorted {
            ($0.byteRange.lowerBound, $0.byteRange.upperBound) < ($1.byteRange.lowerBound, $1.byteRange.upperBound)
        }
        return combine(ordered.map { XXHash64.hash(file.bytes(of: $0)) })
    }
}

/// fedrec's checksum of a safetensors header (`__metadata__` key `header_checksum`, format
/// version 3): the `JSONSeal` of the whole header object (every tensor's dtype, shape and
/// offsets, and the metadata) with `header_checksum` itself left out. The data checksum
/// covers the tensor bytes; this covers what says how to read them (`round`, `objective`,
/// `rating_min`, the data checksum itself), so a flipped byte anywhere in a file is refused.
public enum HeaderSeal {
    /// The metadata key.
    public static let key = "header_checksum"

    /// The seal of a parsed header object (its `__metadata__` may hold `header_checksum`).
    public static func seal(of header: [String: JSONValue]) -> String {
        var header = header
        if case .object(var metadata) = header["__metadata__"] {
            metadata[key] = nil
            header["__metadata__"] = .object(metadata)
        }
        return JSONSeal.digest(.object(header))
    }

    /// Checks `file`'s `header_checksum`, when it has one.
    /// - Returns: whether the header carries one (files before format version 3 do not).
    /// - Throws: `.checksum` (82) naming the file when the header does not match it.
    @discardableResult
    public static func verify(_ file: SafeTensorsFile) throws -> Bool {
        guard let recorded = file.metadata[key] else { return false }
        // The header parsed when the file was opened, so it parses again.
        guard let header = (try? JSONValue.parse(file.headerBytes))?.objectValue, seal(of: header) == recorded else {
            throw FedRecError(.checksum, file: file.path, "header checksum does not match the header (metadata, shapes or offsets changed): the file is corrupt")
        }
        return true
    }
}
