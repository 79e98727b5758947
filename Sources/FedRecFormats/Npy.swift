import FedRecSupport

/// The element types fedrec reads and writes in NumPy `.npy` files, all little-endian.
public enum NpyDType: Sendable, Equatable {
    /// `<i4`
    case int32
    /// `<i8`
    case int64
    /// `<f4`
    case float32
    /// `<f8`
    case float64
    /// The structured record `[('item', '<i4'), ('rating', '<f4'), ('time', '<i8')]`,
    /// 16 packed bytes per interaction.
    case interactions

    /// Bytes per element (per record for `interactions`).
    public var itemSize: Int {
        switch self {
        case .int32, .float32: 4
        case .int64, .float64: 8
        case .interactions: 16
        }
    }

    /// The `descr` value exactly as numpy's `repr` prints it in a header.
    public var descr: String {
        switch self {
        case .int32: "'<i4'"
        case .int64: "'<i8'"
        case .float32: "'<f4'"
        case .float64: "'<f8'"
        case .interactions: "[('item', '<i4'), ('rating', '<f4'), ('time', '<i8')]"
        }
    }
}

/// A decoded `.npy` array: dtype, shape and the raw element bytes.
public struct NpyArray: Sendable {
    /// The element type.
    public let dtype: NpyDType
    /// The dimensions, C order; `[]` for a 0-d array.
    public let shape: [Int]
    /// The raw little-endian, C-order element bytes.
    public let body: [UInt8]

    /// Wraps element bytes; `body.count` should be `count × dtype.itemSize`.
    public init(dtype: NpyDType, shape: [Int], body: [UInt8]) {
        self.dtype = dtype
        self.shape = shape
        self.body = body
    }

    /// Number of elements (product of the shape; 1 for a 0-d array).
    public var count: Int { shape.reduce(1, *) }
}


/// NumPy's `.npy` format (numpy.lib.format): the magic `\x93NUMPY`, a major and minor
/// version byte, a little-endian header length (2 bytes in v1.0, 4 in v2.0 and v3.0), a
/// Python dict literal `{'descr': …, 'fortran_order': False, 'shape': (…), }` padded with
/// spaces and a final `\n` so the data starts on a 64-byte boundary, then the raw array.
///
/// Files are written as v1.0 with the header byte for byte as numpy 2 writes it, so
/// `numpy.load` reads them and the same array always gives the same bytes. Reading accepts
/// v1.0, v2.0 and v3.0, little-endian C-order arrays of the dtypes in `NpyDType` only.
public enum Npy {
    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY
    static let alignment = 64
    /// numpy leaves this many digits of room in the header so the first axis can grow in place.
    static let growthAxisMaxDigits = 21

    // MARK: Encoding

    /// Encodes an array whose element bytes are already laid out little-endian in C order.
    /// - Parameters:
    ///   - dtype: the element type.
    ///   - shape: the dimensions; `[]` for a 0-d array.
    ///   - body: exactly `shape.product × dtype.itemSize` bytes.
    /// - Returns: the whole `.npy` file.
    /// - Complexity: O(body.count).
    public static func encode(dtype: NpyDType, shape: [Int], body: UnsafeRawBufferPointer) -> [UInt8] {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension")
        precondition(body.count == shape.reduce(1, *) * dtype.itemSize, "body size does not match shape")
        var out = header(dtype: dtype, shape: shape)
        out.reserveCapacity(out.count + body.count)
        out.append(contentsOf: body)
        return out
    }

    /// Encodes a 1-D `<i4` array.
    public static func encode(int32s: [Int32]) -> [UInt8] {
        let values = int32s.map(\.littleEndian)
        return values.withUnsafeBytes { encode(dtype: .int32, shape: [values.count], body: $0) }
    }

    /// Encodes a `<f4` array of the given shape.
    /// - Precondition: `floats.count` is the product of `shape`.
    public static func encode(floats: [Float], shape: [Int]) -> [UInt8] {
        let bits = floats.map(\.bitPattern.littleEndian)
        return bits.withUnsafeBytes { encode(dtype: .float32, shape: shape, body: $0) }
    }

    /// The magic, version, length and padded header dict, as numpy's `_write_array_header`.
    static func header(dtype: NpyDType, shape: [Int]) -> [UInt8] {
        let shapeText: String
        switch shape.count {
        case 0: shapeText = "()"
        case 1: shapeText = "(\(shape[0]),)"
        default: shapeText = "(" + shape.map(String.init).joined(separator: ", ") + ")"
        }
        var dict = "{'descr': \(dtype.descr), 'fortran_order': False, 'shape': \(shapeText), }"
        if let first = shape.first {
            dict += String(repeating: " ", count: max(0, growthAxisMaxDigits - String(first).utf8.count))
        }
        let text = Array(dict.utf8)
        let textLength = text.count + 1  // the final newline
        // v1.0 has a 2-byte length; only a header over 64 KiB needs v2.0 and its 4 bytes.
        var lengthSize = 2
        var headerLength = textLength + alignment - (magic.count + 2 + lengthSize + textLength) % alignment
        if headerLength > 0xFFFF {
            lengthSize = 4
            headerLength = textLength + alignment - (magic.count + 2 + lengthSize + textLength) % alignment
        }
        var out = magic
        out.reserveCapacity(magic.count + 2 + lengthSize + headerLength)
        out += [lengthSize == 2 ? 1 : 2, 0]
        for i in 0..<lengthSize { out.append(UInt8((headerLength >> (8 * i)) & 0xFF)) }
        out += text
        out += [UInt8](repeating: 0x20, count: headerLength - textLength)
        out.append(0x0A)
        return out
    }

    // MARK: Decoding

    /// Parses a `.npy` file.
    /// - Parameters:
    ///   - bytes: the whole file.
    ///   - file: the name to put in errors.
    /// - Throws: `FedRecError` `.corrupt` for a bad magic, a truncated file or a body that
    ///   does not match the shape; `.newerVersion` for a format major version above 3;
    ///   `.badData` for a header that is not a dict literal, `fortran_order: True`, a
    ///   big-endian or unsupported `descr` (named in the message) or a bad shape.
    /// - Complexity: O(bytes.count): the body is copied once.
    public static func decode(_ bytes: UnsafeRawBufferPointer, file: String) throws -> NpyArray {
        guard bytes.count >= magic.count + 2 else {
            throw FedRecError(.corrupt, file: file, bytes.isEmpty ? "empty file, expected a .npy array" : "truncated .npy file (\(bytes.count) bytes)")
        }
        guard bytes.prefix(magic.count).elementsEqual(magic) else {
            throw FedRecError(.corrupt, file: file, "not a .npy file (bad magic)")
        }
        let major = bytes[6]
        let minor = bytes[7]
        let lengthSize: Int
        switch major {
        case 1: lengthSize = 2
        case 2, 3: lengthSize = 4
        default:
            if major > 3 {
                throw FedRecError(.newerVersion, file: file, ".npy format version \(major).\(minor) is newer than this build reads (up to 3.0)")
            }
            throw FedRecError(.corrupt, file: file, "bad .npy format version \(major).\(minor)")
        }
        let start = 8 + lengthSize
        guard bytes.count >= start else {
            throw FedRecError(.corrupt, file: file, "truncated .npy header")
        }
        var headerLength = 0
        for i in 0..<lengthSize { headerLength |= Int(bytes[8 + i]) << (8 * i) }
        guard bytes.count >= start + headerLength else {
            throw FedRecError(.corrupt, file: file, "truncated .npy header: \(headerLength) bytes announced, \(bytes.count - start) present")
        }
        let headerBytes = UnsafeRawBufferPointer(rebasing: bytes[start..<(start + headerLength)])
        let (dtype, shape) = try parseHeader(headerBytes, file: file)
        var count = 1
        for dimension in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow else { throw FedRecError(.badData, file: file, ".npy shape \(shape) is too large") }
            count = product
        }
        let (expected, overflow) = count.multipliedReportingOverflow(by: dtype.itemSize)
        guard !overflow else { throw FedRecError(.badData, file: file, ".npy shape \(shape) is too large") }
        let present = bytes.count - start - headerLength
        guard present == expected else {
            let what = present < expected ? "truncated .npy data" : ".npy data longer than its shape"
            throw FedRecError(.corrupt, file: file, "\(what): shape \(shape) needs \(expected) bytes, file has \(present)")
        }
        return NpyArray(dtype: dtype, shape: shape, body: Array(bytes[(start + headerLength)...]))
    }

    /// The elements of an `<i4` array (or an `<i8` one whose values all fit), flattened.
    /// - Throws: `FedRecError(.badData)` for another dtype or an out-of-range value.
    public static func int32s(_ array: NpyArray, file: String) throws -> [Int32] {
        switch array.dtype {
        case .int32:
            return array.body.withUnsafeBytes { raw in
                (0..<array.count).map { Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self)) }
            }
        case .int64:
            var out = [Int32]()
            out.reserveCapacity(array.count)
            try array.body.withUnsafeBytes { raw in
                for i in 0..<array.count {
                    let value = Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))
                    guard let narrow = Int32(exactly: value) else {
                        throw FedRecError(.badData, file: file, "int64 value \(value) at index \(i) does not fit in int32")
                    }
                    out.append(narrow)
                }
            }
            return out
        default:
            throw FedRecError(.badData, file: file, "expected an int32 array, found \(array.dtype.descr)")
        }
    }

    /// The elements of an `<f4` array (or an `<f8` one, rounded to `Float`), flattened.
    /// - Throws: `FedRecError(.badData)` for another dtype.
    public static func floats(_ array: NpyArray, file: String) throws -> [Float] {
        switch array.dtype {
        case .float32:
            return array.body.withUnsafeBytes { raw in
                (0..<array.count).map {
                    Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)))
                }
            }
        case .float64:
            return array.body.withUnsafeBytes { raw in
                (0..<array.count).map {
                    Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self))))
                }
            }
        default:
            throw FedRecError(.badData, file: file, "expected a float32 array, found \(array.dtype.descr)")
        }
    }

    // MARK: Header parsing

    /// The dtype and shape of a header (its dict text, padding and final newline).
    static func parseHeader(_ bytes: UnsafeRawBufferPointer, file: String) throws -> (NpyDType, [Int]) {
        if let known = canonicalHeader(bytes) { return known }
        return try parseAnyHeader(bytes, file: file)
    }

    /// The `descr` texts of `NpyDType`, as UTF-8, each with its dtype.
    private static let descrBytes: [(NpyDType, [UInt8])] = [NpyDType.interactions, .int32, .float32, .int64, .float64].map { ($0, Array($0.descr.utf8)) }
    private static let headerStart = Array("{'descr': ".utf8)
    private static let headerMiddle = Array(", 'fortran_order': False, 'shape': (".utf8)
    private static let headerEnd = Array(", }".utf8)
    private static let singleEnd = Array(",)".utf8)
    private static let separator = Array(", ".utf8)

    /// The dtype and shape of a header laid out exactly as `header(dtype:shape:)` and numpy
    /// write it (`{'descr': D, 'fortran_order': False, 'shape': (n,), }` or `(a, b)` or
    /// `()`, then white space), read without building the literal: every shard member has
    /// one. Nil for any other text, which `parseAnyHeader` then reads (or refuses); for
    /// every text this accepts, `parseAnyHeader` gives the same result.
    static func canonicalHeader(_ bytes: UnsafeRawBufferPointer) -> (NpyDType, [Int])? {
        var offset = 0
        func take(_ expected: [UInt8]) -> Bool {
            guard bytes.count - offset >= expected.count else { return false }
            for i in 0..<expected.count where bytes[offset + i] != expected[i] { return false }
            offset += expected.count
            return true
        }
        func take(_ byte: UInt8) -> Bool {
            guard offset < bytes.count, bytes[offset] == byte else { return false }
            offset += 1
            return true
        }
        guard take(headerStart) else { return nil }
        var found: NpyDType?
        for (dtype, descr) in descrBytes where take(descr) {
            found = dtype
            break
        }
        guard let dtype = found, take(headerMiddle) else { return nil }
        var shape: [Int] = []
        if !take(UInt8(ascii: ")")) {
            while true {
                // At most 18 digits: no overflow to check.
                var value = 0, digits = 0
                while offset < bytes.count, digits < 18, bytes[offset] >= UInt8(ascii: "0"), bytes[offset] <= UInt8(ascii: "9") {
                    value = value * 10 + Int(bytes[offset] - UInt8(ascii: "0"))
                    digits += 1
                    offset += 1
                }
                guard digits > 0 else { return nil }
                shape.append(value)
                if shape.count == 1, take(singleEnd) { break }
                if shape.count > 1, take(UInt8(ascii: ")")) { break }
                guard take(separator) else { return nil }
            }
        }
        guard take(headerEnd) else { return nil }
        while offset < bytes.count {
            switch bytes[offset] {
            case 0x20, 0x0A, 0x0D, 0x09: offset += 1
            default: return nil
            }
        }
        return (dtype, shape)
    }

    /// The dtype and shape of any header `numpy.lib.format` may write, through the
    /// Python literal parser.
    static func parseAnyHeader(_ bytes: UnsafeRawBufferPointer, file: String) throws -> (NpyDType, [Int]) {
        var parser = PythonLiteralParser(bytes: bytes, file: file)
        let value = try parser.parse()
        guard case .dict(let members) = value else {
            throw FedRecError(.badData, file: file, ".npy header is not a dict")
        }
        guard let descr = members["descr"], let fortran = members["fortran_order"], let shapeValue = members["shape"] else {
            throw FedRecError(.badData, file: file, ".npy header lacks 'descr', 'fortran_order' or 'shape'")
        }
        guard case .bool(let isFortran) = fortran else {
            throw FedRecError(.badData, file: file, ".npy header: 'fortran_order' is not a bool")
        }
        guard !isFortran else {
            throw FedRecError(.badData, file: file, "Fortran-order .npy arrays are not supported; save in C order")
        }
        guard case .sequence(let dims) = shapeValue else {
            throw FedRecError(.badData, file: file, ".npy header: 'shape' is not a tuple")
        }
        var shape = [Int]()
        for dim in dims {
            guard case .int(let n) = dim, n >= 0 else {
                throw FedRecError(.badData, file: file, ".npy header: bad dimension in 'shape'")
            }
            shape.append(n)
        }
        return (try dtype(descr, file: file), shape)
    }

    static func dtype(_ descr: PythonLiteral, file: String) throws -> NpyDType {
        switch descr {
        case .string(let s):
            switch s {
            case "<i4": return .int32
            case "<i8": return .int64
            case "<f4": return .float32
            case "<f8": return .float64
            default:
                if s.hasPrefix(">") {
                    throw FedRecError(.badData, file: file, "big-endian .npy dtype '\(s)' is not supported; save as little-endian")
                }
                throw FedRecError(.badData, file: file, "unsupported .npy dtype '\(s)' (expected <i4, <i8, <f4, <f8 or interactions)")
            }
        case .sequence(let fields):
            let names = fields.map { field -> String in
                if case .sequence(let parts) = field, parts.count == 2, case .string(let name) = parts[0], case .string(let type) = parts[1] {
                    return "\(name):\(type)"
                }
                return "?"
            }
            guard names == ["item:<i4", "rating:<f4", "time:<i8"] else {
                throw FedRecError(.badData, file: file, "unsupported structured .npy dtype [\(names.joined(separator: ", "))]; expected \(NpyDType.interactions.descr)")
            }
            return .interactions
        default:
            throw FedRecError(.badData, file: file, ".npy header: 'descr' is neither a string nor a field list")
        }
    }
}

/// The few Python literals a `.npy` header holds.
enum PythonLiteral: Equatable {
    case string(String)
    case int(Int)
    case bool(Bool)
    case none
    /// A tuple or a list.
    case sequence([PythonLiteral])
    case dict([String: PythonLiteral])
}

/// A parser for the subset of Python literal syntax `numpy.lib.format` writes:
/// quoted strings, ints, True/False/None, tuples, lists and dicts with string keys.
struct PythonLiteralParser {
    let bytes: UnsafeRawBufferPointer
    let file: String
    var offset = 0

    init(bytes: UnsafeRawBufferPointer, file: String) {
        self.bytes = bytes
        self.file = file
    }

    func failure(_ what: String) -> FedRecError {
        FedRecError(.badData, file: file, ".npy header is not a valid dict literal at byte \(offset): \(what)")
    }

    mutating func parse() throws -> PythonLiteral {
        let value = try literal(depth: 0)
        skipSpace()
        guard offset == bytes.count else { throw failure("unexpected text after the dict") }
        return value
    }

    mutating func skipSpace() {
        while offset < bytes.count, [0x20, 0x0A, 0x0D, 0x09].contains(bytes[offset]) { offset += 1 }
    }

    mutating func expect(_ byte: UInt8) -> Bool {
        skipSpace()
        if offset < bytes.count && bytes[offset] == byte {
            offset += 1
            return true
        }
        return false
    }

    mutating func literal(depth: Int) throws -> PythonLiteral {
        guard depth < 32 else { throw failure("nesting too deep") }
        skipSpace()
        guard offset < bytes.count else { throw failure("unexpected end") }
        let c = bytes[offset]
        switch c {
        case UInt8(ascii: "'"), UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: "("), UInt8(ascii: "["):
            offset += 1
            let close = c == UInt8(ascii: "(") ? UInt8(ascii: ")") : UInt8(ascii: "]")
            var items = [PythonLiteral]()
            while true {
                if expect(close) { return .sequence(items) }
                items.append(try literal(depth: depth + 1))
                if expect(close) { return .sequence(items) }
                guard expect(UInt8(ascii: ",")) else { throw failure("expected ',' in a sequence") }
            }
        case UInt8(ascii: "{"):
            offset += 1
            var members = [String: PythonLiteral]()
            while true {
                if expect(UInt8(ascii: "}")) { return .dict(members) }
                skipSpace()
                guard offset < bytes.count, bytes[offset] == UInt8(ascii: "'") || bytes[offset] == UInt8(ascii: "\"") else {
                    throw failure("expected a string key")
                }
                let key = try string()
                guard expect(UInt8(ascii: ":")) else { throw failure("expected ':'") }
                members[key] = try literal(depth: depth + 1)
                if expect(UInt8(ascii: "}")) { return .dict(members) }
                guard expect(UInt8(ascii: ",")) else { throw failure("expected ',' in a dict") }
            }
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            var negative = false
            if c == UInt8(ascii: "-") { negative = true; offset += 1 }
            var value = 0
            var digits = 0
            while offset < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[offset]) {
                let (times10, o1) = value.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times10.addingReportingOverflow(Int(bytes[offset] - UInt8(ascii: "0")))
                guard !o1 && !o2 else { throw failure("integer too large") }
                value = sum
                digits += 1
                offset += 1
            }
            guard digits > 0 else { throw failure("expected digits") }
            // Python 2 wrote longs with an L suffix.
            if offset < bytes.count && bytes[offset] == UInt8(ascii: "L") { offset += 1 }
            return .int(negative ? -value : value)
        default:
            for (word, value) in [("True", PythonLiteral.bool(true)), ("False", .bool(false)), ("None", .none)] {
                let w = Array(word.utf8)
                if bytes.count - offset >= w.count && bytes[offset..<(offset + w.count)].elementsEqual(w) {
                    offset += w.count
                    return value
                }
            }
            throw failure("unexpected character")
        }
    }

    /// A quoted string without escapes other than `\\` and the quote (numpy's descr never needs more).
    mutating func string() throws -> String {
        let quote = bytes[offset]
        offset += 1
        var out = [UInt8]()
        while offset < bytes.count {
            let c = bytes[offset]
            offset += 1
            if c == quote { return String(decoding: out, as: UTF8.self) }
            if c == UInt8(ascii: "\\") {
                guard offset < bytes.count else { break }
                out.append(bytes[offset])
                offset += 1
            } else {
                out.append(c)
            }
        }
        throw failure("unterminated string")
    }
}
