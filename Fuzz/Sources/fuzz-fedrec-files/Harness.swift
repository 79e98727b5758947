import FedRecCore
import FuzzSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// libFuzzer harness for the readers above the safetensors container: what a party or a
/// server reads from another's file once its checksums pass. fuzz-safetensors stops at the
/// container because a mutated file fails its checksum; a malicious party can compute the
/// checksum, so here the input's metadata and tensors are written out again by
/// `SafeTensorsWriter` (checksums and header seal recomputed, chunked when the input's
/// were), and the file is handed to every reader that takes one: updates (plain,
/// compressed, ALS statistics, streamed ALS sums), masked updates and sums, every model
/// family's checkpoint, user state, text embeddings, item-pair sums and each
/// secure-aggregation message (keys, roster, share bundles and deliveries, unmasking
/// request, revealed shares, a party's private state) under the session the file names.
/// Any error must be a `FedRecError`; a trap or sanitizer report is a bug. The two files
/// an input becomes are deleted before the next input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFedRecFiles(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let path = scratch + ".safetensors", sessionPath = scratch + "-session.safetensors"
    defer {
        unlink(path)
        unlink(sessionPath)
    }
    guard let tensors = writeResealed(data, size, to: path) else { return 0 }
    readEverything(path, session: session(of: tensors, at: sessionPath))
    return 0
}

/// The session the input names (its metadata written as a session file and read back), so
/// the messages' readers get past the session check; a fresh one when it names none.
func session(of tensors: SafeTensorsFile, at path: String) -> SecAggSession {
    var metadata = tensors.metadata
    for key in ["checksum", "checksum_chunk", "header_checksum"] { metadata[key] = nil }
    metadata["kind"] = FileKind.secaggSession.rawValue
    let writer = SafeTensorsWriter(metadata: metadata, checksummed: true)
    if (try? writer.write(to: path, durable: false)) != nil, let named = try? SecAggSession(path: path) { return named }
    return SecAggSession(round: 0)
}

/// Every reader of a fedrec safetensors file, each on its own.
func readEverything(_ path: String, session: SecAggSession) {
    attempt { _ = try ModelUpdate.open(path) }
    attempt { _ = try ModelUpdate.load(path) }
    attempt { _ = try ALSSumStream.open(paths: [path]) }
    attempt { _ = try MaskedUpdateFile.read(path) }
    attempt { _ = try TensorModel.open(path) }
    attempt { _ = try MFModel.load(path) }
    attempt { _ = try NCFModel.open(path) }
    attempt { _ = try CTRModel.open(path) }
    attempt { _ = try GraphFilterModel.open(path) }
    attempt { _ = try TextEmbeddingTable.load(path) }
    attempt {
        let file = try FedRecFile(path: path, kinds: Set(FileKind.allCases))
        attempt { _ = try ItemPairSum.read(file) }
        attempt { _ = try ModelUpdate.read(file) }
        attempt {
            let config = try ModelConfig(file: file)
            attempt { _ = try UserState.load(path, config: config) }
        }
    }
    attempt { _ = try SecAggSession(path: path) }
    attempt { _ = try KeyAdvertisementFile.read(path, session: session) }
    attempt { _ = try SecAggRosterFile.read(path, session: session) }
    attempt { _ = try ShareEnvelopeFile.readBundles(path, session: session) }
    attempt { _ = try ShareEnvelopeFile.readDeliveries(path, session: session) }
    attempt { _ = try UnmaskRequestFile.read(path, session: session) }
    attempt { _ = try UnmaskResponseFile.read(path, session: session) }
    attempt { _ = try SecAggStateFile.read(path, session: session) }
}

/// The harness's files: one pair per process.
let scratch = scratchPath("files")
