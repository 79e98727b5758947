import Foundation
import Testing
import FedRecTestSupport
import FedRecSupport

/// fl-init, fl-train-local and fl-eval do not link the text encoder's OpenBLAS (whose thread
/// pool would slow every MF process start) and hand text-lora models to fl-text-lora.
@Suite("text-lora models go through fl-text-lora")
struct TextLoRADispatchTests {
    static let repositoryRoot: String = {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(4)  // Tests/FedRecCoreTests/CLI/TextLoRADispatchTests.swift
        return parts.joined(separator: "/")
    }()
    static let baseModel = repositoryRoot + "/models/all-MiniLM-L6-v2"

    /// Whether an executable names a shared library among its dependencies (its bytes hold
    /// the library's soname).
    static func links(_ command: String, _ library: String) throws -> Bool {
        let bytes = try Data(contentsOf: CommandRunner.directory.appendingPathComponent(command))
        return bytes.range(of: Data(library.utf8)) != nil
    }

    @Test("the MF commands do not link OpenBLAS; fl-text-lora, fl-encode and fl-recommend do")
    func linking() throws {
        for command in ["fl-init", "fl-train-local", "fl-eval", "fl-aggregate", "fl-partition"] {
            #expect(try !Self.links(command, "libopenblas"), "\(command)")
        }
        for command in ["fl-text-lora", "fl-encode", "fl-recommend"] {
            #expect(try Self.links(command, "libopenblas"), "\(command)")
        }
    }

    @Test("fl-init --model text-lora writes the adapter through fl-text-lora; without it beside fl-init, one line and exit 64",
          .enabled(if: fileExists(baseModel + "/model.safetensors"), "needs models/all-MiniLM-L6-v2 (run `make model`)"))
    func initThroughHelper() throws {
        let round = try CommandLineTests.Round()
        let arguments = ["--dataset", "ds", "--model", "text-lora", "--base-model", Self.baseModel, "--rank", "4",
                         "--targets", "query,value", "--frozen-a", "--seed", "3", "--json"]
        let made = try Tool.run("fl-init", arguments + ["-o", "lora.safetensors"], in: round.path)
        #expect(made.status == 0, "\(made.stderr)")
        // FFA-LoRA at r = 4 on query and value of MiniLM-L6's 6 layers: B only, 6 × 2 × 384 × 4.
        #expect(made.stdout.contains("\"model_type\":\"text-lora\"") && made.stdout.contains("\"parameters\":18432"), "\(made.stdout)")
        let inspect = try Tool.run("fl-inspect", ["lora.safetensors", "--json"], in: round.path)
        #expect(inspect.status == 0 && inspect.stdout.contains("text-lora"))
        // A copy of fl-init alone in a directory has no fl-text-lora beside it.
        let lonely = round.path + "/alone"
        try FileManager.default.createDirectory(atPath: lonely, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: CommandRunner.directory.appendingPathComponent("fl-init").path, toPath: lonely + "/fl-init")
        let refused = try Tool.run(lonely + "/fl-init", arguments + ["-o", "other.safetensors"], in: round.path)
        #expect(refused.status == 64 && refused.stderr.contains("fl-text-lora"), "\(refused.stderr)")
        #expect(refused.stderr.split(separator: "\n").count == 1)
        #expect(!fileExists(round.path + "/other.safetensors"))
    }
}
