import FedRecSupport

/// What a fedrec safetensors file holds, from its `kind` metadata.
public enum FileKind: String, Sendable, CaseIterable {
    /// Global model parameters (and the server optimizer's state) after some round.
    case model
    /// One shard's sum of client contributions for one round.
    case update
    /// A sum of updates (possibly noised for differential privacy).
    case sum
    /// A shard's private per-client parameters; never leaves the client side.
    case state
    /// Frozen text embeddings of a dataset's items (`fl-encode`), one row per item index.
    case textEmbedding = "text_embedding"
    /// A low-rank adapter (LoRA) of a text encoder's weights (`FedRecText.LoRAAdapter`).
    case textAdapter = "text_adapter"
    /// Secure aggregation (docs/FORMATS.md): the round's session, a group's key
    /// advertisements, the roster, a group's encrypted shares, the server's relay of them,
    /// the unmasking request, a group's revealed shares, and a group's private state.
    case secaggSession = "secagg_session"
    case secaggKeys = "secagg_keys"
    case secaggRoster = "secagg_roster"
    case secaggShares = "secagg_shares"
    case secaggDeliveries = "secagg_deliveries"
    case secaggRequest = "secagg_request"
    case secaggReveal = "secagg_reveal"
    case secaggState = "secagg_state"
    /// A shard's update quantised and masked mod 2^b, and a sum of such (still masked).
    case maskedUpdate = "masked_update"
    case maskedSum = "masked_sum"
}

/// The format name and version fedrec writes into every file's `__metadata__`.
public enum FedRecFormat {
    public static let name = "fedrec"
    /// Raised when a file layout changes incompatibly; readers refuse newer versions.
    /// Version 2: model checkpoints carry chunked checksums and may be overlays on a base.
    /// Version 3: every header carries `header_checksum` (`HeaderSeal`), every shard member
    /// is covered by a checksum (shard header and users' `KEY.json` sealed, `KEY.json`
    /// listing its npy members' XXH64), state files and updates name their shard.
    /// Version 4: an ALS update's `rows.als_gram` holds each item's symmetric Gram block as
    /// its packed upper triangle, n(n + 1)/2 values, not the n² of the full block; ALS
    /// updates and sums carry chunked checksums, so they can be verified as they stream.
    /// Files of versions 1 to 3 are still read, with the checks they allow (an older ALS
    /// update's full Gram blocks are packed as it is read).
    public static let version = 4
}

/// A safetensors file checked as a fedrec file: right format, a version this build reads,
/// one of the expected kinds and tensor bytes matching their checksum.
public struct FedRecFile: Sendable {
    public let tensors: SafeTensorsFile
    public let kind: FileKind
    /// With a chunked checksum: the verifier of the tensors left to verify on read.
    public let chunks: ChunkVerifier?

    public var path: String { tensors.path }
    public var metadata: [String: String] { tensors.metadata }

    /// Opens and verifies `path`.
    /// - Parameters:
    ///   - kinds: the kinds the caller accepts; any other is a `.wrongKind` error.
    ///   - verifyChecksum: recompute the checksum of the tensor bytes (O(file size)).
    ///   - lazyTensors: with a chunked checksum, tensors whose chunks are verified as they
    ///     are read (through `chunks`) rather than now.
    public init(path: String, kinds: Set<FileKind>, verifyChecksum: Bool = true, lazyTensors: Set<String> = []) throws {
        try self.init(file: SafeTensorsFile(path: path), kinds: kinds, verifyChecksum: verifyChecksum, lazyTensors: lazyTensors)
    }

    /// Verifies an already opened safetensors file as a fedrec file.
    public init(file: SafeTensorsFile, kinds: Set<FileKind>, verifyChecksum: Bool = true, lazyTensors: Set<String> = []) throws {
        let path = file.path
        let expected = kinds.map(\.rawValue).sorted().joined(separator: " or ")
        guard file.metadata["format"] == FedRecFormat.name else {
            throw FedRecError(.wrongKind, file: path, "not a fedrec file (no format=fedrec in its metadata), expected a \(expected)")
        }
        guard let versionText = file.metadata["format_version"], let version = Int(versionText) else {
            throw FedRecError(.corrupt, file: path, "metadata has no valid format_version")
        }
        guard version <= FedRecFormat.version else {
            throw FedRecError(.newerVersion, file: path, "written by format version \(version); this fedrec reads up to version \(FedRecFormat.version), upgrade it")
        }
        // Before any other value of the header is used (a newer version may seal otherwise).
        let sealed = try HeaderSeal.verify(file)
        guard sealed || version < 3 else {
            throw FedRecError(.corrupt, file: path, "format version \(version) file without a \(HeaderSeal.key): the header is corrupt")
        }
        guard let kindName = file.metadata["kind"], let kind = FileKind(rawValue: kindName) else {
            throw FedRecError(.corrupt, file: path, "metadata has no valid kind")
        }
        guard kinds.contains(kind) else {
            throw FedRecError(.wrongKind, file: path, "is a \(kind.rawValue), expected a \(expected)")
        }
        var chunks: ChunkVerifier?
        if verifyChecksum {
            guard let recorded = file.metadata["checksum"] else {
                throw FedRecError(.corrupt, file: path, "metadata has no checksum")
            }
            if recorded.hasPrefix(ChunkedChecksum.prefix) {
                let verifier = try ChunkVerifier(file: file, recorded: recorded)
                for name in file.names where name != ChunkedChecksum.tensorName && !lazyTensors.contains(name) {
                    verifier.verifyAll(try file.info(name))
                }
                try verifier.check()
                chunks = verifier
            } else {
                guard recorded.hasPrefix("xxh64:") else { throw FedRecError(.corrupt, file: path, "metadata has no checksum fedrec knows: \(recorded.prefix(20))") }
                let actual = "xxh64:" + TensorChecksum.of(file)
                guard actual == recorded else {
                    throw FedRecError(.checksum, file: path, "tensor data checksum \(actual) does not match the header's \(recorded): the file is corrupt")
                }
            }
        }
        self.tensors = file
        self.kind = kind
        self.chunks = chunks
    }

    /// A required metadata value.
    public func string(_ key: String) throws -> String {
        guard let value = metadata[key] else { throw FedRecError(.corrupt, file: path, "metadata has no \(key)") }
        return value
    }

    /// A required integer metadata value.
    public func int(_ key: String) throws -> Int {
        guard let value = Int(try string(key)) else {
            throw FedRecError(.corrupt, file: path, "metadata \(key) is not an integer")
        }
        return value
    }

    /// A required integer metadata value within `range` (so later conversions, to Int32
    /// indices or UInt64 seeds, cannot trap).
    /// - Throws: `.corrupt` (84) naming the file, the key and the range.
    public func int(_ key: String, in range: ClosedRange<Int>) throws -> Int {
        let value = try int(key)
        guard range.contains(value) else {
            throw FedRecError(.corrupt, file: path, "metadata \(key) is \(value), outside \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }

    /// A required finite floating-point metadata value within `range`.
    /// - Throws: `.corrupt` (84) naming the file, the key and the range.
    public func double(_ key: String, in range: ClosedRange<Double>) throws -> Double {
        let value = try double(key)
        guard value.isFinite, range.contains(value) else {
            throw FedRecError(.corrupt, file: path, "metadata \(key) is \(value), outside \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }

    /// The largest round a file may record (rounds, counts and indices are Int32 on the wire).
    public static let maximumRound = Int(Int32.max) - 1
    /// The largest count (items, clients, users) a file may record: item and user indices are Int32.
    public static let maximumCount = Int(Int32.max)
    /// The largest embedding dimension a file may record.
    public static let maximumDim = 1 << 16

    /// A required floating-point metadata value.
    public func double(_ key: String) throws -> Double {
        guard let value = Double(try string(key)) else {
            throw FedRecError(.corrupt, file: path, "metadata \(key) is not a number")
        }
        return value
    }

    /// A required metadata value that names one case of `T`.
    public func enumValue<T: RawRepresentable & CaseIterable>(_ key: String) throws -> T where T.RawValue == String {
        let text = try string(key)
        guard let value = T(rawValue: text) else {
            let known = T.allCases.map(\.rawValue).joined(separator: ", ")
            throw FedRecError(.corrupt, file: path, "metadata \(key) is '\(text)', expected one of \(known)")
        }
        return value
    }
}
