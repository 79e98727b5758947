import FedRecCLI

@main
struct Entrypoint {
    static func main() { SecAggCommand.main() }
}
