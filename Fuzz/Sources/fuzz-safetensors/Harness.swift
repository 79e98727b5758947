import FedRecCore

/// libFuzzer harness for the safetensors reader: `SafeTensorsFile` on the input's bytes,
/// every tensor read through each accessor its dtype allows, then the fedrec layer
/// (`FedRecFile` with and without checksum verification, chunked checksums,
/// `ModelConfig`). Any error must be a `FedRecError`; a trap or sanitizer report is a bug.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let file = MappedFile(path: "fuzz.safetensors", contents: UnsafeBufferPointer(start: data, count: size))
    attempt {
        let tensors = try SafeTensorsFile(file: file)
        for name in tensors.names {
            let info = try tensors.info(name)
            precondition(tensors.bytes(of: info).count == info.elementCount * info.dtype.size)
            switch info.dtype {
            case .f32:
                attempt { _ = try tensors.floatView(info) }
                attempt { _ = try tensors.floats(name) }
            case .f16, .bf16:
                attempt { _ = try tensors.floats(name) }
            case .f64:
                attempt { _ = try tensors.floats(name) }
                attempt { _ = try tensors.doubles(name) }
            case .i32, .i64:
                attempt { _ = try tensors.int32s(name) }
            default:
                break
            }
        }
        for verify in [false, true] {
            attempt {
                let fedrec = try FedRecFile(file: tensors, kinds: Set(FileKind.allCases), verifyChecksum: verify)
                try fedrec.chunks?.verifyEverything()
                attempt { _ = try ModelConfig(file: fedrec) }
                attempt { _ = try fedrec.int("round") }
                attempt { _ = try fedrec.double("rating_min") }
            }
        }
    }
    return 0
}

/// Runs `body`; a `FedRecError` is the expected refusal of bad input, anything else a bug.
func attempt(_ body: () throws -> Void) {
    do { try body() } catch is FedRecError {} catch { fatalError("not a FedRecError: \(error)") }
}
