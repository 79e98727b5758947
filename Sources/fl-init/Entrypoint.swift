import FedRecCLI

@main
struct Entrypoint {
    static func main() { InitCommand.main() }
}
