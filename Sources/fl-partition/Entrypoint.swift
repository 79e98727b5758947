import FedRecCLI

@main
struct Entrypoint {
    static func main() { PartitionCommand.main() }
}
