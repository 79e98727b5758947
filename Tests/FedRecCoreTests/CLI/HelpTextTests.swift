import Foundation
import Testing
import FedRecCLI
import FedRecTestSupport
import FedRecCore
import FedRecTestSupport

/// `--help` and `--version` of every built command, as a user at an 80-column terminal
/// sees them.
@Suite("help text and version of every command")
struct HelpTextTests {
    /// The commands the package builds (Package.swift), each with its subcommands.
    static let commands: [[String]] = [
        ["fl-partition"], ["fl-init"], ["fl-train-local"], ["fl-aggregate"], ["fl-eval"], ["fl-inspect"],
        ["fl-dp-noise"], ["fl-dp-noise", "noise"], ["fl-dp-noise", "account"], ["fl-dp-noise", "calibrate"],
        ["fl-compact"], ["fl-encode"], ["fl-recommend"], ["fl-report"], ["fl-secagg"], ["fl-text-lora"],
    ] + ["session", "keys", "roster", "share", "relay", "mask", "request", "reveal", "unmask"].map { ["fl-secagg", $0] }

    /// Every fl-* executable beside the test bundle, so a new command cannot be missed.
    static func builtCommands() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: CommandRunner.directory.path)
            .filter { $0.hasPrefix("fl-") && !$0.contains(".") }.sorted()
    }

    /// The lines of the `Examples:` paragraph (up to the next blank line).
    static func examples(_ help: String) -> [String] {
        let lines = help.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let start = lines.firstIndex(of: "Examples:") else { return [] }
        return Array(lines[(start + 1)...].prefix { !$0.trimmingCharacters(in: .whitespaces).isEmpty })
    }

    @Test("every built command is covered")
    func everyCommandCovered() throws {
        let built = try Self.builtCommands()
        #expect(built == Set(Self.commands.map { $0[0] }).sorted())
    }

    @Test("--help fits in 80 columns and no example is wrapped mid-command", arguments: commands)
    func helpFitsIn80Columns(_ command: [String]) throws {
        let narrow = try CommandRunner.run(command[0], Array(command.dropFirst()) + ["--help"], environment: ["COLUMNS": "80"])
        #expect(narrow.status == 0 && narrow.stderr.isEmpty)
        for line in narrow.stdoutLines {
            // Characters, not bytes: ε, σ_b and b̃ take one column each.
            #expect(line.count <= 80, "\(command.joined(separator: " ")): \(line.count) columns: \(line)")
        }
        // The parser wraps text to the terminal; an example it had to wrap differs from the
        // same help printed on a very wide terminal.
        let wide = try CommandRunner.run(command[0], Array(command.dropFirst()) + ["--help"], environment: ["COLUMNS": "1000"])
        #expect(Self.examples(narrow.stdout) == Self.examples(wide.stdout), "\(command.joined(separator: " "))")
        if command.count == 1 { #expect(!Self.examples(narrow.stdout).isEmpty, "\(command[0]) has examples") }
        // Continued examples are indented under their first line.
        let examples = Self.examples(narrow.stdout)
        for (line, next) in zip(examples, examples.dropFirst()) where line.hasSuffix("\\") {
            #expect(next.hasPrefix("      "), "\(command[0]): \(next)")
        }
    }

    @Test("every command writes completion scripts for bash, zsh and fish (make completions)",
          arguments: commands.filter { $0.count == 1 }.map { $0[0] })
    func completionScripts(_ command: String) throws {
        for shell in ["bash", "zsh", "fish"] {
            let r = try CommandRunner.run(command, ["--generate-completion-script", shell])
            #expect(r.status == 0 && r.stderr.isEmpty, "\(command) \(shell)")
            // It completes the command's own options.
            #expect(r.stdout.contains(command) && r.stdout.contains("version"), "\(command) \(shell)")
        }
    }

    @Test("--version prints the one fedrec version and exits 0", arguments: commands)
    func version(_ command: [String]) throws {
        let r = try CommandRunner.run(command[0], Array(command.dropFirst()) + ["--version"])
        #expect(r.status == 0 && r.stderr.isEmpty)
        #expect(r.stdout == fedrecVersion + "\n")
        // Independently of the constant: a release number and the format version it writes.
        #expect(r.stdout.hasPrefix("fedrec ") && r.stdout.hasSuffix(" (file format \(FedRecFormat.version))\n"))
        #expect(r.stdout.split(separator: " ")[1].split(separator: ".").compactMap { Int($0) }.count == 3)
    }
}
