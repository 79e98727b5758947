import FedRecCore

/// libFuzzer harness for the `.npy` reader: `Npy.decode` on the input's bytes, then each
/// conversion the shards use (`int32s`, `floats`, `interactions`). A decoded array must
/// re-encode to the same bytes when its header is the one fedrec writes. Any error must
/// be a `FedRecError`; a trap or sanitizer report is a bug.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNpy(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(UnsafeBufferPointer(start: data, count: size))
    attempt {
        let array = try Npy.decode(input, file: "fuzz.npy")
        precondition(array.body.count == array.count * array.dtype.itemSize)
        attempt { _ = try Npy.int32s(array, file: "fuzz.npy") }
        attempt { _ = try Npy.floats(array, file: "fuzz.npy") }
        attempt { _ = try Npy.interactions(array, file: "fuzz.npy") }
        // Decoding what fedrec writes gives back the same array.
        let encoded = array.body.withUnsafeBytes { Npy.encode(dtype: array.dtype, shape: array.shape, body: $0) }
        let again = try encoded.withUnsafeBytes { try Npy.decode($0, file: "again.npy") }
        precondition(again.dtype == array.dtype && again.shape == array.shape && again.body == array.body)
    }
    return 0
}

/// Runs `body`; a `FedRecError` is the expected refusal of bad input, anything else a bug.
func attempt(_ body: () throws -> Void) {
    do { try body() } catch is FedRecError {} catch { fatalError("not a FedRecError: \(error)") }
}
