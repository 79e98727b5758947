import Foundation

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
    /// one), with `COLUMNS` fixed so help text wraps the same everywhere and `environment`
    /// added. `tool` is a built command's name, or a path (a script such as fl-rounds).
    /// The process is the leader of its own process group (Foundation's `Process` does
    /// that), so a test hook that kills its group kills nothing of the test's.
    public static func run(_ tool: String, _ arguments: [String], stdin: String? = nil, in directory: String? = nil,
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
            if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
            try? input.fileHandleForWriting.close()
        }
        writer.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return CommandResult(status: process.terminationStatus, signaled: process.terminationReason == .uncaughtSignal,
                             stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self))
    }
}
