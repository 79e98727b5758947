import ArgumentParser
import FedRecCLI
import FedRecTextCLI

/// `fl-text-lora fl-init|fl-train-local|fl-eval ARGS…`: those commands with the text-lora
/// family registered. fl-init, fl-train-local and fl-eval do not link the text encoder (nor
/// OpenBLAS, whose thread pool would slow every MF process start); given a text-lora model
/// they exec this command, installed beside them, with their own arguments.
struct TextLoRACommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fl-text-lora",
        abstract: "fl-init, fl-train-local and fl-eval for text-lora models (they run it themselves).",
        discussion: """
            Not needed by hand: fl-init --model text-lora, and fl-train-local and fl-eval given \
            a text-lora model, replace themselves by this command with their arguments.

            Examples:
              fl-text-lora fl-eval --model model-0003.safetensors --dataset mls-search
            """,
        version: fedrecVersion,
        subcommands: [InitCommand.self, TrainLocalCommand.self, EvalCommand.self])
}

@main
struct Entrypoint {
    static func main() {
        TextFamilyLink.register(TextLoRACommands.hooks)
        TextLoRACommand.main()
    }
}
