#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FedRecSupport
internal import CArchive

/// One regular file read from a shard.
public struct ShardEntry: Sendable {
    /// The path inside the archive.
    public let name: String
    /// The file's content.
    public let bytes: [UInt8]

    public init(name: String, bytes: [UInt8]) {
        self.name = name
        self.bytes = bytes
    }
}

/// Reads a tar shard entry by entry, whatever its compression (gzip, zstd, xz, bzip2…
/// are detected from the bytes).
///
/// Streams: only the current entry is held in memory. Directories and other non-regular
/// entries (links, devices) are skipped. The path `-` reads stdin.
///
/// ```swift
/// let reader = try ShardReader(path: "clients-000.tar.zst")
/// while let entry = try reader.next() { ... }
/// ```
public final class ShardReader {
    /// The source as the user named it.
    public let path: String
    private let archive: OpaquePointer
    private let descriptor: Int32?
    /// The shard's bytes when it was given in memory; libarchive reads them in place.
    private let memory: UnsafeMutableRawBufferPointer?
    private var entryCount = 0
    private var done = false

    /// Opens a shard.
    /// - Parameter path: the shard file; `-` for stdin.
    /// - Throws: `FedRecError` `.noInput` for a missing file or a directory, `.emptyInput`
    ///   for an empty file, `.corrupt` when libarchive cannot open the stream.
    public init(path: String) throws {
        self.path = path
        var fd: Int32? = nil
        if path != "-" {
            let opened = open(path, O_RDONLY | O_CLOEXEC)
            guard opened >= 0 else {
                let failure: FailureClass = errno == ENOENT ? .noInput : .io
                throw FedRecError(failure, file: path, "cannot open: \(systemError())")
            }
            var info = stat()
            guard fstat(opened, &info) == 0 else {
                let reason = systemError()
                close(opened)
                throw FedRecError(.io, file: path, "cannot stat: \(reason)")
            }
            if (info.st_mode & S_IFMT) == S_IFDIR {
                close(opened)
                throw FedRecError(.noInput, file: path, "is a directory, expected a shard")
            }
            if (info.st_mode & S_IFMT) == S_IFREG && info.st_size == 0 {
                close(opened)
                throw FedRecError(.emptyInput, file: path, "empty file, expected a tar shard")
            }
            fd = opened
        }
        guard let archive = archive_read_new() else {
            if let fd { close(fd) }
            throw FedRecError(.io, file: path, "cannot create a libarchive reader")
        }
        self.archive = archive
        descriptor = fd
        memory = nil
        // From here every stored property is set, so a throw runs `deinit`, which frees the handles.
        archive_read_support_filter_all(archive)
        archive_read_support_format_tar(archive)
        // Names convert through the thread's locale: see `archiveUTF8Locale`.
        let status = withArchiveUTF8Locale {
            if let fd { return archive_read_open_fd(archive, fd, 1 << 16) }
            return archive_read_open_filename(archive, nil, 1 << 16)  // NULL is stdin
        }
        if status < ARCHIVE_WARN { throw failure(opening: true) }
    }

    /// Reads a shard already in memory (a shard received over a pipe, a test or fuzzing
    /// input); the bytes are copied once.
    /// - Parameters:
    ///   - bytes: the whole shard file, compressed or not.
    ///   - path: the name to put in errors.
    /// - Throws: `.emptyInput` for no bytes, `.corrupt` when libarchive cannot open them.
    public init(bytes: some Collection<UInt8>, path: String) throws {
        self.path = path
        guard !bytes.isEmpty else { throw FedRecError(.emptyInput, file: path, "empty input, expected a tar shard") }
        guard let archive = archive_read_new() else {
            throw FedRecError(.io, file: path, "cannot create a libarchive reader")
        }
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 16)
        _ = storage.initializeMemory(as: UInt8.self, from: bytes)
        self.archive = archive
        descriptor = nil
        memory = storage
        archive_read_support_filter_all(archive)
        archive_read_support_format_tar(archive)
        let status = withArchiveUTF8Locale { archive_read_open_memory(archive, storage.baseAddress, storage.count) }
        if status < ARCHIVE_WARN { throw failure(opening: true) }
    }

    deinit {
        archive_read_free(archive)  // closes the archive first
        if let descriptor { close(descriptor) }
        memory?.deallocate()
    }

    /// The next regular file, or `nil` at the end of the archive.
    /// - Throws: `FedRecError(.corrupt)` with libarchive's message for a stream that is not
    ///   a tar archive, is corrupt or ends early; `.emptyInput` for an empty stdin.
    /// - Complexity: O(size of the entries read), memory O(one entry).
    public func next() throws -> ShardEntry? {
        guard !done else { return nil }
        while true {
            var header: OpaquePointer? = nil
            let status = withArchiveUTF8Locale { archive_read_next_header(archive, &header) }
            if status == ARCHIVE_EOF {
                done = true
                return nil
            }
            if status < ARCHIVE_WARN { throw failure(opening: entryCount == 0) }
            guard let header else { throw failure(opening: false) }
            entryCount += 1
            guard archive_entry_filetype(header) == 0o100000 else {  // AE_IFREG
                if archive_read_data_skip(archive) < ARCHIVE_WARN { throw failure(opening: false) }
                continue
            }
            let name = withArchiveUTF8Locale {
                archive_entry_pathname_utf8(header).map { String(cString: $0) }
                    ?? archive_entry_pathname(header).map { String(cString: $0) } ?? ""
            }
            // Tar headers always give the size, and the data never runs past it. The size
            // is only a claim of the file: memory grows with the bytes that do arrive (a
            // header may declare terabytes over a few bytes of data).
            let declared = Int(archive_entry_size(header))
            guard declared >= 0 else {
                done = true
                throw FedRecError(.corrupt, file: path, "entry '\(name)' has a negative size")
            }
            var bytes = [UInt8]()
            bytes.reserveCapacity(min(declared, Self.readChunk))
            var failed = false
            while bytes.count < declared {
                let want = min(declared - bytes.count, Self.readChunk)
                let start = bytes.count
                var got = 0
                bytes.append(contentsOf: repeatElement(0, count: want))
                bytes.withUnsafeMutableBytes { buffer in
                    got = archive_read_data(archive, buffer.baseAddress! + start, want)
                }
                bytes.removeLast(want - max(got, 0))
                if got <= 0 {
                    failed = got < 0
                    break
                }
            }
            if failed { throw failure(opening: false, entry: name) }
            guard bytes.count == declared else {
                done = true
                throw FedRecError(.corrupt, file: path, "entry '\(name)' ends after \(bytes.count) of its \(declared) bytes")
            }
            return ShardEntry(name: name, bytes: bytes)
        }
    }

    /// Bytes asked of libarchive at a time, and reserved at first for an entry.
    static let readChunk = 1 << 20

    private func failure(opening: Bool, entry: String? = nil) -> FedRecError {
        done = true
        let message = archive_error_string(archive).map { String(cString: $0) } ?? "unknown libarchive error"
        if opening && descriptor == nil && memory == nil && archive_filter_bytes(archive, -1) == 0 {
            return FedRecError(.emptyInput, file: path, "empty input, expected a tar shard")
        }
        let place = entry.map { " in '\($0)'" } ?? ""
        return FedRecError(.corrupt, file: path, "not a readable tar shard\(place): \(message)")
    }
}
