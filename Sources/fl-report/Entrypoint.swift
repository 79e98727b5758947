import FedRecCLI

@main
struct Entrypoint {
    static func main() { ReportCommand.main() }
}
