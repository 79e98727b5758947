#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A `TextOutputStream` over file descriptor 2 (Swift 6 forbids the global `stderr`).
public struct StandardError: TextOutputStream, Sendable {
    public init() {}

    public mutating func write(_ string: String) {
        var string = string
        string.withUTF8 { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = Glibc.write(2, buffer.baseAddress! + offset, buffer.count - offset)
                if n <= 0 { return }
                offset += n
            }
        }
    }
}

/// Where progress lines may go: stderr when it is an interactive terminal that can redraw
/// a line (`TERM` is not `dumb`), never otherwise, so logs and pipes stay clean.
public struct Progress: Sendable {
    public let enabled: Bool

    public init(quiet: Bool = false) {
        let term = getenv("TERM").map { String(cString: $0) } ?? ""
        enabled = !quiet && isatty(2) == 1 && term != "dumb"
    }

    /// Redraws the progress line.
    public func update(_ line: String) {
        guard enabled else { return }
        var err = StandardError()
        err.write("\r\u{1B}[K" + line)
    }

    /// Ends the progress line.
    public func finish() {
        guard enabled else { return }
        var err = StandardError()
        err.write("\r\u{1B}[K")
    }
}

/// Writes `text` to stdout (file descriptor 1) whole, retrying short writes and `EINTR`.
/// - Throws: `FedRecError(.io, file: "-")` when a write fails (a full disk, `/dev/full`,
///   a closed pipe with SIGPIPE ignored), so a command never exits 0 with its output lost.
public func writeStandardOutput(_ text: String) throws {
    var text = text
    guard text.withUTF8({ writeAllBytes(1, UnsafeRawBufferPointer($0)) }) else {
        throw FedRecError(.io, file: "-", "cannot write to stdout: \(String(cString: strerror(errno)))")
    }
}
