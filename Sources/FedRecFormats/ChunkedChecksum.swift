import Synchronization
import FedRecSupport

/// fedrec's chunked checksum, used by model checkpoints: each tensor's bytes (in file
/// order) cut into 4 KiB chunks, the XXH64 of every chunk stored in the U64 tensor
/// `checksum.chunks`, and the header's `checksum` the XXH64 of that table.
///
/// Every process of a round opens the model, but a client reads only the rows of the items
/// it holds: with a whole-file checksum each of them would hash the whole catalogue. With
/// chunks a reader verifies the (small) table when it opens the file and each chunk the
/// first time it reads from it, so the cost follows the rows read, and every byte a
/// command uses is still verified before its output is released (`ChunkVerifier.check`).
public enum ChunkedChecksum {
    /// The table's tensor name.
    public static let tensorName = "checksum.chunks"
    /// Chunk size in bytes (the last chunk of a tensor may be shorter).
    public static let chunkBytes = 4096
    /// Prefix of the `checksum` metadata value.
    public static let prefix = "xxh64-chunks:"

    /// Chunks of a tensor of `bytes` bytes.
    static func chunkCount(bytes: Int) -> Int { (bytes + chunkBytes - 1) / chunkBytes }

    /// Appends the XXH64 of each chunk of `bytes` to `table`.
    static func appendHashes(of bytes: UnsafeRawBufferPointer, to table: inout [UInt64]) {
        var offset = 0
        while offset < bytes.count {
            let end = min(offset + chunkBytes, bytes.count)
            table.append(XXHash64.hash(UnsafeRawBufferPointer(rebasing: bytes[offset..<end])))
            offset = end
        }
    }

    /// The `checksum` metadata value for a chunk table.
    static func checksum(ofTable table: [UInt64]) -> String {
        let littleEndian = table.map { $0.littleEndian }
        return prefix + littleEndian.withUnsafeBytes { XXHash64.hex($0) }
    }
}

/// Verifies the chunks of a file with a chunked checksum as they are read.
///
/// Thread-safe: trainers read rows from several threads. A chunk is hashed at most once per
/// process when it is good; a bad chunk is recorded (the first failure is kept) and its
/// bytes are returned anyway, so hot loops need no `try`: the command calls `check()`
/// before it releases any output, and fails with the recorded error.
public final class ChunkVerifier: @unchecked Sendable {
    let file: SafeTensorsFile
    /// The verified chunk table (`checksum.chunks`).
    private let table: UnsafeRawBufferPointer
    /// Index in the table of each tensor's first chunk.
    private let firstChunk: [String: Int]
    private let words: Int
    private let done: UnsafeMutablePointer<Atomic<UInt64>>
    private let failure = Mutex<FedRecError?>(nil)

    /// Checks the table against the header's `checksum`.
    /// - Throws: `.corrupt` without a table of the right size, `.checksum` on a mismatch.
    init(file: SafeTensorsFile, recorded: String) throws {
        let path = file.path
        guard let info = file.tensors[ChunkedChecksum.tensorName], info.dtype == .u64, info.shape.count == 1 else {
            throw FedRecError(.corrupt, file: path, "has a chunked checksum but no U64 tensor \(ChunkedChecksum.tensorName)")
        }
        guard file.metadata["checksum_chunk"] == String(ChunkedChecksum.chunkBytes) else {
            throw FedRecError(.corrupt, file: path, "checksum_chunk is \(file.metadata["checksum_chunk"] ?? "missing"), this fedrec reads \(ChunkedChecksum.chunkBytes)")
        }
        var first: [String: Int] = [:]
        var count = 0
        for name in file.names where name != ChunkedChecksum.tensorName {
            first[name] = count
            count += ChunkedChecksum.chunkCount(bytes: file.tensors[name]!.byteRange.count)
        }
        guard info.shape[0] == count else {
            throw FedRecError(.corrupt, file: path, "\(ChunkedChecksum.tensorName) has \(info.shape[0]) chunks, the tensors have \(count)")
        }
        table = file.bytes(of: info)
        let actual = ChunkedChecksum.prefix + XXHash64.hex(table)
        guard actual == recorded else {
            throw FedRecError(.checksum, file: path, "chunk table checksum \(actual) does not match the header's \(recorded): the file is corrupt")
        }
        self.file = file
        firstChunk = first
        words = (count + 63) / 64
        done = .allocate(capacity: max(words, 1))
        for i in 0..<max(words, 1) { (done + i).initialize(to: Atomic(0)) }
    }

    deinit {
        done.deinitialize(count: max(words, 1))
        done.deallocate()
    }

    /// Verifies the chunks holding `bytes` (a range within tensor `info`) not verified yet.
    @inline(__always)
    public func verify(_ info: TensorInfo, bytes: Range<Int>) {
        guard let first = firstChunk[info.name] else { return }
        verify(info, firstChunk: first, bytes: bytes)
    }

    /// The index of tensor `info`'s first chunk in the table (nil for a tensor the table
    /// does not cover): readers that verify row by row resolve it once, not per row.
    public func firstChunk(of info: TensorInfo) -> Int? { firstChunk[info.name] }

    /// As `verify(_:bytes:)`, with the tensor's first chunk resolved by `firstChunk(of:)`.
    @inline(__always)
    public func verify(_ info: TensorInfo, firstChunk first: Int, bytes: Range<Int>) {
        guard !bytes.isEmpty else { return }
        let low = bytes.lowerBound / ChunkedChecksum.chunkBytes, high = (bytes.upperBound - 1) / ChunkedChecksum.chunkBytes
        for chunk in low...high { verifyChunk(first + chunk, of: info, local: chunk) }
    }

    /// Verifies every chunk of tensor `info`.
    public func verifyAll(_ info: TensorInfo) {
        verify(info, bytes: 0..<info.byteRange.count)
    }

    /// Verifies every chunk of every tensor now, throwing on the first bad one.
    public func verifyEverything() throws {
        for name in file.names where name != ChunkedChecksum.tensorName {
            if let info = file.tensors[name] { verifyAll(info) }
        }
        try check()
    }

    @inline(__always)
    private func verifyChunk(_ index: Int, of info: TensorInfo, local: Int) {
        let bit = UInt64(1) << UInt64(index & 63)
        if done[index >> 6].load(ordering: .acquiring) & bit != 0 { return }
        let start = local * ChunkedChecksum.chunkBytes
        let end = min(start + ChunkedChecksum.chunkBytes, info.byteRange.count)
        let tensor = file.bytes(of: info)
        let actual = XXHash64.hash(UnsafeRawBufferPointer(rebasing: tensor[start..<end]))
        let expected = UInt64(littleEndian: table.loadUnaligned(fromByteOffset: 8 * index, as: UInt64.self))
        if actual == expected {
            done[index >> 6].bitwiseOr(bit, ordering: .releasing)
        } else {
            failure.withLock { recorded in
                if recorded == nil {
                    recorded = FedRecError(.checksum, file: file.path, "tensor \(info.name) bytes \(start)..<\(end) do not match their checksum: the file is corrupt")
                }
            }
        }
    }

    /// Throws the first checksum failure seen so far, if any.
    public func check() throws {
        if let error = failure.withLock({ $0 }) { throw error }
    }
}
