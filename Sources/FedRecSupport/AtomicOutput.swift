#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An output file that appears whole or not at all.
///
/// Bytes go to a hidden temporary file beside the destination; `commit()` flushes, syncs
/// and renames it into place. An output that is dropped without `commit()` (an error was
/// thrown half way) removes its temporary file, so a failed command leaves nothing behind
/// and never truncates a good file of the same name. The path `-` writes to stdout.
///
/// A destination that is not a regular file (a device such as `/dev/null`, a FIFO, a
/// process substitution's `/dev/fd/N`) is a stream: it is written directly, since
/// renaming a file onto it would replace the device node itself.
///
/// The temporary is named `.NAME.PID.SUFFIX.tmp` (`TemporaryFiles`): removed on SIGINT,
/// SIGTERM and SIGHUP by a command, and, after a SIGKILL, by the next output written into
/// the same directory.
public final class AtomicOutput {
    /// The destination as the user named it.
    public let path: String
    private let temporaryPath: String?
    private var descriptor: Int32
    private var buffer: [UInt8] = []
    private var finished = false
    private let durable: Bool
    /// Whether `descriptor` is a stream this output opened (a device or FIFO), closed when
    /// it is committed or dropped; stdout is left open.
    private var ownsStream = false
    /// The registration that removes the temporary file if a signal ends the process.
    private var token: Int?
    private static let bufferLimit = 1 << 16

    /// Opens a temporary file beside `path` (or stdout for `-`).
    /// - Parameters:
    ///   - durable: `fsync` before the rename, so the content survives a crash of the
    ///     machine, not only of the process (the privacy ledger needs this).
    ///   - privateFile: create the file readable by its owner only (mode 600): for files
    ///     that hold private keys.
    public init(path: String, durable: Bool = true, privateFile: Bool = false) throws {
        self.path = path
        self.durable = durable
        buffer.reserveCapacity(Self.bufferLimit)
        if path == "-" {
            temporaryPath = nil
            descriptor = STDOUT_FILENO
            return
        }
        var info = stat()
        // (A directory in the way fails at the rename, leaving it as it was.)
        if stat(path, &info) == 0 && (info.st_mode & S_IFMT) != S_IFREG && (info.st_mode & S_IFMT) != S_IFDIR {
            let fd = open(path, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { throw FedRecError(.cannotCreate, file: path, "cannot open output: \(systemError())") }
            temporaryPath = nil
            descriptor = fd
            ownsStream = true
            return
        }
        TemporaryFiles.removeStale(beside: path)
        let temporary = TemporaryFiles.path(beside: path)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, privateFile ? 0o600 : 0o644)
        guard fd >= 0 else {
            throw FedRecError(.cannotCreate, file: path, "cannot create output: \(systemError())")
        }
        temporaryPath = temporary
        descriptor = fd
        token = TemporaryFiles.register(temporary)
    }

    deinit {
        if !finished { abandon() }
    }

    /// Appends raw bytes.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        if buffer.count + bytes.count > Self.bufferLimit { try flush() }
        if bytes.count >= Self.bufferLimit {
            try writeAll(bytes)
        } else {
            buffer.append(contentsOf: bytes)
        }
    }

    /// Appends the bytes of an array (of any trivial element type).
    public func write<T>(contentsOf array: [T]) throws {
        try array.withUnsafeBytes { try write($0) }
    }

    /// Appends UTF-8 text.
    public func write(_ text: String) throws {
        var text = text
        try text.withUTF8 { try write(UnsafeRawBufferPointer($0)) }
    }

    /// Makes the output visible under its final name. Nothing is visible before this.
    public func commit() throws {
        // A failed flush leaves the output unfinished: `abandon()` (or deinit) cleans up.
        try flush()
        finished = true
        guard let temporaryPath else {
            if ownsStream && close(descriptor) != 0 {
                throw FedRecError(.io, file: path, "write failed: \(systemError())")
            }
            return
        }
        TemporaryFiles.crashPointForTests()
        defer { token.map(TemporaryFiles.forget) }
        if durable && fsync(descriptor) != 0 {
            let reason = systemError()
            close(descriptor)
            unlink(temporaryPath)
            throw FedRecError(.io, file: path, "cannot sync output: \(reason)")
        }
        close(descriptor)
        guard rename(temporaryPath, path) == 0 else {
            let reason = systemError()
            unlink(temporaryPath)
            throw FedRecError(.cannotCreate, file: path, "cannot move output into place: \(reason)")
        }
    }

    /// Drops the output: the temporary file is removed and the destination left as it was.
    /// After `commit()` (or a first `abandon()`) it does nothing: the descriptor is closed
    /// already, and its number may belong to another file by now.
    public func abandon() {
        guard !finished else { return }
        finished = true
        if ownsStream { close(descriptor) }
        if let temporaryPath {
            close(descriptor)
            unlink(temporaryPath)
            token.map(TemporaryFiles.forget)
        }
    }

    private func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        guard writeAllBytes(descriptor, bytes) else { throw FedRecError(.io, file: path, "write failed: \(systemError())") }
    }
}

/// Writes `bytes` to `path` atomically (`-` for stdout).
public func writeAtomically(_ bytes: [UInt8], to path: String, durable: Bool = true) throws {
    let output = try AtomicOutput(path: path, durable: durable)
    try output.write(contentsOf: bytes)
    try output.commit()
}

/// Writes `text` to `path` atomically (`-` for stdout).
public func writeAtomically(_ text: String, to path: String, durable: Bool = true) throws {
    let output = try AtomicOutput(path: path, durable: durable)
    try output.write(text)
    try output.commit()
}

/// The C library's message for the current `errno`.
public func systemError() -> String {
    String(cString: strerror(errno))
}

/// Appends one line to `path` (created if missing) with a single `write` on an
/// `O_APPEND` descriptor, so concurrent appenders never interleave within a line.
/// - Parameter durable: `fsync` before returning.
public func appendLine(_ line: String, to path: String, durable: Bool = false) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw FedRecError(.cannotCreate, file: path, "cannot open for appending: \(systemError())") }
    defer { close(fd) }
    TemporaryFiles.crashPointForTests()
    var text = line.hasSuffix("\n") ? line : line + "\n"
    let written = text.withUTF8 { Glibc.write(fd, $0.baseAddress, $0.count) }
    guard written == text.utf8.count else { throw FedRecError(.io, file: path, "short append: \(systemError())") }
    if durable && fsync(fd) != 0 { throw FedRecError(.io, file: path, "cannot sync: \(systemError())") }
}
