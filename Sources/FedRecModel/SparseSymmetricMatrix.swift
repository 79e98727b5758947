import Dispatch
import FedRecSupport

/// A square sparse matrix in compressed sparse rows, both triangles stored: row i's
/// entries are `columns[offsets[i] ..< offsets[i + 1]]` (strictly ascending) with
/// `values` beside them. Used for a graph filter's normalised item–item matrix, whose
/// rows a user's scores gather and whose products with blocks of vectors find its top
/// eigenvectors.
public struct SparseSymmetricMatrix: Sendable, Equatable {
    public var size: Int
    public var offsets: [Int]
    public var columns: [Int32]
    public var values: [Float]

    public init(size: Int, offsets: [Int], columns: [Int32], values: [Float]) {
        precondition(offsets.count == size + 1 && offsets.last == columns.count && columns.count == values.count, "CSR arrays do not fit")
        self.size = size
        self.offsets = offsets
        self.columns = columns
        self.values = values
    }

    public var nonzeros: Int { columns.count }

    /// Y = M X for a block X of `width` vectors (row-major n × width), rows split over
    /// `threads` workers; each row of Y is computed by one worker alone, in a fixed order,
    /// so the result does not depend on the thread count.
    /// - Complexity: O(nonzeros · width).
    public func multiply(_ x: [Float], width: Int, threads: Int) -> [Float] {
        precondition(x.count == size * width, "the block must have size × width values")
        var y = [Float](repeating: 0, count: size * width)
        let workers = max(1, min(threads, size / 64 + 1))
        y.withUnsafeMutableBufferPointer { yb in
            x.withUnsafeBufferPointer { xb in
                offsets.withUnsafeBufferPointer { ob in
                    columns.withUnsafeBufferPointer { cb in
                        values.withUnsafeBufferPointer { vb in
                            let shared = RowBlockPointers(y: yb, x: xb, offsets: ob, columns: cb, values: vb)
                            DispatchQueue.concurrentPerform(iterations: workers) { w in
                                let start = size * w / workers, end = size * (w + 1) / workers
                                for i in start..<end {
                                    let out = shared.y.baseAddress! + i * width
                                    for e in shared.offsets[i]..<shared.offsets[i + 1] {
                                        VectorKernels.addScaled(out, shared.x.baseAddress! + Int(shared.columns[e]) * width, n: width, scale: shared.values[e])
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return y
    }
}

extension SparseSymmetricMatrix {
    /// Checks compressed sparse rows read from `file`: `offsets` (size + 1 of them)
    /// non-decreasing from 0 to the entries, and each row's `columns` strictly ascending
    /// below `size`, from the row's own index on with `fromDiagonal` (an upper triangle).
    /// - Throws: `.corrupt`, naming the tensor and the row.
    public static func checkRows(offsets: [Int], columns: [Int32], size: Int, fromDiagonal: Bool, offsetTensor: String, columnTensor: String,
                                 file: String) throws {
        guard offsets.count == size + 1, offsets.first == 0, offsets.last == columns.count, zip(offsets, offsets.dropFirst()).allSatisfy({ $0 <= $1 }) else {
            throw FedRecError(.corrupt, file: file, "\(offsetTensor) is not \(size + 1) ascending offsets from 0 into \(columns.count) entries")
        }
        for i in 0..<size {
            var previous: Int32 = fromDiagonal ? Int32(i) - 1 : -1
            for e in offsets[i]..<offsets[i + 1] {
                guard columns[e] > previous, Int(columns[e]) < size else {
                    throw FedRecError(.corrupt, file: file, "row \(i) of \(columnTensor) is not strictly ascending item indices from \(fromDiagonal ? i : 0) to \(size - 1)")
                }
                previous = columns[e]
            }
        }
    }
}

/// The buffers a block product shares between its workers, which write disjoint rows.
private struct RowBlockPointers: @unchecked Sendable {
    let y: UnsafeMutableBufferPointer<Float>
    let x: UnsafeBufferPointer<Float>
    let offsets: UnsafeBufferPointer<Int>
    let columns: UnsafeBufferPointer<Int32>
    let values: UnsafeBufferPointer<Float>
}
