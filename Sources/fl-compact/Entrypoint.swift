import FedRecCLI

@main
struct Entrypoint {
    static func main() { CompactCommand.main() }
}
