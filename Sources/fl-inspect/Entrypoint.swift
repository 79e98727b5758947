import FedRecCLI

@main
struct Entrypoint {
    static func main() { InspectCommand.main() }
}
