import Foundation
import FedRecSupport
import FedRecEvaluation
import FedRecTraining
import FedRecWire
import Synchronization

/// What `fl-init --model text-lora` asks for.
public struct TextLoRAInitRequest: Sendable {
    public var dataset: String
    public var output: String
    public var baseModel: String
    public var rank: Int
    public var alpha: Float
    public var targets: String
    public var frozenA: Bool
    public var seed: UInt64
    /// `search` or `next-item` (checked by the text family), and next-item's history.
    public var task: String
    public var historyLength: Int
    public var json: Bool
}

/// What `fl-train-local` asks of a text-lora model.
public struct TextLoRATrainRequest: Sendable {
    public var model: String
    public var shard: String
    public var output: String
    /// The dataset's items.tsv (nil: beside the shard's dataset).
    public var items: String?
    /// The base encoder's directory (nil: the one recorded at fl-init).
    public var baseModel: String?
    /// --epochs, --batch-size, --lr, --l2 (AdamW's weight decay), --negatives, --clip,
    /// --weighting, --seed as given (nil: the text-lora defaults).
    public var options: TrainingOptions
    public var batchSize: Int?
    public var learningRate: Float?
    public var weightDecay: Float?
    public var negatives: Int?
    /// Next item: transitions a user trains on an epoch (0: all).
    public var examplesPerUser: Int
    public var temperature: Float
    /// --loss as given: softmax or bce.
    public var loss: String
    public var threads: Int?
    /// With --secagg-session: each client masked as its own party (cross-device).
    public var secure: SecureClientMasking?
    public var quiet: Bool
    public var json: Bool
}

/// What masking each client's update as its own party needs (fl-train-local
/// --secagg-session): the session, the group's state, the roster, the deliveries, the
/// clip bounds, the randomness and any simulated dropout.
public struct SecureClientMasking: Sendable {
    public var session: SecAggSession
    public var state: String
    public var roster: String
    public var deliveries: String
    public var clip: Float
    public var tensorClips: [String: Float]
    public var randomness: SecureParty.Randomness
    public var dropout: SecureParty.SimulatedDropout
}

/// What `fl-eval` asks of a text-lora model.
public struct TextLoRAEvalRequest: Sendable {
    public var model: String
    public var shards: [String]
    public var items: String?
    public var baseModel: String?
    public var k: Int
    public var training: Bool
    /// The dataset's cold items (next item: no candidates, or the only ones with `cold`).
    public var coldItems: [Int32]
    public var cold: Bool
    /// Next item: a collaborative model to blend with (`--blend`), its dataset directory,
    /// user parameters and the β to score.
    public var blend: String?
    public var dataset: String?
    public var blendUsers: UserParameterSource?
    public var betas: [Float]
    public var threads: Int?
    public var metricsLog: String?
    public var json: Bool
}

/// The text-lora family's commands, which need the text encoder (and OpenBLAS): they live
/// in FedRecTextCLI, and an executable that links it registers them before parsing
/// (`TextFamilyLink.register`). FedRecCLI's commands dispatch a `text-lora` model here,
/// so they stay free of BLAS; one that finds nothing registered says which command does.
public struct TextFamilyHooks: Sendable {
    public var initialize: @Sendable (TextLoRAInitRequest) throws -> Void
    public var train: @Sendable (TextLoRATrainRequest) throws -> Void
    public var evaluate: @Sendable (TextLoRAEvalRequest) throws -> Void

    public init(
        initialize: @escaping @Sendable (TextLoRAInitRequest) throws -> Void, train: @escaping @Sendable (TextLoRATrainRequest) throws -> Void,
        evaluate: @escaping @Sendable (TextLoRAEvalRequest) throws -> Void
    ) {
        self.initialize = initialize
        self.train = train
        self.evaluate = evaluate
    }
}

/// Where the text family's commands are registered.
public enum TextFamilyLink {
    private static let hooks = Mutex<TextFamilyHooks?>(nil)

    /// Makes the text-lora family available to this process's commands.
    public static func register(_ value: TextFamilyHooks) { hooks.withLock { $0 = value } }

    /// The registered hooks. A process without them (fl-init, fl-train-local and fl-eval,
    /// which do not link the text encoder) replaces itself by `fl-text-lora` from its own
    /// directory, given `command` and this process's arguments, and does not return.
    /// - Throws: `.usage` when no `fl-text-lora` is installed beside this command; `.io`
    ///   when it cannot be started.
    static func require(_ command: String) throws -> TextFamilyHooks {
        if let value = hooks.withLock({ $0 }) { return value }
        let directory = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            .map { ($0 as NSString).deletingLastPathComponent } ?? "."
        let helper = directory + "/fl-text-lora"
        guard FileManager.default.isExecutableFile(atPath: helper) else {
            throw FedRecError(.usage, "text-lora models need fl-text-lora (the text encoder's half of \(command)) beside \(command), in \(directory)")
        }
        let arguments = [helper, command] + CommandLine.arguments.dropFirst()
        var pointers = arguments.map { strdup($0) } + [nil]
        execv(helper, &pointers)
        let reason = String(cString: strerror(errno))
        for pointer in pointers { free(pointer) }
        throw FedRecError(.io, file: helper, "cannot be started: \(reason)")
    }
}
