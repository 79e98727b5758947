/// Secure aggregation: each party's update is masked so that only the sum over a round's
/// surviving parties can be recovered, and the round completes when parties drop out
/// between any two steps.
///
/// The protocol is SecAgg (Bonawitz et al., "Practical Secure Aggregation for
/// Privacy-Preserving Machine Learning", CCS 2017) with the sparse neighbour graph of
/// SecAgg+ (Bell et al., "Secure Single-Server Aggregation with (Poly)Logarithmic
/// Overhead", CCS 2020). This target holds the protocol's arithmetic and cryptography:
/// key agreement, Shamir sharing, the neighbour graph and its parameters, quantisation and
/// the masks. It reads and writes no files.
public enum SecureAggregation {
    /// The protocol's version, recorded in every message.
    public static let protocolVersion = 1
}
