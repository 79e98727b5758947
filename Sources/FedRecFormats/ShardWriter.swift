import FedRecSupport

internal import CArchive

/// How a shard's tar stream is compressed.
public enum ShardCompression: Sendable {
    case none, gzip, zstd

    /// The compression a file name asks for: `.tar.gz`/`.tgz` gzip, `.tar.zst`/`.tzst`
    /// zstd, anything else (including `-`) none.
    public init(path: String) {
        let lower = path.lowercased()
        if lower.hasSuffix(".tar.gz") || lower.hasSuffix(".tgz") {
            self = .gzip
        } else if lower.hasSuffix(".tar.zst") || lower.hasSuffix(".tzst") {
            self = .zstd
        } else {
            self = .none
        }
    }
}

/// Writes a tar shard (optionally gzip or zstd compressed) of small regular files.
///
/// Output is deterministic: every entry is a regular file with mode 0644, mtime 0,
/// uid/gid 0 and empty user and group names, the format is pax restricted (plain ustar
/// unless a name needs a pax extension), the gzip header carries no timestamp and the
/// last block is not padded, so the same entries in the same order give bit-identical
/// files. Bytes go through `AtomicOutput`: a temporary file beside the target renamed into
/// place on `commit()`; a writer dropped without `commit()` (or after an error) leaves
/// nothing behind. The path `-` writes to stdout.
///
/// ```swift
/// let writer = try ShardWriter(path: "clients-000.tar.zst")
/// try writer.add(name: "client-7.npy", bytes: Npy.encode(interactions))
/// try writer.commit()
/// ```
public final class ShardWriter {
    /// The destination as the user named it.
    public let path: String
    /// The compression in use.
    public let compression: ShardCompression
    private let output: AtomicOutput
    private let archive: OpaquePointer
    private let entry: OpaquePointer
    private var finished = false
    /// An error raised inside libarchive's write callback, rethrown to the caller.
    fileprivate var callbackError: FedRecError?

    /// Opens a shard for writing.
    /// - Parameters:
    ///   - path: the shard file; `-` for stdout.
    ///   - compression: `nil` picks it from the file name (`ShardCompression(path:)`);
    ///     stdout is uncompressed unless given.
    /// - Throws: `FedRecError(.cannotCreate)` when the temporary file cannot be created
    ///   (a missing directory, no permission); `.io` when libarchive refuses a setting.
    public init(path: String, compression: ShardCompression? = nil) throws {
        self.path = path
        self.compression = compression ?? ShardCompression(path: path)
        output = try AtomicOutput(path: path)
        guard let archive = archive_write_new() else {
            output.abandon()
            throw FedRecError(.io, file: path, "cannot create a libarchive writer")
        }
        self.archive = archive
        guard let entry = archive_entry_new() else {
            archive_write_free(archive)
            output.abandon()
            throw FedRecError(.io, file: path, "cannot create a libarchive entry")
        }
        self.entry = entry
        // From here every stored property is set, so a throw runs `deinit`, which frees the handles.
        try check(archive_write_set_format_pax_restricted(archive), "cannot select the pax format")
        switch self.compression {
        case .none:
            try check(archive_write_add_filter_none(archive), "cannot select no compression")
        case .gzip:
            try check(archive_write_add_filter_gzip(archive), "cannot select gzip compression")
            // A NULL value turns the option off: no mtime in the gzip header.
            try check(archive_write_set_filter_option(archive, "gzip", "timestamp", nil), "cannot drop the gzip timestamp")
        case .zstd:
            try check(archive_write_add_filter_zstd(archive), "cannot select zstd compression")
        }
        // Do not pad the last block to 10240 bytes: smaller files, same bytes on stdout.
        try check(archive_write_set_bytes_in_last_block(archive, 1), "cannot set the block size")
        let client = Unmanaged.passUnretained(self).toOpaque()
        try check(archive_write_open2(archive, client, nil, shardWrite, nil, nil), "cannot open the archive")
    }

    deinit {
        if !finished {
            // Mark the archive failed so freeing it writes no trailer, then drop the file.
            archive_write_fail(archive)
            archive_write_free(archive)
            output.abandon()
        }
        archive_entry_free(entry)
    }

    /// Appends a regular file.
    /// - Parameters:
    ///   - name: the path inside the archive (UTF-8, relative).
    ///   - bytes: the file's content.
    /// - Throws: `FedRecError(.usage)` for an empty or absolute name; `.io` when writing fails.
    /// - Complexity: O(bytes.count); no per-entry allocation beyond libarchive's own.
    public func add(name: String, bytes: UnsafeRawBufferPointer) throws {
        guard !finished else { throw FedRecError(.usage, file: path, "shard already committed") }
        guard !name.isEmpty, !name.hasPrefix("/") else {
            throw FedRecError(.usage, file: path, "bad entry name '\(name)': must be a non-empty relative path")
        }
        guard archiveUTF8Locale != nil || name.utf8.allSatisfy({ $0 < 0x80 }) else {
            throw FedRecError(.usage, file: path, "bad entry name '\(name)': no UTF-8 locale for non-ASCII names")
        }
        archive_entry_clear(entry)
        archive_entry_set_pathname_utf8(entry, name)
        archive_entry_set_filetype(entry, 0o100000)  // AE_IFREG is a C cast macro
        archive_entry_set_perm(entry, 0o644)
        archive_entry_set_size(entry, Int64(bytes.count))
        archive_entry_set_mtime(entry, 0, 0)
        archive_entry_set_uid(entry, 0)
        archive_entry_set_gid(entry, 0)
        // Names convert through the thread's locale: see `archiveUTF8Locale`.
        let status = withArchiveUTF8Locale { archive_write_header(archive, entry) }
        try check(status, "cannot write the header of '\(name)'")
        var offset = 0
        while offset < bytes.count {
            let written = archive_write_data(archive, bytes.baseAddress! + offset, bytes.count - offset)
            if written <= 0 { throw failure("cannot write '\(name)'") }
            offset += written
        }
        try check(archive_write_finish_entry(archive), "cannot finish '\(name)'")
    }

    /// Appends a regular file.
    public func add(name: String, bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try add(name: name, bytes: $0) }
    }

    /// Writes the end of the archive and moves the shard into place.
    /// - Throws: `FedRecError(.io)` when flushing fails, `.cannotCreate` when the rename does.
    public func commit() throws {
        guard !finished else { throw FedRecError(.usage, file: path, "shard already committed") }
        finished = true
        let status = archive_write_close(archive)
        if status < ARCHIVE_WARN {
            let error = callbackError ?? FedRecError(.io, file: path, "cannot finish the archive: \(message())")
            archive_write_free(archive)
            output.abandon()
            throw error
        }
        archive_write_free(archive)
        try output.commit()
    }

    private func check(_ status: Int32, _ what: @autoclosure () -> String) throws {
        if status < ARCHIVE_WARN { throw failure(what()) }
    }

    private func failure(_ what: String) -> FedRecError {
        callbackError ?? FedRecError(.io, file: path, "\(what): \(message())")
    }

    private func message() -> String {
        archive_error_string(archive).map { String(cString: $0) } ?? "unknown libarchive error"
    }

    fileprivate func write(_ buffer: UnsafeRawBufferPointer) -> Int {
        do {
            try output.write(buffer)
            return buffer.count
        } catch let error as FedRecError {
            callbackError = error
        } catch {
            callbackError = FedRecError(.io, file: path, "\(error)")
        }
        return -1
    }
}

/// libarchive's write callback: hands each block to the writer's `AtomicOutput`.
private func shardWrite(
    _ archive: OpaquePointer?, _ client: UnsafeMutableRawPointer?, _ buffer: UnsafeRawPointer?, _ length: Int
) -> Int {
    guard let client else { return -1 }
    let writer = Unmanaged<ShardWriter>.fromOpaque(client).takeUnretainedValue()
    // On failure the writer keeps the error; libarchive reports its own generic one.
    return writer.write(UnsafeRawBufferPointer(start: buffer, count: length))
}
