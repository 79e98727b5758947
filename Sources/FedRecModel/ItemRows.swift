import Synchronization
import FedRecFormats
import FedRecSupport

/// Read access to a checkpoint's item parameters (embedding rows and biases), whether the
/// checkpoint is standalone or an overlay of changed rows on a base checkpoint.
///
/// Rows come straight from the memory-mapped files: a reader that touches a few rows reads
/// (and verifies, see `ChunkVerifier`) only those pages, so its cost follows the data it
/// holds, not the catalogue. `dense()` gives the whole matrices for the readers that need
/// every row (full ranking, the implicit-ALS Gram matrix).
public struct ItemRows: @unchecked Sendable {
    /// Number of items.
    public let count: Int
    /// Embedding dimension d.
    public let dim: Int
    private let baseEmbedding: UnsafePointer<Float>
    private let baseBias: UnsafePointer<Float>
    private let embeddingInfo: TensorInfo
    private let biasInfo: TensorInfo
    private let verifier: ChunkVerifier?
    /// The verifier's first chunk of the embedding and bias tensors (resolved once).
    private let embeddingChunk: Int
    private let biasChunk: Int
    /// An overlay's rows (ascending) and their values; empty for a standalone checkpoint.
    let overlayRows: UnsafeBufferPointer<Int32>
    let overlayEmbedding: UnsafeBufferPointer<Float>
    let overlayBias: UnsafeBufferPointer<Float>
    private let storage: Storage

    /// Keeps the mapped files alive and owns the dense copy of an overlay once one is made
    /// (items × d embedding values, then items biases; never changed once filled).
    private final class Storage: @unchecked Sendable {
        let files: [SafeTensorsFile]
        let dense = Mutex<UnsafeMutableBufferPointer<Float>?>(nil)
        init(files: [SafeTensorsFile]) { self.files = files }
        deinit { dense.withLock { $0?.deallocate() } }
    }

    /// Rows of `base` (a verified standalone checkpoint of `items` × `dim`), replaced by the
    /// overlay rows of `overlay` when given.
    init(base: FedRecFile, overlay: FedRecFile?, items: Int, dim: Int) throws {
        count = items
        self.dim = dim
        let tensors = base.tensors
        embeddingInfo = try tensors.require(TensorName.itemEmbedding, .f32, [items, dim])
        biasInfo = try tensors.require(TensorName.itemBias, .f32, [items])
        guard let embedding = try tensors.floatView(embeddingInfo).baseAddress, let bias = try tensors.floatView(biasInfo).baseAddress else {
            throw FedRecError(.shape, file: base.path, "has no item rows")
        }
        baseEmbedding = embedding
        baseBias = bias
        verifier = base.chunks
        embeddingChunk = base.chunks?.firstChunk(of: embeddingInfo) ?? 0
        biasChunk = base.chunks?.firstChunk(of: biasInfo) ?? 0
        if let overlay {
            let file = overlay.tensors
            let rows = try file.info(TensorName.overlayRows)
            guard rows.dtype == .i32, rows.shape.count == 1 else {
                throw FedRecError(.shape, file: overlay.path, "tensor \(TensorName.overlayRows) is \(rows.dtype.rawValue) \(rows.shape), expected I32 [n]")
            }
            let n = rows.shape[0]
            let raw = file.bytes(of: rows)
            guard n == 0 || Int(bitPattern: raw.baseAddress) % 4 == 0 else {
                throw FedRecError(.corrupt, file: overlay.path, "tensor \(TensorName.overlayRows) is not 4-byte aligned")
            }
            overlayRows = raw.assumingMemoryBound(to: Int32.self)
            overlayEmbedding = try file.floatView(try file.require(TensorName.overlayItemEmbedding, .f32, [n, dim]))
            overlayBias = try file.floatView(try file.require(TensorName.overlayItemBias, .f32, [n]))
            try requireAscendingItems(overlayRows.lazy.map { Int32(littleEndian: $0) }, items: items, tensor: TensorName.overlayRows, file: overlay.path)
            storage = Storage(files: [base.tensors, overlay.tensors])
        } else {
            overlayRows = UnsafeBufferPointer(start: nil, count: 0)
            overlayEmbedding = UnsafeBufferPointer(start: nil, count: 0)
            overlayBias = UnsafeBufferPointer(start: nil, count: 0)
            storage = Storage(files: [base.tensors])
        }
    }

    /// The overlay slot of `item`, or nil when the row comes from the base.
    @inline(__always)
    func overlaySlot(_ item: Int) -> Int? {
        var low = 0, high = overlayRows.count
        let target = Int32(item)
        while low < high {
            let mid = (low + high) >> 1
            if overlayRows[mid] < target { low = mid + 1 } else { high = mid }
        }
        return low < overlayRows.count && overlayRows[low] == target ? low : nil
    }

    /// Item `item`'s embedding row (d values).
    @inline(__always)
    public func embedding(_ item: Int) -> UnsafePointer<Float> {
        precondition(item >= 0 && item < count, "item \(item) outside the model's \(count) items")
        if !overlayRows.isEmpty, let slot = overlaySlot(item) { return overlayEmbedding.baseAddress! + slot * dim }
        let bytes = 4 * dim
        verifier?.verify(embeddingInfo, firstChunk: embeddingChunk, bytes: (item * bytes)..<((item + 1) * bytes))
        return baseEmbedding + item * dim
    }

    /// Item `item`'s bias.
    @inline(__always)
    public func bias(_ item: Int) -> Float {
        precondition(item >= 0 && item < count, "item \(item) outside the model's \(count) items")
        if !overlayRows.isEmpty, let slot = overlaySlot(item) { return overlayBias[slot] }
        verifier?.verify(biasInfo, firstChunk: biasChunk, bytes: (4 * item)..<(4 * item + 4))
        return baseBias[item]
    }

    /// Item `item`'s embedding row as a buffer.
    @inline(__always)
    public func embeddingRow(_ item: Int) -> UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: embedding(item), count: dim)
    }

    /// Every item's embedding (items × d, row-major) and bias, verified. For a standalone
    /// checkpoint these are the mapped tensors; an overlay is resolved into one copy,
    /// made once and kept as long as this value (or a copy of it) lives.
    /// - Complexity: O(items · d) on first use.
    public func dense() throws -> DenseItems {
        verifier?.verifyAll(embeddingInfo)
        verifier?.verifyAll(biasInfo)
        try verifier?.check()
        let base = DenseItems(embedding: UnsafeBufferPointer(start: baseEmbedding, count: count * dim),
                              bias: UnsafeBufferPointer(start: baseBias, count: count), dim: dim)
        if overlayRows.isEmpty { return base }
        let values = storage.dense.withLock { cached in
            if let cached { return cached }
            let values = UnsafeMutableBufferPointer<Float>.allocate(capacity: count * dim + count)
            _ = values.initialize(fromContentsOf: base.embedding)
            _ = UnsafeMutableBufferPointer(rebasing: values[(count * dim)...]).initialize(fromContentsOf: base.bias)
            for (slot, row) in overlayRows.enumerated() {
                let item = Int(row)
                for k in 0..<dim { values[item * dim + k] = overlayEmbedding[slot * dim + k] }
                values[count * dim + item] = overlayBias[slot]
            }
            cached = values
            return values
        }
        return DenseItems(embedding: UnsafeBufferPointer(rebasing: values[..<(count * dim)]),
                          bias: UnsafeBufferPointer(rebasing: values[(count * dim)...]), dim: dim)
    }

    /// Throws the first checksum failure among the rows read so far. Commands call this
    /// (through `ModelView.checkIntegrity`) before they release any output.
    public func checkIntegrity() throws {
        try verifier?.check()
    }
}

/// Every item's parameters as contiguous, verified matrices (valid while the `ItemRows`
/// they came from, or a copy of it, lives).
public struct DenseItems: @unchecked Sendable {
    /// items × d, row-major.
    public let embedding: UnsafeBufferPointer<Float>
    public let bias: UnsafeBufferPointer<Float>
    public let dim: Int

    /// Ranking scores of every item for a user: b_i + p_u·q_i (terms equal for all items
    /// are left out).
    /// - Complexity: O(items · d).
    public func score(user p: [Float], into scores: inout [Float]) {
        guard let rows = embedding.baseAddress else { return }
        let d = dim
        scores.withUnsafeMutableBufferPointer { out in
            p.withUnsafeBufferPointer { p in
                for i in 0..<bias.count {
                    out[i] = bias[i] + VectorKernels.dot(p.baseAddress!, rows + i * d, n: d)
                }
            }
        }
    }
}
