import FedRecSupport

/// Where one tensor sits in a safetensors file.
public struct TensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// Byte range within the data section (after the header).
    public let byteRange: Range<Int>

    /// Number of elements (product of the shape; 1 for a scalar).
    public var elementCount: Int { shape.reduce(1, *) }
}

/// A safetensors file opened for reading: header parsed and checked, tensor bytes
/// memory-mapped, nothing copied until asked for.
///
/// Layout (huggingface/safetensors): an 8-byte little-endian header length N, N bytes of
/// JSON (`{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
/// {string: string}}`), then the tensor bytes, little-endian, row-major, no holes.
/// Structure is validated on open: every offset in range, sizes matching dtype × shape,
/// no overlaps or gaps. fedrec's own checks (kind, version, checksum) are in `FedRecFile`.
public final class SafeTensorsFile: @unchecked Sendable {
    /// The path as the user named it.
    public let path: String
    /// `__metadata__`, string to string as the format requires.
    public let metadata: [String: String]
    /// The tensors by name.
    public let tensors: [String: TensorInfo]
    /// The raw header bytes (JSON plus padding), as hashed for `identity`.
    public let headerBytes: UnsafeRawBufferPointer
    /// The data section.
    public let data: UnsafeRawBufferPointer
    private let file: MappedFile

    /// The largest header accepted (the reference implementation's limit).
    public static let maximumHeaderLength = 100_000_000

    public convenience init(path: String) throws {
        try self.init(file: MappedFile(path: path))
    }

    public init(file: MappedFile) throws {
        self.file = file
        self.path = file.path
        let bytes = file.bytes
        func corrupt(_ what: String) -> FedRecError { FedRecError(.corrupt, file: file.path, what) }
        guard bytes.count > 0 else { throw FedRecError(.emptyInput, file: file.path, "file is empty") }
        guard bytes.count >= 8 else { throw corrupt("truncated: \(bytes.count) bytes, shorter than the 8-byte header length") }
        let declared = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
        guard declared >= 2, declared <= UInt64(Self.maximumHeaderLength) else {
            throw corrupt("not a safetensors file: header length \(declared) is out of range")
        }
        let headerLength = Int(declared)
        guard 8 + headerLength <= bytes.count else {
            throw corrupt("truncated: header of \(headerLength) bytes but only \(bytes.count - 8) follow")
        }
        headerBytes = UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + headerLength)])
        data = UnsafeRawBufferPointer(rebasing: bytes[(8 + headerLength)...])
        let header: JSONValue
        do {
            header = try JSONValue.parse(headerBytes)
        } catch let error as FedRecError {
            throw corrupt("not a safetensors file: header is not JSON (\(error.message))")
        }
        guard case .object(let entries) = header else { throw corrupt("safetensors header is not a JSON object") }
        var metadata: [String: String] = [:]
        var tensors: [String: TensorInfo] = [:]
        for (name, entry) in entries {
            if name == "__metadata__" {
                guard case .object(let pairs) = entry else { throw corrupt("__metadata__ is not an object") }
                for (key, value) in pairs {
                    guard let text = value.stringValue else { throw corrupt("__metadata__ value of \(key) is not a string") }
                    metadata[key] = text
                }
                continue
            }
            guard let dtypeName = entry["dtype"]?.stringValue else { throw corrupt("tensor \(name) has no dtype") }
            guard let dtype = DType(rawValue: dtypeName) else { throw corrupt("tensor \(name) has unsupported dtype \(dtypeName)") }
            guard let shapeValues = entry["shape"]?.arrayValue else { throw corrupt("tensor \(name) has no shape") }
            var shape: [Int] = []
            for dimension in shapeValues {
                guard let n = dimension.intValue, n >= 0 else { throw corrupt("tensor \(name) has a bad shape") }
                shape.append(n)
            }
            guard let offsets = entry["data_offsets"]?.arrayValue, offsets.count == 2,
                let begin = offsets[0].intValue, let end = offsets[1].intValue, begin >= 0, end >= begin
            else { throw corrupt("tensor \(name) has bad data_offsets") }
            let (count, overflow) = shape.reduce((1, false)) { acc, n in
                let (p, o) = acc.0.multipliedReportingOverflow(by: n)
                return (p, acc.1 || o)
            }
            guard !overflow, count.multipliedReportingOverflow(by: dtype.size).overflow == false,
                end - begin == count * dtype.size
            else { throw corrupt("tensor \(name): \(end - begin) bytes do not fit \(dtypeName) \(shape)") }
            guard end <= data.count else {
                throw corrupt("truncated: tensor \(name) ends at byte \(end) of the data, which has \(data.count)")
            }
            tensors[name] = TensorInfo(name: name, dtype: dtype, shape: shape, byteRange: begin..<end)
        }
        // The format forbids holes and overlaps: sorted by offset, ranges must tile the data.
        var position = 0
        for info in tensors.values.sorted(by: { ($0.byteRange.lowerBound, $0.byteRange.upperBound) < ($1.byteRange.lowerBound, $1.byteRange.upperBound) }) {
            guard info.byteRange.lowerBound == position else {
                throw corrupt("tensor \(info.name) starts at byte \(info.byteRange.lowerBound), expected \(position) (hole or overlap)")
            }
            position = info.byteRange.upperBound
        }
        guard position == data.count else {
            throw corrupt("\(data.count - position) bytes after the last tensor")
        }
        self.metadata = metadata
        self.tensors = tensors
    }

    /// Tensor names in file order (by data offset).
    public var names: [String] {
        tensors.values.sorted {
            ($0.byteRange.lowerBound, $0.byteRange.upperBound, $0.name) < ($1.byteRange.lowerBound, $1.byteRange.upperBound, $1.name)
        }.map(\.name)
    }

    /// SHA-256 of the header bytes, hex. The header holds every shape, the metadata and the
    /// checksum of the tensor bytes, so this names the file's content: updates cite it as
    /// the model they were computed from.
    public var identity: String {
        sha256Hex(headerBytes)
    }

    /// The tensor named `name`, or a `.shape` error naming the file.
    public func info(_ name: String) throws -> TensorInfo {
        guard let info = tensors[name] else { throw FedRecError(.shape, file: path, "has no tensor \(name)") }
        return info
    }

    /// The raw bytes of a tensor.
    /// Lets the kernel drop bytes `range` of tensor `info` from resident memory
    /// (`MappedFile.releasePages`): for a reader streaming forward, done with them and
    /// with everything before them.
    public func releasePages(of info: TensorInfo, bytes range: Range<Int>) {
        let all = bytes(of: info)
        file.releasePages(UnsafeRawBufferPointer(rebasing: all[range]))
    }

    public func bytes(of info: TensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: data[info.byteRange])
    }

    /// A zero-copy view of an F32 tensor (`.corrupt` if the file misaligns it).
    public func floatView(_ info: TensorInfo) throws -> UnsafeBufferPointer<Float> {
        guard info.dtype == .f32 else { throw FedRecError(.shape, file: path, "tensor \(info.name) is \(info.dtype.rawValue), expected F32") }
        let raw = bytes(of: info)
        guard Int(bitPattern: raw.baseAddress) % MemoryLayout<Float>.alignment == 0 else {
            throw FedRecError(.corrupt, file: path, "tensor \(info.name) is not 4-byte aligned")
        }
        return raw.assumingMemoryBound(to: Float.self)
    }

    /// A tensor's elements as `Float`, converting from F16, BF16 or F64 if needed.
    /// - Complexity: O(elements); one copy.
    public func floats(_ name: String) throws -> [Float] {
        let info = try info(name)
        let raw = bytes(of: info)
        let n = info.elementCount
        switch info.dtype {
        case .f32:
            return [Float](unsafeUninitializedCapacity: n) { out, count in
                if n > 0 { UnsafeMutableRawBufferPointer(out).copyMemory(from: raw) }
                count = n
            }
        case .f16:
            return (0..<n).map { floatFromHalf(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) }
        case .bf16:
            return (0..<n).map {
                Float(bitPattern: UInt32(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) << 16)
            }
        case .f64:
            return (0..<n).map { Float(raw.loadUnaligned(fromByteOffset: 8 * $0, as: Double.self)) }
        default:
            throw FedRecError(.shape, file: path, "tensor \(name) is \(info.dtype.rawValue), expected a float type")
        }
    }

    /// An F64 tensor's elements.
    public func doubles(_ name: String) throws -> [Double] {
        let info = try info(name)
        guard info.dtype == .f64 else { throw FedRecError(.shape, file: path, "tensor \(name) is \(info.dtype.rawValue), expected F64") }
        let raw = bytes(of: info)
        return (0..<info.elementCount).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self))) }
    }

    /// A tensor's elements as `Int32` (from I32, or I64 values that fit).
    public func int32s(_ name: String) throws -> [Int32] {
        let info = try info(name)
        let raw = bytes(of: info)
        switch info.dtype {
        case .i32:
            return (0..<info.elementCount).map { Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self)) }
        case .i64:
            return try (0..<info.elementCount).map {
                let v = Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self))
                guard let small = Int32(exactly: v) else { throw FedRecError(.corrupt, file: path, "tensor \(name) holds \(v), out of range") }
                return small
            }
        default:
            throw FedRecError(.shape, file: path, "tensor \(name) is \(info.dtype.rawValue), expected I32")
        }
    }

    /// Checks that `name` exists with `dtype` and `shape`.
    @discardableResult
    public func require(_ name: String, _ dtype: DType, _ shape: [Int]) throws -> TensorInfo {
        let info = try info(name)
        guard info.dtype == dtype, info.shape == shape else {
            throw FedRecError(.shape, file: path, "tensor \(name) is \(info.dtype.rawValue) \(info.shape), expected \(dtype.rawValue) \(shape)")
        }
        return info
    }
}
