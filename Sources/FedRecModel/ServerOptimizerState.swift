/// The server optimiser's moments, kept only for item rows some round has trained (plus
/// the global bias), so their size grows with the data, not with the catalogue. Rows are
/// ascending; each has d + 1 values (embedding, then bias).
public struct ServerOptimizerState: Sendable, Equatable {
    public var rows: [Int32] = []
    /// First moments (FedAvgM's momentum, FedAdam's and FedYogi's m), rows × (d + 1).
    public var m: [Float] = []
    /// Second moments (FedAdam, FedYogi), rows × (d + 1); empty for FedAvgM.
    public var v: [Float] = []
    /// The global bias's m and v.
    public var global: [Float] = [0, 0]

    public init() {}

    public static let rowsName = "server.rows"
    public static let mName = "server.m"
    public static let vName = "server.v"
    public static let globalName = "server.global"
}
