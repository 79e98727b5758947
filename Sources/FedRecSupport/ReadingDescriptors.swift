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
