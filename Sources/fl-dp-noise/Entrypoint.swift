import Foundation
import FedRecCLI

@main
struct Entrypoint {
    static func main() { DPNoiseCommand.main() }
}
