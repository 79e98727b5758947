import Foundation
import FedRecSupport

/// What a command printed and how it exited.
public struct CommandResult: Sendable {
    /// The exit status, or the signal number when a signal ended the process.
    public var status: Int32
    /// Whether a signal ended the process (then `status` is the signal number).
    public var signaled = false
    public var stdout: String
    public var stderr: String

    public var stdoutLines: [String] { stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init) }
    public var stderrLines: [String] { stderr.split(separator: "\n").map(String.init) }
}

/// Runs the built fl-* executables (found beside the test bundle, as SwiftPM's own tests
/// find theirs) the way a shell pipeline does, for the CLI tests of every test target.
public enum CommandRunner {
    /// The directory holding the built executables.
    public static let directory: URL = {
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: url.appendingPathComponent("fl-partition").path), url.path != "/" {
            url = url.deletingLastPathComponent()
        }
        return url
    }()

    /// Runs `tool` with `arguments`, feeding `stdin`, in `directory` (default: the current
    /// one), with `COLUMNS` fixed so help text wraps the same everywhere (`environment`
    /// overrides it and adds variables). `tool` is a built command's name, or a path (a
    /// script such as fl-rounds). The process is the leader of its own process group
    /// (Foundation's `Process` does that), so a test hook that kills its group kills
    /// nothing of the test's.
    public static func run(_ tool: String, _ arguments: [String], stdin: String? = nil, in directory: String? = nil,
                           environment extra: [String: String] = [:]) throws -> CommandResult {
        try run(tool, arguments, stdinBytes: stdin.map { Array($0.utf8) }, in: directory, environment: extra)
    }

    /// As `run(_:_:stdin:in:environment:)` for a step a test builds on: the result when
    /// the command exits 0, else an error naming the command, its status and its stderr.
    @discardableResult
    public static func succeeding(_ tool: String, _ arguments: [String], in directory: String? = nil) throws -> CommandResult {
        let r = try run(tool, arguments, in: directory)
        guard r.status == 0 else { throw FedRecError(.io, "\(tool) \(arguments.prefix(2)) failed (\(r.status)): \(r.stderr)") }
        return r
    }

    /// As `run(_:_:stdin:in:environment:)`, with binary stdin (a shard, a checkpoint) piped in.
    public static func run(_ tool: String, _ arguments: [String], stdinBytes: [UInt8]?, in directory: String? = nil,
                           environment extra: [String: String] = [:]) throws -> CommandResult {
        let process = Process()
        process.executableURL = tool.contains("/") ? URL(fileURLWithPath: tool) : Self.directory.appendingPathComponent(tool)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        var environment = ProcessInfo.processInfo.environment
        environment["COLUMNS"] = "100"
        environment.merge(extra) { _, new in new }
        process.environment = environment
        let out = Pipe(), err = Pipe(), input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        try process.run()
        // Write stdin on another thread while stdout is read, so neither pipe fills up.
        let writer = Thread {
            if let stdinBytes { input.fileHandleForWriting.write(Data(stdinBytes)) }
            try? input.fileHandleForWriting.close()
        }
        writer.start()
        // stderr is drained on its own thread too, so a command that fills that pipe
        // first cannot stall.
        let errBox = ReadBox()
        let errDone = DispatchSemaphore(value: 0)
        let errReader = Thread {
            errBox.bytes = readAll(err.fileHandleForReading.fileDescriptor)
            errDone.signal()
        }
        errReader.start()
        let outData = readAll(out.fileHandleForReading.fileDescriptor)
        process.waitUntilExit()
        errDone.wait()
        let errData = errBox.bytes
        return CommandResult(status: process.terminationStatus, signaled: process.terminationReason == .uncaughtSignal,
                             stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self))
    }

    /// Everything until end of file, retrying reads that a signal interrupts (Foundation's
    /// `readDataToEndOfFile` traps on EINTR, which a busy test process does receive).
    static func readAll(_ fd: Int32) -> [UInt8] {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                bytes += buffer[0..<n]
            } else if n == 0 || errno != EINTR {
                return bytes
            }
        }
    }
}

/// Bytes read on another thread (guarded by a lock; the reader signals when done).
private final class ReadBox: @unchecked Sendable {
    private let lock = NSLock()
    private var storedBytes: [UInt8] = []

    var bytes: [UInt8] {
        get { lock.withLock { storedBytes } }
        set { lock.withLock { storedBytes = newValue } }
    }
}
