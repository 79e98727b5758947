/// The class of a failure, which is also the process exit code a command reports for it.
///
/// The first five follow `sysexits.h`; the rest are fedrec's own so that scripts can tell
/// a corrupt file from a mismatched one without parsing messages. `docs/FORMATS.md` lists them.
public enum FailureClass: Int32, Sendable, CaseIterable, CustomStringConvertible {
    /// Wrong arguments (EX_USAGE).
    case usage = 64
    /// Input that does not parse: a bad ratings line, malformed JSON or header (EX_DATAERR).
    case badData = 65
    /// An input file that does not exist or cannot be opened (EX_NOINPUT).
    case noInput = 66
    /// An output that cannot be created (EX_CANTCREAT).
    case cannotCreate = 73
    /// A read or write that failed half way (EX_IOERR).
    case io = 74
    /// A file written by a newer format version than this build understands.
    case newerVersion = 80
    /// A file of another kind than the command expects (an update where a model is due).
    case wrongKind = 81
    /// Tensor bytes whose checksum does not match the header.
    case checksum = 82
    /// Tensors whose names, dtypes or shapes do not fit the model.
    case shape = 83
    /// A truncated or corrupt file or archive.
    case corrupt = 84
    /// An input that holds nothing to work on.
    case emptyInput = 85
    /// Files that do not belong together: another base model, round or dataset.
    case mismatch = 86
    /// A privacy budget that a release would exceed.
    case budgetExhausted = 87
    /// Too few parties left in a secure-aggregation round to finish it (fewer than its
    /// threshold), so nothing is released.
    case tooFewParties = 88
    /// A secure-aggregation step a party refuses because answering it could reveal a single
    /// party's update (both kinds of share for one party, or a second unmasking request).
    case refused = 89

    public var description: String {
        switch self {
        case .usage: "usage"
        case .badData: "bad data"
        case .noInput: "no input"
        case .cannotCreate: "cannot create output"
        case .io: "I/O error"
        case .newerVersion: "newer format version"
        case .wrongKind: "wrong kind"
        case .checksum: "checksum mismatch"
        case .shape: "shape mismatch"
        case .corrupt: "corrupt or truncated"
        case .emptyInput: "empty input"
        case .mismatch: "mismatched inputs"
        case .budgetExhausted: "privacy budget exhausted"
        case .tooFewParties: "too few parties"
        case .refused: "refused"
        }
    }
}

/// The one error type fedrec's library throws: a failure class, the file it concerns and a
/// sentence for a person. Commands print `description` as a single stderr line and exit
/// with `failure.rawValue`.
public struct FedRecError: Error, Sendable, CustomStringConvertible, Equatable {
    public let failure: FailureClass
    /// The file the problem is in, as the user named it (`-` for stdin/stdout), if any.
    public let file: String?
    public let message: String

    public init(_ failure: FailureClass, file: String? = nil, _ message: String) {
        self.failure = failure
        self.file = file
        self.message = message
    }

    public var description: String {
        guard let file else { return message }
        return "\(file): \(message)"
    }

    /// The same error, attributed to `file` unless it already names one.
    public func inFile(_ file: String) -> FedRecError {
        self.file == nil ? FedRecError(failure, file: file, message) : self
    }
}

/// Runs `body`, attributing a `FedRecError` that names no file to `path`, so an error found
/// deep in a parser still says which file it is about.
public func inFile<T>(_ path: String, _ body: () throws -> T) rethrows -> T {
    do { return try body() } catch let error as FedRecError { throw error.inFile(path) }
}
