import FedRecTextCLI

@main
struct Entrypoint {
    static func main() { EncodeCommand.main() }
}
