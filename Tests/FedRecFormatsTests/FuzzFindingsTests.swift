import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecFormats
import FedRecSupport
import FedRecData

/// Inputs the libFuzzer harnesses (`make fuzz`, Fuzz/) found or aimed at, each refused with
/// a `FedRecError` of its class instead of a trap or a huge allocation; and the in-memory
/// entry points the harnesses use.
@Suite("fuzzing findings and in-memory readers")
struct FuzzFindingsTests {
    /// A one-entry ustar archive whose header declares `size` bytes (base-256 when it does
    /// not fit the 11 octal digits) followed by `data` and no end-of-archive blocks.
    static func tarHeader(name: String, size: Int, data: [UInt8]) -> [UInt8] {
        var block = [UInt8](repeating: 0, count: 512)
        func put(_ text: String, at offset: Int) {
            for (i, byte) in text.utf8.enumerated() { block[offset + i] = byte }
        }
        put(name, at: 0)
        put("0000644", at: 100)
        put("0000000", at: 108)
        put("0000000", at: 116)
        if size < 0o77777777777 {
            put(String(repeating: "0", count: 11 - String(size, radix: 8).count) + String(size, radix: 8), at: 124)
        } else {
            block[124] = 0x80  // base-256: the value big-endian in the other 11 bytes
            for i in 0..<8 { block[135 - i] = UInt8((size >> (8 * i)) & 0xFF) }
        }
        put("00000000000", at: 136)
        block[156] = UInt8(ascii: "0")
        put("ustar", at: 257)
        put("00", at: 263)
        for i in 148..<156 { block[i] = 0x20 }
        let sum = block.reduce(0) { $0 + Int($1) }
        put(String(repeating: "0", count: 6 - String(sum, radix: 8).count) + String(sum, radix: 8), at: 148)
        block[154] = 0
        return block + data
    }

    @Test("a tar entry that declares 1 TiB but holds 8 bytes is corrupt, not a 1 TiB allocation")
    func hugeDeclaredEntry() throws {
        let bytes = Self.tarHeader(name: "u0000000.json", size: 1 << 40, data: Array("{\"a\":1}".utf8) + [0])
        let reader = try ShardReader(bytes: bytes, path: "big.tar")
        let error = #expect(throws: FedRecError.self) { try reader.next() }
        #expect(error?.failure == .corrupt && error?.file == "big.tar")
    }

    @Test("a tar entry is read whole, however its data arrives")
    func entryReadWhole() throws {
        // 200 KiB: more than one read buffer of libarchive and of the reader.
        let payload = (0..<200_000).map { UInt8($0 % 251) }
        var bytes = Self.tarHeader(name: "big.bin", size: payload.count, data: payload)
        bytes += [UInt8](repeating: 0, count: (512 - payload.count % 512) % 512 + 1024)
        let reader = try ShardReader(bytes: bytes, path: "ok.tar")
        let entry = try #require(try reader.next())
        #expect(entry.name == "big.bin" && entry.bytes == payload)
        #expect(try reader.next() == nil)
    }

    /// A shard of one user whose `KEY.json` is `meta`.
    static func shard(userJSON meta: String) throws -> [UInt8] {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/s.tar"
        let writer = try ShardWriter(path: path)
        try writer.add(name: ShardLayout.headerName, bytes: Array(#"{"format":"fedrec","format_version":2,"kind":"shard","users":1}"#.utf8))
        try writer.add(name: "u0000000.json", bytes: Array(meta.utf8))
        try writer.add(name: "u0000000.train.npy", bytes: Npy.encode(Interactions(items: [1], ratings: [4], times: [0])))
        try writer.commit()
        return try readBytes(path)
    }

    @Test("a shard's user or client index outside 0..<2^31 is corrupt, not a trap",
          arguments: [#""user":3000000000,"client":0"#, #""user":-1,"client":0"#, #""user":0,"client":4294967296"#, #""user":0,"client":-2"#])
    func userIndexOutOfRange(fields: String) throws {
        let users = try ShardUserReader(reader: ShardReader(bytes: Self.shard(userJSON: "{\(fields),\"id\":\"x\"}"), path: "s.tar"))
        let error = #expect(throws: FedRecError.self) { try users.next() }
        #expect(error?.failure == .corrupt && error?.file == "s.tar")
    }

    @Test("a shard in memory reads as the same shard on disk")
    func shardInMemory() throws {
        let users = try ShardUserReader(reader: ShardReader(bytes: Self.shard(userJSON: #"{"user":2147483647,"client":5,"id":"x"}"#), path: "s.tar"))
        let user = try #require(try users.next())
        #expect(user.user == Int32.max && user.client == 5 && user.id == "x" && user.train.items == [1])
        #expect(try users.next() == nil)
        #expect((#expect(throws: FedRecError.self) { try ShardReader(bytes: [], path: "e.tar") })?.failure == .emptyInput)
        #expect((#expect(throws: FedRecError.self) { try ShardReader(bytes: [1, 2, 3], path: "r.tar").next() })?.failure == .corrupt)
    }

    @Test("a safetensors file in memory is read as from disk, 16-byte aligned")
    func safeTensorsInMemory() throws {
        var writer = SafeTensorsWriter(metadata: ["format": "fedrec", "format_version": "2", "kind": "model"])
        writer.add("b", shape: [3], floats: [1, 2, 3])
        let dir = try TemporaryDirectory()
        try writer.write(to: dir.path + "/m.safetensors")
        let bytes = try readBytes(dir.path + "/m.safetensors")
        let file = MappedFile(path: "m.safetensors", contents: bytes)
        #expect(Int(bitPattern: file.bytes.baseAddress) % 16 == 0 && file.bytes.count == bytes.count)
        let tensors = try FedRecFile(file: SafeTensorsFile(file: file), kinds: [.model]).tensors
        #expect(try tensors.floats("b") == [1, 2, 3] && tensors.path == "m.safetensors")
        #expect(MappedFile(path: "e", contents: [UInt8]()).bytes.count == 0)
    }
}
