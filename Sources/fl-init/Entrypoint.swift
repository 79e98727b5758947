import FedRecCLI
import FedRecTextCLI

@main
struct Entrypoint {
    static func main() {
        TextFamilyLink.register(TextLoRACommands.hooks)
        InitCommand.main()
    }
}
