import FedRecTextCLI

@main
struct Entrypoint {
    static func main() { RecommendCommand.main() }
}
