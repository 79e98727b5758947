internal import CArchive
import FedRecSupport

/// A compression format a text input (ratings, item metadata) may come in, told by its
/// first bytes, so `fl-partition train.txt.zst` reads a published data set as it is
/// distributed, without a `zstd -dc |` in front.
public enum InputCompression: String, Sendable, CaseIterable {
    case gzip, zstd, xz, bzip2

    /// The format whose magic number `bytes` start with, or nil for plain bytes.
    /// (gzip: RFC 1952 §2.3.1; zstd: RFC 8878 §3.1.1; xz: the .xz file format §2.1.1.1;
    /// bzip2: "BZh" and a block size digit.)
    public static func detect(_ bytes: UnsafeRawBufferPointer) -> InputCompression? {
        func starts(with magic: [UInt8]) -> Bool {
            bytes.count >= magic.count && zip(bytes, magic).allSatisfy { $0 == $1 }
        }
        if starts(with: [0x1F, 0x8B]) { return .gzip }
        if starts(with: [0x28, 0xB5, 0x2F, 0xFD]) { return .zstd }
        if starts(with: [0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00]) { return .xz }
        if starts(with: [0x42, 0x5A, 0x68]), bytes.count > 3, (0x31...0x39).contains(bytes[3]) { return .bzip2 }
        return nil
    }
}

/// Opens text inputs that may be compressed: plain files are mapped as they are; a file
/// (or stdin) that starts with a gzip, zstd, xz or bzip2 magic number is decompressed
/// into memory through libarchive's filters.
public enum CompressedInput {
    /// The most bytes a compressed input may expand to (a decompression bomb of a few
    /// kilobytes must not take the machine's memory): 16 GiB, far above any public
    /// interaction data set (MovieLens 32M's ratings.csv is 0.9 GB).
    public static let defaultLimit = 16 << 30

    /// The bytes of `path` (`-` for stdin), decompressed if they are compressed.
    /// - Returns: the bytes and the compression they came in (nil: none).
    /// - Throws: the errors of `MappedFile`; `.corrupt` naming the file for a compressed
    ///   stream that is truncated or damaged; `.badData` when it expands past `limit`.
    public static func open(path: String, limit: Int = defaultLimit) throws -> (file: MappedFile, compression: InputCompression?) {
        let raw = try MappedFile(path: path)
        guard let compression = raw.withBytes({ InputCompression.detect($0) }) else { return (raw, nil) }
        let plain = try raw.withBytes { try decompress($0, path: path, compression: compression, limit: limit) }
        if compression == .gzip {
            try raw.withBytes { compressed in try plain.withBytes { try checkGzipTrailer(compressed, plain: $0, path: path) } }
        }
        return (plain, compression)
    }

    /// libarchive's gzip filter does not check a member's CRC-32 (zstd, xz and bzip2
    /// streams are checked by their libraries), so a flipped bit in the data would pass:
    /// check the last member's trailer (RFC 1952 §2.3.1: CRC-32 and size mod 2^32 of its
    /// uncompressed bytes) against the end of the output. A file of several members
    /// has its last member checked.
    static func checkGzipTrailer(_ compressed: UnsafeRawBufferPointer, plain: UnsafeRawBufferPointer, path: String) throws {
        guard compressed.count >= 18 else { throw FedRecError(.corrupt, file: path, "gzip stream is truncated") }
        func word(_ at: Int) -> UInt32 {
            (0..<4).reduce(UInt32(0)) { $0 | UInt32(compressed[at + $1]) << (8 * UInt32($1)) }
        }
        let crc = word(compressed.count - 8), size = Int(word(compressed.count - 4))
        if size == plain.count & 0xFFFF_FFFF, CRC32.checksum(plain) == crc { return }
        // Several members: the last one's bytes are the output's last `size` bytes.
        if size < plain.count, CRC32.checksum(UnsafeRawBufferPointer(rebasing: plain[(plain.count - size)...])) == crc { return }
        throw FedRecError(.corrupt, file: path, "gzip stream is damaged: its CRC-32 does not match the decompressed bytes")
    }

    /// Decompresses a whole compressed stream held in memory.
    static func decompress(_ bytes: UnsafeRawBufferPointer, path: String, compression: InputCompression, limit: Int) throws -> MappedFile {
        guard let archive = archive_read_new() else { throw FedRecError(.io, file: path, "cannot create a libarchive reader") }
        defer { archive_read_free(archive) }
        archive_read_support_filter_all(archive)
        archive_read_support_format_raw(archive)
        func failure(_ what: String) -> FedRecError {
            let message = archive_error_string(archive).map { String(cString: $0) } ?? "unknown libarchive error"
            return FedRecError(.corrupt, file: path, "\(compression.rawValue) stream \(what): \(message)")
        }
        guard archive_read_open_memory(archive, bytes.baseAddress, bytes.count) >= ARCHIVE_WARN else {
            throw failure("cannot be opened")
        }
        var header: OpaquePointer? = nil
        guard archive_read_next_header(archive, &header) >= ARCHIVE_WARN else { throw failure("cannot be read") }
        var output = [UInt8]()
        output.reserveCapacity(min(limit, max(bytes.count * 4, 1 << 16)))
        let chunk = 1 << 20
        while true {
            let start = output.count
            output.append(contentsOf: repeatElement(0, count: chunk))
            let got = output.withUnsafeMutableBytes { buffer in
                buffer.baseAddress.map { archive_read_data(archive, $0 + start, chunk) } ?? -1
            }
            output.removeLast(chunk - max(got, 0))
            if got < 0 { throw failure("is damaged or truncated") }
            if got == 0 { break }
            if output.count > limit {
                throw FedRecError(.badData, file: path, "\(compression.rawValue) stream expands past \(limit >> 20) MiB; refusing to read it")
            }
        }
        return MappedFile(path: path, contents: output)
    }
}

/// CRC-32 as gzip, zip and PNG use it (ISO 3309 / ITU-T V.42: polynomial 0x04C11DB7,
/// reflected, initial and final XOR 0xFFFFFFFF); check value of "123456789": 0xCBF43926.
enum CRC32 {
    static let table: [UInt32] = (0..<256).map { n in
        (0..<8).reduce(UInt32(n)) { c, _ in c & 1 == 1 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    }

    static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { table in
            for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        }
        return crc ^ 0xFFFF_FFFF
    }
}
