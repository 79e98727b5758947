/// A sparse vector over a flat index space: `index` strictly ascending, `value[k]` the
/// value at `index[k]`. Used for one client's SGD update seen as one vector (item row r,
/// column j at r · (d + 1) + j, the global bias at items · (d + 1)) and for the
/// error-feedback residual a client keeps between rounds (`UserState.residuals`).
public struct SparseVector: Sendable, Equatable {
    public var index: [Int32]
    public var value: [Float]

    public init(index: [Int32] = [], value: [Float] = []) {
        precondition(index.count == value.count, "a sparse vector of \(index.count) indices and \(value.count) values")
        self.index = index
        self.value = value
    }

    public var count: Int { index.count }
    public var isEmpty: Bool { index.isEmpty }
}
