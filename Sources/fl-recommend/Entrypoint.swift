import FedRecCLI

@main
struct Entrypoint {
    static func main() { RecommendCommand.main() }
}
