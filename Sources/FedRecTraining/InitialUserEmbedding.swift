import FedRecSupport

extension TrainingOptions {
    /// The embedding a user starts from when nothing is known of it yet: N(0, initScale²)
    /// per coordinate, from a stream of `seed` keyed by the user id, so that the trainer
    /// (a user new to its state file, or rebuilt by SGD every round) and the evaluator
    /// (rebuilding BPR and BCE users) start from the very same vector. Its bias starts at 0.
    public func initialEmbedding(user: Int32, dim: Int) -> [Float] {
        var generator = SeededGenerator(seed: seed, stream: 0xC0FF_EE00 &+ UInt64(user))
        return (0..<dim).map { _ in Float(generator.nextGaussian()) * initScale }
    }
}
