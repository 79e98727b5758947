import Testing

@testable import FedRecSecureAggregation

@Suite struct SecureAggregationTests {
    @Test func protocolVersionIsOne() {
        #expect(SecureAggregation.protocolVersion == 1)
    }
}
