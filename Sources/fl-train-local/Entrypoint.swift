import FedRecCLI

@main
struct Entrypoint {
    static func main() { TrainLocalCommand.main() }
}
