import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecData
@testable import FedRecFormats
@testable import FedRecModel
@testable import FedRecSupport
@testable import FedRecTraining
@testable import FedRecWire

@Suite("header and shard checksums, and the streamed sum")
struct SealTests {
    /// The literals come from Python, not from this code:
    /// ```python
    /// import json, struct, xxhash
    /// data = struct.pack('<2f', 1.0, 2.0)
    /// checksum = "xxh64:%016x" % xxhash.xxh64_intdigest(struct.pack('<Q', xxhash.xxh64_intdigest(data)))
    /// header = {"__metadata__": {"checksum": checksum, "format": "fedrec"},
    ///           "x": {"data_offsets": [0, 8], "dtype": "F32", "shape": [2]}}
    /// text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    /// "xxh64:%016x" % xxhash.xxh64_intdigest(text.encode())   # 'xxh64:635636bfcd443136'
    /// ```
    @Test("header_checksum is XXH64 of the canonical header without it, as docs/FORMATS.md computes it in Python")
    func headerChecksumMatchesPython() throws {
        let dir = try TemporaryDirectory()
        var writer = SafeTensorsWriter(metadata: ["format": "fedrec"])
        writer.add("x", shape: [2], floats: [1, 2])
        try writer.write(to: dir.path + "/x.safetensors")
        let file = try SafeTensorsFile(path: dir.path + "/x.safetensors")
        #expect(file.metadata["checksum"] == "xxh64:1438b30f09fca9ef")
        #expect(file.metadata[HeaderSeal.key] == "xxh64:635636bfcd443136")
        #expect(try HeaderSeal.verify(file))
    }

    /// `json.dumps({"client": 3, "files": {"train.npy": "xxh64:0123456789abcdef"}, "id": "u", "user": 7},
    /// sort_keys=True, separators=(",", ":"))` hashed with `xxhash.xxh64_intdigest`.
    @Test("a sealed JSON member's checksum matches Python's; any changed value breaks it")
    func jsonSealMatchesPython() throws {
        let object: [String: JSONValue] = ["client": 3, "files": ["train.npy": "xxh64:0123456789abcdef"], "id": "u", "user": 7]
        let sealed = try #require(JSONSeal.sealed(object).objectValue)
        #expect(sealed["checksum"] == "xxh64:a9db5c14ca21c662")
        #expect(JSONSeal.verify(sealed) == true)
        var changed = sealed
        changed["user"] = 8
        #expect(JSONSeal.verify(changed) == false)
        #expect(JSONSeal.verify(object) == nil)
        // From raw bytes: canonical text (the fast path), the same JSON spaced out (parsed
        // content), and a changed byte.
        let canonical = Array(JSONValue.object(sealed).canonicalText.utf8)
        let spaced = Array(JSONValue.object(sealed).prettyText.utf8)
        var flipped = canonical
        flipped[flipped.count - 2] = UInt8(ascii: "8")  // "user":7} → "user":8}
        for (bytes, expected) in [(canonical, true), (spaced, true), (flipped, false)] {
            let parsed = try #require(try bytes.withUnsafeBytes { try JSONValue.parse($0) }.objectValue)
            #expect(bytes.withUnsafeBytes { JSONSeal.verify(parsed, raw: $0) } == expected)
        }
    }

    @Test("a version 3 file without header_checksum is corrupt; a version 2 file without it is read")
    func versions() throws {
        let dir = try TemporaryDirectory()
        for (version, code) in [(3, FailureClass.corrupt), (2, nil)] {
            var writer = SafeTensorsWriter(metadata: ["format": "fedrec", "format_version": String(version), "kind": "state"])
            writer.add("x", shape: [1], floats: [1])
            var (header, _) = writer.finished()
            // The same file as a writer without header checksums wrote it.
            var json = try #require(try header.withUnsafeBytes { try JSONValue.parse($0) }.objectValue)
            var metadata = try #require(json["__metadata__"]?.objectValue)
            metadata[HeaderSeal.key] = nil
            json["__metadata__"] = .object(metadata)
            header = Array(JSONValue.object(json).canonicalText.utf8)
            while (8 + header.count) % 8 != 0 { header.append(0x20) }
            var bytes = withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) } + header
            bytes += withUnsafeBytes(of: Float(1).bitPattern.littleEndian) { Array($0) }
            let path = dir.path + "/v\(version).safetensors"
            try writeAtomically(bytes, to: path)
            if let code {
                #expect { try FedRecFile(path: path, kinds: [.state]) } throws: { ($0 as? FedRecError)?.failure == code }
            } else {
                #expect(try FedRecFile(path: path, kinds: [.state]).kind == .state)
            }
        }
    }

    @Test("the streamed sum equals adding every update loaded at once in identity order, whatever the order named")
    func streamedSum() throws {
        let data = try SyntheticDataset(shards: 4)
        let model = try data.initialModel(.mse)
        var options = TrainingOptions()
        options.algorithm = .als
        options.userParameters = .reconstruct
        var paths: [String] = []
        for (s, shard) in data.shards.enumerated() {
            let path = data.directory.path + "/u\(s).safetensors"
            try ShardTrainer.run(modelPath: model, shardPath: shard, stateIn: nil, stateOut: nil, output: path, options: options)
            paths.append(path)
        }
        // Reference: load all, sort by the SHA-256 of each header, add in that order.
        let loaded = try paths.map { (identity: try SafeTensorsFile(path: $0).identity, path: $0, update: try ModelUpdate.load($0)) }
            .sorted { $0.identity < $1.identity }
        var reference = loaded[0].update
        for entry in loaded.dropFirst() { try reference.add(entry.update, file: entry.path) }
        for order in [paths, paths.reversed(), [paths[2], paths[0], paths[3], paths[1]]] {
            let sum = try ModelUpdate.sum(paths: order)
            #expect(sum.rows == reference.rows && sum.rowClients == reference.rowClients)
            #expect(sum.rowWeight.map(\.bitPattern) == reference.rowWeight.map(\.bitPattern))
            for (name, tensor) in reference.rowTensors {
                #expect(sum.rowTensors[name]?.values.map(\.bitPattern) == tensor.values.map(\.bitPattern))
            }
            #expect(sum.dense.mapValues { $0.map(\.bitPattern) } == reference.dense.mapValues { $0.map(\.bitPattern) })
            #expect(sum.header == reference.header)
        }
        // The sum records the four shards it holds.
        #expect(Set(reference.header.shards).count == 4)
    }
}
