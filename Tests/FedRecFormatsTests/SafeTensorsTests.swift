import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecFormats
import FedRecSupport

@Suite("safetensors layout and fedrec checks")
struct SafeTensorsTests {
    @Test("the file is laid out byte for byte as the safetensors spec says")
    func layoutMatchesSpec() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/t.safetensors"
        var writer = SafeTensorsWriter(metadata: ["a": "b"], checksummed: false)
        writer.add("w", shape: [2, 2], floats: [1, 2, 3, 4])
        writer.add("ids", shape: [3], int32s: [7, 8, 9])
        try writer.write(to: path)
        let bytes = try readBytes(path)
        let n = Int(bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        #expect((8 + n) % 8 == 0)
        let header = String(decoding: bytes[8..<(8 + n)], as: UTF8.self)
        // Both tensors have 4-byte elements, so they are ordered by name: ids, then w.
        let expected = #"{"__metadata__":{"a":"b"},"ids":{"data_offsets":[0,12],"dtype":"I32","shape":[3]},"w":{"data_offsets":[12,28],"dtype":"F32","shape":[2,2]}}"#
        #expect(header.trimmingTrailingSpaces == expected)
        #expect(bytes.count == 8 + n + 28)
        #expect(Array(bytes[(8 + n)..<(8 + n + 4)]) == [7, 0, 0, 0])
        // 1.0f little-endian is 00 00 80 3f.
        #expect(Array(bytes[(8 + n + 12)..<(8 + n + 16)]) == [0, 0, 0x80, 0x3F])
    }

    @Test("tensors and metadata round-trip, including float16 decoding")
    func roundTrip() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/t.safetensors"
        var writer = SafeTensorsWriter(metadata: ["format": "fedrec", "format_version": "1", "kind": "model"])
        writer.add("x", shape: [3], floats: [0.5, -2, 1e-3])
        writer.add("half", shape: [2], .u8([0x00, 0x3C]))  // stored as bytes; reinterpreted below
        try writer.write(to: path)
        let file = try FedRecFile(path: path, kinds: [.model])
        #expect(try file.tensors.floats("x") == [0.5, -2, 1e-3])
        #expect(file.metadata["kind"] == "model")
        #expect(file.metadata["checksum"]?.hasPrefix("xxh64:") == true)
        #expect(floatFromHalf(0x3C00) == 1.0)
        #expect(floatFromHalf(0xC000) == -2.0)
        #expect(floatFromHalf(0x0001) == Float(sign: .plus, exponent: -24, significand: 1))
    }

    @Test("a flipped tensor byte is a checksum error")
    func checksumDetectsCorruption() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/t.safetensors"
        var writer = SafeTensorsWriter(metadata: ["format": "fedrec", "format_version": "1", "kind": "model"])
        writer.add("x", shape: [4], floats: [1, 2, 3, 4])
        try writer.write(to: path)
        var bytes = try readBytes(path)
        bytes[bytes.count - 1] ^= 0x01
        try writeAtomically(bytes, to: path)
        let error = #expect(throws: FedRecError.self) { try FedRecFile(path: path, kinds: [.model]) }
        #expect(error?.failure == .checksum)
    }

    @Test("newer versions, wrong kinds, truncation and empty files are refused by class")
    func refusals() throws {
        let dir = try TemporaryDirectory()
        func make(_ name: String, _ meta: [String: String]) throws -> String {
            var writer = SafeTensorsWriter(metadata: meta)
            writer.add("x", shape: [2], floats: [1, 2])
            try writer.write(to: dir.path + "/" + name)
            return dir.path + "/" + name
        }
        let newer = try make("newer", ["format": "fedrec", "format_version": "99", "kind": "model"])
        #expect((#expect(throws: FedRecError.self) { try FedRecFile(path: newer, kinds: [.model]) })?.failure == .newerVersion)
        let update = try make("update", ["format": "fedrec", "format_version": "1", "kind": "update"])
        #expect((#expect(throws: FedRecError.self) { try FedRecFile(path: update, kinds: [.model]) })?.failure == .wrongKind)
        let foreign = try make("foreign", [:])
        #expect((#expect(throws: FedRecError.self) { try FedRecFile(path: foreign, kinds: [.model]) })?.failure == .wrongKind)
        let bytes = try readBytes(update)
        try writeAtomically(Array(bytes.dropLast(3)), to: dir.path + "/short")
        #expect((#expect(throws: FedRecError.self) { try SafeTensorsFile(path: dir.path + "/short") })?.failure == .corrupt)
        try writeAtomically([UInt8](), to: dir.path + "/empty")
        #expect((#expect(throws: FedRecError.self) { try SafeTensorsFile(path: dir.path + "/empty") })?.failure == .emptyInput)
        #expect((#expect(throws: FedRecError.self) { try SafeTensorsFile(path: dir.path + "/missing") })?.failure == .noInput)
    }

    @Test("XXH64 matches the reference test vectors")
    func xxh64Vectors() {
        #expect(XXHash64.hash(UnsafeRawBufferPointer(start: nil, count: 0)) == 0xEF46_DB37_51D8_E999)
        let abc: [UInt8] = Array("abc".utf8)
        #expect(abc.withUnsafeBytes { XXHash64.hash($0) } == 0x44BC_2CF5_AD77_0999)
        let long = Array("Nobody inspects the spammish repetition".utf8)
        #expect(long.withUnsafeBytes { XXHash64.hash($0) } == 0xFBCE_A83C_8A37_8BF1)
    }
}
