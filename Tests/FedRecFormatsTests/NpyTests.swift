import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecFormats
import FedRecSupport
import FedRecData

/// Runs `python3 -c script` with `arguments`; returns stdout, or nil when it fails.
func runPython(_ script: String, _ arguments: [String] = []) -> String? {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", script] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    do { try process.run() } catch { return nil }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { return nil }
    return String(decoding: data, as: UTF8.self)
}

/// Whether `python3` with numpy is on this machine.
let numpyAvailable = runPython("import numpy") != nil

func bytes(hex: String) -> [UInt8] {
    var out = [UInt8]()
    var index = hex.startIndex
    while index < hex.endIndex {
        let next = hex.index(index, offsetBy: 2)
        out.append(UInt8(hex[index..<next], radix: 16)!)
        index = next
    }
    return out
}

/// Decodes a file through `MappedFile`, kept alive while its bytes are read.
func decodeFile(_ path: String) throws -> NpyArray {
    let file = try MappedFile(path: path)
    return try withExtendedLifetime(file) { try Npy.decode(file.bytes, file: path) }
}

func decodeNpy(_ bytes: [UInt8], file: String = "t.npy") throws -> NpyArray {
    try bytes.withUnsafeBytes { try Npy.decode($0, file: file) }
}

@Suite("NumPy .npy arrays")
struct NpyTests {
    static let sample = Interactions(items: [5, 9, 0], ratings: [4.5, -1, 0.25], times: [1000, -7, Int64.max])

    @Test("the header is written byte for byte as numpy writes it, aligned to 64")
    func headerLayout() throws {
        let file = Npy.encode(int32s: [1, 2, 3])
        #expect(file.count == 128 + 12)
        #expect(Array(file[0..<10]) == [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, 118, 0])
        let header = String(decoding: file[10..<128], as: UTF8.self)
        #expect(header.hasPrefix("{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }"))
        #expect(header.hasSuffix(" \n"))
        #expect(Array(file[128...]) == [1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0])
        for shape in [[], [0], [7], [2, 3], [12345678901, 0]] {
            let n = shape.reduce(1, *)
            let body = [UInt8](repeating: 0, count: n * 4)
            let encoded = body.withUnsafeBytes { Npy.encode(dtype: .float32, shape: shape, body: $0) }
            #expect((encoded.count - body.count) % 64 == 0)
            #expect(try decodeNpy(encoded).shape == shape)
        }
        let structured = Npy.encode(Self.sample)
        let text = String(decoding: structured[10..<100], as: UTF8.self)
        #expect(text.hasPrefix("{'descr': [('item', '<i4'), ('rating', '<f4'), ('time', '<i8')], 'fortran_order'"))
    }

    @Test("int32, float32 and interactions arrays round-trip")
    func roundTrip() throws {
        let ints = try decodeNpy(Npy.encode(int32s: [7, -1, .max, .min]))
        #expect(ints.dtype == .int32 && ints.shape == [4])
        #expect(try Npy.int32s(ints, file: "t") == [7, -1, .max, .min])

        let floats = try decodeNpy(Npy.encode(floats: [1, 2, 3, 4, 5, -0.5], shape: [2, 3]))
        #expect(floats.dtype == .float32 && floats.shape == [2, 3])
        #expect(try Npy.floats(floats, file: "t") == [1, 2, 3, 4, 5, -0.5])

        let records = try decodeNpy(Npy.encode(Self.sample))
        #expect(records.dtype == .interactions && records.shape == [3] && records.body.count == 48)
        #expect(try Npy.interactions(records, file: "t") == Self.sample)
        #expect(try Npy.interactions(decodeNpy(Npy.encode(Interactions(items: [], ratings: [], times: []))), file: "t").count == 0)

        #expect(throws: FedRecError.self) { try Npy.floats(ints, file: "t") }
        #expect(throws: FedRecError.self) { try Npy.interactions(floats, file: "t") }
    }

    @Test("bytes numpy wrote decode: a v2.0 int64 array and a structured v1.0 array")
    func decodesNumpyBytes() throws {
        // np.lib.format.write_array(f, np.array([7, -2, 3], dtype='<i8'), version=(2, 0))
        let v2 = bytes(hex: "934e554d50590200740000007b276465736372273a20273c6938272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028332c292c207d202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a0700000000000000feffffffffffffff0300000000000000")
        let array = try decodeNpy(v2)
        #expect(array.dtype == .int64 && array.shape == [3])
        #expect(try Npy.int32s(array, file: "t") == [7, -2, 3])
        // np.save(f, np.array([(5, 4.5, 1000), (9, -1.0, -7)], dtype=interactions))
        let v1 = bytes(hex: "934e554d50590100b6007b276465736372273a205b28276974656d272c20273c693427292c202827726174696e67272c20273c663427292c20282774696d65272c20273c693827295d2c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c292c207d202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a0500000000009040e80300000000000009000000000080bff9ffffffffffffff")
        #expect(v1 == Npy.encode(Interactions(items: [5, 9], ratings: [4.5, -1], times: [1000, -7])))
        #expect(try Npy.interactions(decodeNpy(v1), file: "t") == Interactions(items: [5, 9], ratings: [4.5, -1], times: [1000, -7]))
    }

    @Test("numpy.load reads our files and np.save writes the same bytes", .enabled(if: numpyAvailable, "python3 with numpy is not installed"))
    func numpyReadsOurFiles() throws {
        let dir = try TemporaryDirectory()
        try writeAtomically(Npy.encode(int32s: [3, -4, 5]), to: dir.path + "/i.npy")
        try writeAtomically(Npy.encode(floats: [0.5, 1, -2, 8, 16, 1e-3], shape: [3, 2]), to: dir.path + "/f.npy")
        try writeAtomically(Npy.encode(Self.sample), to: dir.path + "/r.npy")
        let script = """
            import sys, io, numpy as np
            d = sys.argv[1]
            def same(path, a):
                b = io.BytesIO(); np.save(b, a)
                return open(path, 'rb').read() == b.getvalue()
            i = np.load(d + '/i.npy'); f = np.load(d + '/f.npy'); r = np.load(d + '/r.npy')
            print(i.dtype, i.tolist(), same(d + '/i.npy', i))
            print(f.dtype, f.shape, f.tolist(), same(d + '/f.npy', f))
            print(r['item'].tolist(), r['rating'].tolist(), r['time'].tolist(), same(d + '/r.npy', r))
            """
        let output = try #require(runPython(script, [dir.path]))
        let lines = output.split(separator: "\n").map(String.init)
        #expect(lines == [
            "int32 [3, -4, 5] True",
            "float32 (3, 2) [[0.5, 1.0], [-2.0, 8.0], [16.0, 0.0010000000474974513]] True",
            "[5, 9, 0] [4.5, -1.0, 0.25] [1000, -7, 9223372036854775807] True",
        ])
    }

    @Test("arrays numpy writes now decode", .enabled(if: numpyAvailable, "python3 with numpy is not installed"))
    func decodesFreshNumpyOutput() throws {
        let dir = try TemporaryDirectory()
        let script = """
            import sys, numpy as np
            d = sys.argv[1]
            np.save(d + '/a.npy', np.arange(12, dtype='<f4').reshape(3, 4) / 4)
            np.save(d + '/b.npy', np.array([1, 2, 40000], dtype=np.int32))
            np.save(d + '/c.npy', np.array([0.25, -3.0]))
            np.save(d + '/big.npy', np.array([1, 2], dtype='>i4'))
            np.save(d + '/fortran.npy', np.asfortranarray(np.ones((2, 3), dtype='<f4')))
            """
        _ = try #require(runPython(script, [dir.path]))
        let a = try decodeFile(dir.path + "/a.npy")
        #expect(a.shape == [3, 4])
        #expect(try Npy.floats(a, file: "a.npy") == (0..<12).map { Float($0) / 4 })
        let b = try decodeFile(dir.path + "/b.npy")
        #expect(try Npy.int32s(b, file: "b.npy") == [1, 2, 40000])
        let c = try decodeFile(dir.path + "/c.npy")
        #expect(c.dtype == .float64)
        #expect(try Npy.floats(c, file: "c.npy") == [0.25, -3])
        let big = #expect(throws: FedRecError.self) { try decodeFile(dir.path + "/big.npy") }
        #expect(big?.message.contains("big-endian") == true)
        let fortran = #expect(throws: FedRecError.self) { try decodeFile(dir.path + "/fortran.npy") }
        #expect(fortran?.message.contains("Fortran") == true)
    }

    /// A v1.0 file with `dict` as its header text and `body` after it.
    static func handMade(_ dict: String, body: [UInt8] = [], version: UInt8 = 1) -> [UInt8] {
        var text = Array(dict.utf8)
        while (10 + text.count + 1) % 64 != 0 { text.append(0x20) }
        text.append(0x0A)
        return [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, version, 0, UInt8(text.count & 0xFF), UInt8(text.count >> 8)] + text + body
    }

    @Test(
        "malformed files are refused by class, naming the problem",
        arguments: [
            (Array("NUMPY?".utf8) + [1, 0, 0, 0], FailureClass.corrupt, "magic"),
            ([0x93, 0x4E, 0x55, 0x4D], .corrupt, "truncated"),
            (Array(Npy.encode(int32s: [1, 2, 3]).dropLast()), .corrupt, "truncated .npy data"),
            (Npy.encode(int32s: [1, 2, 3]) + [0], .corrupt, "longer than its shape"),
            (Array(Npy.encode(int32s: [1, 2, 3]).prefix(60)), .corrupt, "truncated .npy header"),
            (handMade("{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }", body: [0, 0, 0, 0], version: 4), .newerVersion, "newer"),
            (handMade("['descr', '<i4']"), .badData, "not a dict"),
            (handMade("{'descr': '<i4', 'fortran_order': False, 'shape': (1,), "), .badData, "dict literal"),
            (handMade("{'descr': '<i4', 'fortran_order': True, 'shape': (1,), }", body: [0, 0, 0, 0]), .badData, "Fortran"),
            (handMade("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", body: [0, 0, 0, 0]), .badData, "big-endian .npy dtype '>f4'"),
            (handMade("{'descr': '<u2', 'fortran_order': False, 'shape': (2,), }", body: [0, 0, 0, 0]), .badData, "'<u2'"),
            (handMade("{'descr': [('item', '<i4'), ('rating', '<f8')], 'fortran_order': False, 'shape': (1,), }", body: [UInt8](repeating: 0, count: 12)), .badData, "item:<i4, rating:<f8"),
            (handMade("{'descr': '<i4', 'fortran_order': False, 'shape': (-1,), }"), .badData, "dimension"),
            (handMade("{'descr': '<i4', 'shape': (1,), }", body: [0, 0, 0, 0]), .badData, "lacks"),
        ] as [([UInt8], FailureClass, String)])
    func refusals(bytes: [UInt8], failure: FailureClass, phrase: String) throws {
        let error = #expect(throws: FedRecError.self) { try decodeNpy(bytes, file: "bad.npy") }
        #expect(error?.failure == failure)
        #expect(error?.file == "bad.npy")
        #expect(error?.message.contains(phrase) == true, "\(error?.message ?? "")")
    }

    /// The header text of a file `handMade` or `Npy.encode` made (after the length bytes).
    static func headerText(_ file: [UInt8]) -> [UInt8] {
        let length = Int(file[8]) | Int(file[9]) << 8
        return Array(file[10..<(10 + length)])
    }

    @Test("headers as fedrec and numpy write them read the same through the short path and the literal parser")
    func canonicalHeaders() throws {
        let written: [(NpyDType, [Int])] = [
            (.int32, [3]), (.int64, [0]), (.float32, []), (.float64, [2, 5]), (.interactions, [1234567]),
            (.float32, [7, 0, 3]), (.int32, [999_999_999_999_999_999]),
        ]
        for (dtype, shape) in written {
            let text = Self.headerText(Npy.header(dtype: dtype, shape: shape))
            try text.withUnsafeBytes { raw in
                let short = try #require(Npy.canonicalHeader(raw), "\(dtype.descr) \(shape)")
                let general = try Npy.parseAnyHeader(raw, file: "t.npy")
                #expect(short.0 == dtype && short.1 == shape)
                #expect(general.0 == short.0 && general.1 == short.1)
            }
        }
        // numpy's own layout of the same dict, and texts only the literal parser reads.
        let handMade: [(String, Bool, NpyDType, [Int])] = [
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (4, 1), }", true, .float32, [4, 1]),
            ("{'descr': '<i4', 'fortran_order': False, 'shape': (007,), }", true, .int32, [7]),
            ("{'descr': '<i4', 'fortran_order': False, 'shape': (3), }", false, .int32, [3]),
            ("{'descr': '<i4', 'fortran_order': False, 'shape': (3L,), }", false, .int32, [3]),
            ("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3,), }", false, .int32, [2, 3]),
            ("{'descr': '<i4', 'fortran_order': False, 'shape': (1234567890123456789,), }", false, .int32, [1234567890123456789]),
            ("{'shape': (3,), 'fortran_order': False, 'descr': '<i4', }", false, .int32, [3]),
            ("{'descr':'<i4','fortran_order':False,'shape':(3,)}", false, .int32, [3]),
        ]
        for (dict, short, dtype, shape) in handMade {
            let text = Self.headerText(Self.handMade(dict))
            try text.withUnsafeBytes { raw in
                #expect((Npy.canonicalHeader(raw) != nil) == short, "\(dict)")
                let parsed = try Npy.parseHeader(raw, file: "t.npy")
                #expect(parsed.0 == dtype && parsed.1 == shape, "\(dict)")
                let general = try Npy.parseAnyHeader(raw, file: "t.npy")
                #expect(general.0 == dtype && general.1 == shape, "\(dict)")
            }
        }
        // Laid out as written but not readable: refused by the literal parser, not read short.
        for dict in ["{'descr': '<i4', 'fortran_order': True, 'shape': (1,), }", "{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }x"] {
            Self.headerText(Self.handMade(dict)).withUnsafeBytes { raw in
                #expect(Npy.canonicalHeader(raw) == nil)
                #expect(throws: FedRecError.self) { try Npy.parseHeader(raw, file: "t.npy") }
            }
        }
    }

    @Test("int64 values that do not fit int32 are refused")
    func narrowing() throws {
        let values: [Int64] = [1, Int64(Int32.max) + 1]
        let file = values.withUnsafeBytes { Npy.encode(dtype: .int64, shape: [2], body: $0) }
        let error = #expect(throws: FedRecError.self) { try Npy.int32s(decodeNpy(file), file: "t") }
        #expect(error?.failure == .badData)
    }
}
