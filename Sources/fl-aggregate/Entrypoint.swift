import FedRecCLI

@main
struct Entrypoint {
    static func main() { AggregateCommand.main() }
}
