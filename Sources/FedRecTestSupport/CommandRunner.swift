import Foundation

/// What a command printed and how it exited.
public struct CommandResult: Sendable {
    public var status: Int32
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
    /// overrides it and adds variables).
    public static func run(_ tool: String, _ arguments: [String], stdin: String? = nil, in directory: String? = nil,
                           environment extra: [String: String] = [:]) throws -> CommandResult {
        let process = Process()
        process.executableURL = Self.directory.appendingPathComponent(tool)
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
        return CommandResult(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                             stderr: String(decoding: errData, as: UTF8.self))
    }
}
