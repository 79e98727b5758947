import FedRecCore

/// libFuzzer harness for the JSON parser: `JSONValue.parse` on the input's bytes. A
/// document that parses must print (canonical and pretty) to text that parses back to the
/// same value: safetensors headers and ledger lines are hashed in canonical form. Any
/// error must be a `FedRecError`; a trap or sanitizer report is a bug.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSON(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(UnsafeBufferPointer(start: data, count: size))
    attempt {
        let value = try JSONValue.parse(input)
        guard allFinite(value) else { return }  // non-finite numbers print as null
        let canonical = value.canonicalText
        let reparsed = try JSONValue.parse(canonical)
        precondition(reparsed == value, "canonical text does not parse back: \(canonical)")
        precondition(reparsed.canonicalText == canonical, "canonical text is not a fixed point: \(canonical)")
        let pretty = try JSONValue.parse(value.prettyText)
        precondition(pretty == value, "pretty text does not parse back: \(value.prettyText)")
    }
    return 0
}

/// Whether every number in `value` is finite.
func allFinite(_ value: JSONValue) -> Bool {
    switch value {
    case .number(let d): d.isFinite
    case .array(let items): items.allSatisfy(allFinite)
    case .object(let members): members.values.allSatisfy(allFinite)
    default: true
    }
}

/// Runs `body`; a `FedRecError` is the expected refusal of bad input, anything else a bug.
func attempt(_ body: () throws -> Void) {
    do { try body() } catch is FedRecError {} catch { fatalError("not a FedRecError: \(error)") }
}
