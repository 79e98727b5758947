#if canImport(Glibc)
import Glibc
#endif
import FedRecSupport

/// A tensor too large to hold, written aside as it is computed and copied into its file
/// by `SafeTensorsWriter` (payload `.spilled`): the bytes go to an unlinked temporary file
/// (nothing is left behind whatever ends the process) in a small buffer, and the XXH64 of
/// each 4 KiB chunk is taken on the way (`ChunkedChecksum`), so the file's chunked
/// checksum is known before its header is written and memory stays at the buffer's size.
public final class SpilledTensor {
    public let dtype: DType
    /// Elements appended so far.
    public private(set) var count = 0
    /// The chunk hashes of the bytes appended so far (the last, short chunk at `finish`).
    public private(set) var chunkHashes: [UInt64] = []
    private let descriptor: Int32
    private var buffer: [UInt8] = []
    private var written = 0
    private var finished = false
    private static let bufferBytes = 256 * ChunkedChecksum.chunkBytes

    /// Opens the temporary file in `directory`.
    /// - Throws: `.cannotCreate` when no file can be made there.
    public init(directory: String, dtype: DType) throws {
        self.dtype = dtype
        var template = Array((directory + "/.fedrec-spill-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw FedRecError(.cannotCreate, file: directory, "cannot create a temporary file: \(systemError())") }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        descriptor = fd
        buffer.reserveCapacity(Self.bufferBytes)
    }

    deinit { close(descriptor) }

    /// Appends `elements` values (their bytes, `dtype.size` each).
    public func append(_ bytes: UnsafeRawBufferPointer) throws {
        precondition(!finished && bytes.count % dtype.size == 0)
        count += bytes.count / dtype.size
        var offset = 0
        while offset < bytes.count {
            let take = min(Self.bufferBytes - buffer.count, bytes.count - offset)
            buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + take)]))
            offset += take
            if buffer.count == Self.bufferBytes { try flush() }
        }
    }

    /// Hashes and writes what the buffer holds (whole chunks but at the end).
    private func flush() throws {
        try buffer.withUnsafeBytes { bytes in
            ChunkedChecksum.appendHashes(of: bytes, to: &chunkHashes)
            var done = 0
            while done < bytes.count {
                let n = pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(written + done))
                guard n > 0 else { throw FedRecError(.io, "cannot write a temporary file: \(systemError())") }
                done += n
            }
        }
        written += buffer.count
        buffer.removeAll(keepingCapacity: true)
    }

    /// Ends the tensor: the last chunk is hashed and written.
    public func finish() throws {
        guard !finished else { return }
        try flush()
        finished = true
    }

    /// Copies the bytes into `output`, a buffer at a time.
    func copy(into output: AtomicOutput) throws {
        precondition(finished, "a spilled tensor is finished before it is written")
        var chunk = [UInt8](repeating: 0, count: Self.bufferBytes)
        var offset = 0
        while offset < written {
            let want = min(chunk.count, written - offset)
            let n = chunk.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress!, want, off_t(offset)) }
            guard n > 0 else { throw FedRecError(.io, "cannot read a temporary file back: \(systemError())") }
            try chunk.withUnsafeBytes { try output.write(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            offset += n
        }
    }
}

extension SafeTensorsWriter {
    /// Adds a spilled tensor (finished); the file must use the chunked checksum.
    public mutating func add(_ name: String, shape: [Int], spilled: SpilledTensor) {
        add(name, shape: shape, .spilled(spilled))
    }
}
