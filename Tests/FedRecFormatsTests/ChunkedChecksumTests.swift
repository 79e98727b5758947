import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecFormats
import FedRecSupport

@Suite("chunked checksums: verified as read")
struct ChunkedChecksumTests {
    /// A fedrec model-kind file with a 3-chunk tensor `big` (10,000 bytes) and a small `b`.
    func write(_ path: String) throws {
        var writer = SafeTensorsWriter(metadata: ["format": "fedrec", "format_version": "2", "kind": "model"])
        writer.chunkedChecksum = true
        writer.add("big", shape: [2500], floats: (0..<2500).map { Float($0) })
        writer.add("b", shape: [3], floats: [1, 2, 3])
        try writer.write(to: path)
    }

    @Test("the table holds XXH64 of each 4 KiB chunk of each tensor; the header's checksum covers the table")
    func tableLayout() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/c.safetensors"
        try write(path)
        let file = try SafeTensorsFile(path: path)
        let table = try file.info(ChunkedChecksum.tensorName)
        #expect(table.dtype == .u64 && table.shape == [4])  // b: 1 chunk, big: 3 (4096 + 4096 + 1808)
        let raw = file.bytes(of: table)
        let stored = (0..<4).map { UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self)) }
        let big = file.bytes(of: try file.info("big")), small = file.bytes(of: try file.info("b"))
        #expect(file.names == [ChunkedChecksum.tensorName, "b", "big"])
        let expected = [XXHash64.hash(small)] + [0..<4096, 4096..<8192, 8192..<10_000].map { XXHash64.hash(UnsafeRawBufferPointer(rebasing: big[$0])) }
        #expect(stored == expected)
        #expect(file.metadata["checksum"] == "xxh64-chunks:" + XXHash64.hex(raw))
        #expect(file.metadata["checksum_chunk"] == "4096")
    }

    @Test("a corrupt chunk is found when it is read, and only then; a full check finds it at once")
    func lazyVerification() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/c.safetensors", bad = dir.path + "/bad.safetensors"
        try write(path)
        var bytes = try readBytes(path)
        bytes[bytes.count - 100] ^= 0x01  // inside big's third chunk
        try writeAtomically(bytes, to: bad)

        let lazy = try FedRecFile(path: bad, kinds: [.model], lazyTensors: ["big"])
        let verifier = try #require(lazy.chunks)
        let big = try lazy.tensors.info("big")
        verifier.verify(big, bytes: 0..<8192)
        try verifier.check()
        verifier.verify(big, bytes: 9000..<9004)
        let error = #expect(throws: FedRecError.self) { try verifier.check() }
        #expect(error?.failure == .checksum && error?.file == bad && error?.message.contains("big") == true)
        #expect((#expect(throws: FedRecError.self) { try FedRecFile(path: bad, kinds: [.model]) })?.failure == .checksum)
        #expect(throws: FedRecError.self) { try FedRecFile(path: bad, kinds: [.model], lazyTensors: ["big"]).chunks?.verifyEverything() }
        // The good file passes every check.
        try FedRecFile(path: path, kinds: [.model], lazyTensors: ["big"]).chunks?.verifyEverything()
    }

    @Test("a tampered chunk table is refused when the file is opened")
    func tamperedTable() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/c.safetensors"
        try write(path)
        let file = try SafeTensorsFile(path: path)
        let headerLength = 8 + file.headerBytes.count
        var bytes = try readBytes(path)
        bytes[headerLength + 3] ^= 0x40  // the table is the first tensor
        try writeAtomically(bytes, to: dir.path + "/t.safetensors")
        let error = #expect(throws: FedRecError.self) { try FedRecFile(path: dir.path + "/t.safetensors", kinds: [.model], lazyTensors: ["big"]) }
        #expect(error?.failure == .checksum)
    }
}
