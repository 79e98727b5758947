#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Every byte of `fd` until end of file, retrying reads that a signal interrupts.
/// `fromStart` reads with `pread` from offset 0 and leaves the descriptor's position alone
/// (a ledger opened to append); otherwise it reads on from the current position (a pipe,
/// stdin). The one loop behind the ledger, the release keys and unmappable inputs.
/// - Throws: `.io` naming `path` (and `what`, e.g. "ledger") when a read fails.
public func readAllBytes(_ fd: Int32, fromStart: Bool, path: String, what: String? = nil) throws -> [UInt8] {
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    var offset: off_t = 0
    while true {
        let n = chunk.withUnsafeMutableBytes { buffer in
            fromStart ? pread(fd, buffer.baseAddress, buffer.count, offset) : read(fd, buffer.baseAddress, buffer.count)
        }
        if n < 0 {
            if errno == EINTR { continue }
            throw FedRecError(.io, file: path, "cannot read\(what.map { " " + $0 } ?? ""): \(systemError())")
        }
        if n == 0 { return bytes }
        bytes.append(contentsOf: chunk[0..<n])
        offset += off_t(n)
    }
}

/// Writes every byte of `bytes` to `fd`, retrying writes that a signal interrupts or that
/// write only part. The one loop behind atomic outputs, stdout, the ledger and the release
/// keys.
/// - Returns: false when a write fails, with `errno` still set for the caller's message
///   (callers differ in what they undo first, e.g. the ledger cuts a torn line back off).
public func writeAllBytes(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
    guard var base = bytes.baseAddress else { return true }
    var remaining = bytes.count
    while remaining > 0 {
        let written = write(fd, base, remaining)
        if written < 0 {
            if errno == EINTR { continue }
            return false
        }
        remaining -= written
        base += written
    }
    return true
}

/// `fsync`s the directory holding `path`, so a file just created there survives a crash
/// (best effort: a directory that cannot be opened is left as it is).
public func syncDirectory(containing path: String) {
    let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
    let fd = open(directory.isEmpty ? "/" : directory, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return }
    _ = fsync(fd)
    close(fd)
}
