import FedRecCLI

@main
struct Entrypoint {
    static func main() { EvalCommand.main() }
}
