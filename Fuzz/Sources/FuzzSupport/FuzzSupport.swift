import FedRecCore

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

// What the harnesses that go past the safetensors container share: rewriting an input
// with fresh checksums (as a malicious party could), their scratch files, and the rule
// that only a `FedRecError` is an acceptable failure.

/// A path in TMPDIR for this process's scratch files, `fedrec-fuzz-NAME-PID`.
public func scratchPath(_ name: String) -> String {
    (getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp") + "/fedrec-fuzz-\(name)-\(getpid())"
}

/// The input's metadata and tensors as `SafeTensorsWriter` writes them, with fresh
/// checksums and header seal (chunked when the input's were); nil when a tensor has a
/// dtype the writer has no payload for.
public func resealed(_ tensors: SafeTensorsFile) -> SafeTensorsWriter? {
    var metadata = tensors.metadata
    let chunked = metadata["checksum_chunk"] != nil
    for key in ["checksum", "checksum_chunk", "header_checksum"] { metadata[key] = nil }
    var writer = SafeTensorsWriter(metadata: metadata, checksummed: true)
    writer.chunkedChecksum = chunked
    for name in tensors.names where name != ChunkedChecksum.tensorName {
        guard let info = try? tensors.info(name) else { return nil }
        let raw = tensors.bytes(of: info)
        switch info.dtype {
        case .f64: writer.add(name, shape: info.shape, .f64(elements(raw)))
        case .f32: writer.add(name, shape: info.shape, .f32(elements(raw)))
        case .i64: writer.add(name, shape: info.shape, .i64(elements(raw)))
        case .u64: writer.add(name, shape: info.shape, .u64(elements(raw)))
        case .i32: writer.add(name, shape: info.shape, .i32(elements(raw)))
        case .u8: writer.add(name, shape: info.shape, .u8(elements(raw)))
        default: return nil
        }
    }
    return writer
}

/// Writes the input, resealed, to `path` and returns it as parsed; nil when it is no
/// safetensors file or cannot be written.
public func writeResealed(_ data: UnsafePointer<UInt8>?, _ size: Int, to path: String) -> SafeTensorsFile? {
    let input = MappedFile(path: "fuzz.safetensors", contents: UnsafeBufferPointer(start: data, count: size))
    guard let tensors = try? SafeTensorsFile(file: input), let writer = resealed(tensors),
        (try? writer.write(to: path, durable: false)) != nil
    else { return nil }
    return tensors
}

/// Writes `bytes` to `path` (created or truncated, mode 600); false when it cannot.
public func writeFile(_ bytes: UnsafeRawBufferPointer, to path: String) -> Bool {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var offset = 0
    while offset < bytes.count, let base = bytes.baseAddress {
        let n = write(fd, base + offset, bytes.count - offset)
        guard n > 0 else { return false }
        offset += n
    }
    return true
}

/// The elements of `raw`, copied (the input's bytes need not be aligned).
func elements<T: BitwiseCopyable>(_ raw: UnsafeRawBufferPointer) -> [T] {
    let count = raw.count / MemoryLayout<T>.stride
    return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
        UnsafeMutableRawBufferPointer(buffer).copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[0..<(count * MemoryLayout<T>.stride)]))
        initialized = count
    }
}

/// Runs `body`; a `FedRecError` is the expected refusal of bad input, anything else a bug.
public func attempt(_ body: () throws -> Void) {
    do { try body() } catch is FedRecError {} catch { fatalError("not a FedRecError: \(error)") }
}
