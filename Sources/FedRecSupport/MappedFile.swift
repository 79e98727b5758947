#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The bytes of an input file, memory-mapped read-only so large checkpoints cost no copy.
/// The path `-` (stdin) and files that cannot be mapped (a FIFO, a process substitution's
/// `/dev/fd/N`, a character device) are read to their end into memory instead. The input
/// is never modified.
public final class MappedFile: @unchecked Sendable {
    /// The path as the user named it.
    public let path: String
    /// The file's bytes; valid as long as this object lives.
    public let bytes: UnsafeRawBufferPointer
    private let mapped: Bool

    /// Bytes already in memory (stdin, a member of an archive, a test or fuzzing input),
    /// copied into 16-byte aligned storage so readers see them as they would a mapped file.
    /// - Parameter path: the name to put in errors.
    public convenience init(path: String, contents: some Collection<UInt8>) {
        let count = contents.count
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 16)
        _ = storage.initializeMemory(as: UInt8.self, from: contents)
        self.init(path: path, bytes: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(storage)[0..<count]), mapped: false)
    }

    /// `bytes` are unmapped (`mapped`) or deallocated when this object goes.
    private init(path: String, bytes: UnsafeRawBufferPointer, mapped: Bool) {
        self.path = path
        self.bytes = bytes
        self.mapped = mapped
    }

    public convenience init(path: String) throws {
        if path == "-" {
            self.init(path: path, bytes: try Self.readToEnd(STDIN_FILENO, path: path), mapped: false)
            return
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let failure: FailureClass = errno == ENOENT ? .noInput : .io
            throw FedRecError(failure, file: path, "cannot open: \(systemError())")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw FedRecError(.io, file: path, "cannot stat: \(systemError())")
        }
        guard (info.st_mode & S_IFMT) != S_IFDIR else {
            throw FedRecError(.noInput, file: path, "is a directory, expected a file")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            // A pipe or device has no size to map: stream it.
            self.init(path: path, bytes: try Self.readToEnd(fd, path: path), mapped: false)
            return
        }
        let size = Int(info.st_size)
        if size == 0 {
            self.init(path: path, bytes: UnsafeRawBufferPointer(start: nil, count: 0), mapped: false)
            return
        }
        guard let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), address != MAP_FAILED else {
            throw FedRecError(.io, file: path, "cannot map: \(systemError())")
        }
        self.init(path: path, bytes: UnsafeRawBufferPointer(start: address, count: size), mapped: true)
    }

    /// Reads `fd` to its end into an allocated buffer (freed in `deinit`).
    private static func readToEnd(_ fd: Int32, path: String) throws -> UnsafeRawBufferPointer {
        let data = try readAllBytes(fd, fromStart: false, path: path)
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(data.count, 1), alignment: 16)
        data.withUnsafeBytes { storage.copyMemory(from: $0) }
        return UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(storage)[0..<data.count])
    }

    /// Runs `body` with the bytes, keeping the mapping alive until it returns. Use this
    /// rather than `bytes` on a temporary: a mapping is unmapped when its object goes.
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withExtendedLifetime(self) { try body(bytes) }
    }

    /// Lets the kernel drop the pages of `region` (within `bytes`) from this process's
    /// resident memory, for a reader that streams forward through a large file and is
    /// done with everything before `region`'s end: they stay in the page cache and are
    /// read again if touched. The pages go from the one holding `region`'s first byte to
    /// the last that ends within it (so a page straddling two consecutive regions goes
    /// with the second); in memory that is not a mapping, nothing happens.
    public func releasePages(_ region: UnsafeRawBufferPointer) {
        guard mapped, let base = bytes.baseAddress, let start = region.baseAddress, region.count > 0 else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let low = base.distance(to: start), high = low + region.count
        guard low >= 0, high <= bytes.count else { return }
        let from = low / page * page, to = high / page * page
        guard to > from else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base + from), to - from, Int32(MADV_DONTNEED))
    }

    deinit {
        guard let base = bytes.baseAddress else { return }
        if mapped {
            munmap(UnsafeMutableRawPointer(mutating: base), bytes.count)
        } else {
            UnsafeMutableRawPointer(mutating: base).deallocate()
        }
    }
}

/// Whether a file or directory exists at `path`.
public func fileExists(_ path: String) -> Bool {
    var info = stat()
    return stat(path, &info) == 0
}

/// Whether `path` is a directory (or a link to one).
public func isDirectory(_ path: String) -> Bool {
    var info = stat()
    return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
}

/// Creates `path` and its parents, like `mkdir -p`.
public func makeDirectories(_ path: String) throws {
    var current = path.hasPrefix("/") ? "" : "."
    for component in path.split(separator: "/") {
        current += "/" + component
        if mkdir(current, 0o755) != 0 && errno != EEXIST {
            throw FedRecError(.cannotCreate, file: path, "cannot create directory: \(systemError())")
        }
    }
}
