import Testing

@testable import FedRecSecureAggregation

@Suite struct SecureAggregationTests {
    /// Version 2: AES-256-CTR masks, ⌈b/8⌉ keystream bytes a coordinate.
    @Test func protocolVersionIsTwo() {
        #expect(SecureAggregation.protocolVersion == 2)
        #expect(MaskExpansion.prgName == "aes-256-ctr")
    }
}
