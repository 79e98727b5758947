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
    /// The protocol's version, recorded in every message and bound into every derived key and
    /// envelope. Version 2 expands masks with AES-256-CTR, ⌈b/8⌉ keystream bytes a coordinate
    /// (`MaskExpansion`); version 1 used ChaCha20 and 4 bytes a coordinate. Masks of two versions
    /// do not cancel, so a file of another version is refused.
    public static let protocolVersion = 2
}
