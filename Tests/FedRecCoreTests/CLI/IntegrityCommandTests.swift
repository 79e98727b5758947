import Foundation
import Testing
import FedRecTestSupport
import FedRecCore
import FedRecSupport
import FedRecFormats
import FedRecData
import FedRecWire

/// Corruption, mixed-up files and hostile numbers, through the commands: each is refused
/// with one stderr line naming the file and the exit code of its class.
@Suite("integrity: checksums on every byte a reader trusts, states tied to shards, no update counted twice, numbers in range", .serialized)
struct IntegrityCommandTests {
    typealias Round = CommandLineTests.Round

    /// Runs a command that must fail with `code` and one stderr line naming `file`.
    func refused(_ tool: String, _ args: [String], in path: String, code: Int32, file: String, says: String? = nil,
                 sourceLocation: SourceLocation = #_sourceLocation) throws {
        let r = try Tool.run(tool, args, in: path)
        #expect(r.status == code, "\(tool) \(args): exit \(r.status), stderr \(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderrLines.count == 1, "\(tool) \(args): \(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.hasPrefix("\(tool): \(file): "), "\(tool) \(args): \(r.stderr)", sourceLocation: sourceLocation)
        if let says { #expect(r.stderr.contains(says), "\(tool) \(args): \(r.stderr)", sourceLocation: sourceLocation) }
    }

    /// Replaces the one occurrence of `old` by `new` (same length) in `bytes`.
    static func replace(_ old: String, with new: String, in bytes: inout [UInt8]) throws {
        let a = Array(old.utf8), b = Array(new.utf8)
        precondition(a.count == b.count)
        let hits = (0...(bytes.count - a.count)).filter { bytes[$0] == a[0] && Array(bytes[$0..<($0 + a.count)]) == a }
        guard hits.count == 1 else { throw FedRecError(.badData, "\(old) occurs \(hits.count) times") }
        bytes.replaceSubrange(hits[0]..<(hits[0] + a.count), with: b)
    }

    /// Members of an uncompressed tar: name and the range of its data in the archive.
    static func tarMembers(_ bytes: [UInt8]) -> [(name: String, data: Range<Int>)] {
        var out: [(String, Range<Int>)] = []
        var at = 0
        while at + 512 <= bytes.count, bytes[at] != 0 {
            let name = String(decoding: bytes[at..<(at + 100)].prefix { $0 != 0 }, as: UTF8.self)
            let sizeText = String(decoding: bytes[(at + 124)..<(at + 136)].prefix { $0 != 0 && $0 != 0x20 }, as: UTF8.self)
            let size = Int(sizeText, radix: 8) ?? 0
            out.append((name, (at + 512)..<(at + 512 + size)))
            at += 512 + (size + 511) / 512 * 512
        }
        return out
    }

    // MARK: 1. Corruption

    @Test("a flipped byte in a checkpoint's header metadata (round, rating_min, objective) is refused, fl-inspect too")
    func checkpointHeader() throws {
        let round = try Round()
        let p = round.path
        let model = try readBytes(p + "/m0.safetensors")
        for (name, old, new) in [("round", "\"round\":\"0\"", "\"round\":\"4\""), ("rating_min", "\"rating_min\":\"1.0\"", "\"rating_min\":\"3.0\""),
                                 ("objective", "\"objective\":\"mse\"", "\"objective\":\"bpr\"")] {
            var bytes = model
            try Self.replace(old, with: new, in: &bytes)
            let file = "flipped-\(name).safetensors"
            try writeAtomically(bytes, to: p + "/" + file)
            try refused("fl-inspect", [file], in: p, code: 82, file: file, says: "header checksum")
            try refused("fl-train-local", ["--model", file, "--shard", "ds/shards/shard-00000.tar", "--reconstruct", "-o", "out"], in: p, code: 82, file: file)
            try refused("fl-eval", ["--model", file, "--dataset", "ds", "--reconstruct"], in: p, code: 82, file: file)
        }
        // The same change in an update (its clients) and a state (its round).
        var update = try readBytes(p + "/u0.safetensors")
        let clients = String(try ModelUpdate.load(p + "/u0.safetensors").header.clients)
        let more = String(clients.dropLast()) + (clients.last == "9" ? "8" : String(Int(String(clients.last!))! + 1))
        try Self.replace("\"clients\":\"\(clients)\"", with: "\"clients\":\"\(more)\"", in: &update)
        try writeAtomically(update, to: p + "/flipped-u.safetensors")
        try refused("fl-aggregate", ["flipped-u.safetensors", "-o", "out"], in: p, code: 82, file: "flipped-u.safetensors")
        #expect(!FileManager.default.fileExists(atPath: p + "/out"))
        // Unchanged files still pass.
        let inspect = try Tool.run("fl-inspect", ["m0.safetensors", "--json"], in: p)
        let described = try JSONValue.parse(inspect.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(inspect.status == 0 && described["checksum"] == "ok")
    }

    @Test("a flipped byte in a shard member (an item id, a rating 4 → 64, a user index) is refused, fl-inspect too")
    func shardMembers() throws {
        let round = try Round()
        let p = round.path
        let shard = try readBytes(p + "/ds/shards/shard-00000.tar")
        let members = Self.tarMembers(shard)
        let train = try #require(members.first { $0.name.hasSuffix(".train.npy") })
        // The npy data: after the 10-byte preamble and the header (v1.0), 16-byte records.
        let headerLength = Int(shard[train.data.lowerBound + 8]) | Int(shard[train.data.lowerBound + 9]) << 8
        let records = (train.data.lowerBound + 10 + headerLength)..<train.data.upperBound
        #expect(records.count % 16 == 0 && records.count > 0)
        var flippedItem = shard
        flippedItem[records.lowerBound] ^= 0x01  // item i → i ^ 1, still an item of the dataset
        let four = stride(from: records.lowerBound, to: records.upperBound, by: 16).first {
            shard[($0 + 4)..<($0 + 8)].elementsEqual(withUnsafeBytes(of: Float(4).bitPattern.littleEndian) { Array($0) })
        }
        var flippedRating = shard
        let at = try #require(four, "a rating of 4 in the first user's training data")
        flippedRating[at + 7] = 0x42  // 4.0 = 0x40800000 → 64.0 = 0x42800000
        var flippedUser = shard
        let json = try #require(members.first { $0.name.hasSuffix(".json") && $0.name != "__shard__.json" })
        let text = String(decoding: shard[json.data], as: UTF8.self)
        let userAt = try #require(text.range(of: "\"user\":"))
        let digit = json.data.lowerBound + text.utf8.distance(from: text.startIndex, to: userAt.upperBound)
        flippedUser[digit] = flippedUser[digit] == UInt8(ascii: "9") ? UInt8(ascii: "8") : flippedUser[digit] + 1
        var flippedHeader = shard
        let header = try #require(members.first { $0.name == "__shard__.json" })
        let headerText = String(decoding: shard[header.data], as: UTF8.self)
        let usersAt = try #require(headerText.range(of: "\"users\":"))
        flippedHeader[header.data.lowerBound + headerText.utf8.distance(from: headerText.startIndex, to: usersAt.upperBound)] ^= 0x01
        for (name, bytes) in [("item", flippedItem), ("rating", flippedRating), ("user", flippedUser), ("header", flippedHeader)] {
            let file = "flipped-\(name).tar"
            try writeAtomically(bytes, to: p + "/" + file)
            try refused("fl-train-local", ["--model", "m0.safetensors", "--shard", file, "--reconstruct", "-o", "out"], in: p, code: 82, file: file)
            try refused("fl-inspect", [file], in: p, code: 82, file: file)
        }
        #expect(!FileManager.default.fileExists(atPath: p + "/out"))
        let inspect = try Tool.run("fl-inspect", ["ds/shards/shard-00000.tar", "--json"], in: p)
        let described = try JSONValue.parse(inspect.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(inspect.status == 0 && described["checksum"] == "ok")
    }

    // MARK: 2. States belong to their shard

    @Test("a state file of another shard is refused (86) by fl-train-local, fl-eval and fl-recommend, naming both files")
    func stateOfAnotherShard() throws {
        let round = try Round()
        let p = round.path
        let before = try readBytes(p + "/s0.safetensors")
        try refused("fl-train-local", ["--model", "m0.safetensors", "--shard", "ds/shards/shard-00001.tar", "--state", "s0.safetensors", "-o", "out"],
                    in: p, code: 86, file: "s0.safetensors", says: "ds/shards/shard-00001.tar")
        #expect(try readBytes(p + "/s0.safetensors") == before)
        #expect(!FileManager.default.fileExists(atPath: p + "/out"))
        #expect(try Tool.run("fl-aggregate", ["u0.safetensors", "u1.safetensors", "--model", "m0.safetensors", "-o", "m1.safetensors"], in: p).status == 0)
        let manager = FileManager.default
        for (directory, first, second) in [("swapped", "s1", "s0"), ("right", "s0", "s1")] {
            try manager.createDirectory(atPath: p + "/" + directory, withIntermediateDirectories: false)
            try manager.copyItem(atPath: p + "/\(first).safetensors", toPath: p + "/\(directory)/shard-00000.state.safetensors")
            try manager.copyItem(atPath: p + "/\(second).safetensors", toPath: p + "/\(directory)/shard-00001.state.safetensors")
        }
        try refused("fl-eval", ["--model", "m1.safetensors", "--dataset", "ds", "--state-dir", "swapped"],
                    in: p, code: 86, file: "swapped/shard-00000.state.safetensors", says: "shard-00000")
        try refused("fl-recommend", ["--model", "m1.safetensors", "--dataset", "ds", "--state-dir", "swapped", "--user", "1"],
                    in: p, code: 86, file: "swapped/shard-0000\(try shardOfUser("1", in: p + "/ds")).state.safetensors", says: "shard-0000")
        // Its own shard's state is fine.
        #expect(try Tool.run("fl-eval", ["--model", "m1.safetensors", "--dataset", "ds", "--state-dir", "right"], in: p).status == 0)
        #expect(try Tool.run("fl-recommend", ["--model", "m1.safetensors", "--dataset", "ds", "--state-dir", "right", "--user", "1"], in: p).status == 0)
    }

    /// The shard `users.tsv` puts the user with raw id `id` in.
    func shardOfUser(_ id: String, in dataset: String) throws -> String {
        let text = try String(contentsOfFile: dataset + "/users.tsv", encoding: .utf8)
        let row = try #require(text.split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false) }.first { $0.count == 4 && $0[1] == id })
        return String(row[3])
    }

    // MARK: 3. No update counted twice

    @Test("fl-aggregate refuses an update named twice, a hard link or copy of it, and two updates of one shard")
    func duplicateUpdates() throws {
        let round = try Round()
        let p = round.path
        try FileManager.default.linkItem(atPath: p + "/u0.safetensors", toPath: p + "/link.safetensors")
        try FileManager.default.copyItem(atPath: p + "/u0.safetensors", toPath: p + "/copy.safetensors")
        #expect(try Tool.run("fl-train-local", ["--model", "m0.safetensors", "--shard", "ds/shards/shard-00000.tar", "--reconstruct",
                                                "--seed", "7", "-o", "again.safetensors"], in: p).status == 0)
        try refused("fl-aggregate", ["u0.safetensors", "u1.safetensors", "./u0.safetensors", "-o", "out"], in: p, code: 64, file: "./u0.safetensors", says: "same file")
        try refused("fl-aggregate", ["u0.safetensors", "link.safetensors", "-o", "out"], in: p, code: 64, file: "link.safetensors", says: "same file")
        try refused("fl-aggregate", ["u0.safetensors", "copy.safetensors", "-o", "out"], in: p, code: 64, file: "copy.safetensors", says: "same update")
        try refused("fl-aggregate", ["u0.safetensors", "again.safetensors", "--model", "m0.safetensors", "-o", "out"], in: p, code: 86,
                    file: "again.safetensors", says: "shard")
        // A sum holding shard 0, then shard 0's update again.
        #expect(try Tool.run("fl-aggregate", ["u0.safetensors", "u1.safetensors", "-o", "sum.safetensors"], in: p).status == 0)
        let sum = try ModelUpdate.load(p + "/sum.safetensors")
        #expect(sum.header.shards.count == 2)
        try refused("fl-aggregate", ["sum.safetensors", "again.safetensors", "-o", "out"], in: p, code: 86, file: "again.safetensors", says: "shard")
        #expect(!FileManager.default.fileExists(atPath: p + "/out"))
    }

    // MARK: 4. Numbers in range

    /// A shard of `users`' metadata (old format 2: no checksums, or format 3 sealed as a
    /// writer that recomputed them would), each user with one training event of `item`.
    static func writeShard(_ path: String, datasetId: String, users: [JSONValue], rating: Float = 4, sealed: Bool) throws {
        let writer = try ShardWriter(path: path)
        let header: JSONValue = sealed
            ? ShardLayout.header(shard: 0, datasetId: datasetId, users: users.count, clients: users.count)
            : ["format": "fedrec", "format_version": 2, "kind": "shard", "shard": 0, "dataset_id": .string(datasetId),
               "users": .number(Double(users.count)), "clients": .number(Double(users.count))]
        try writer.add(name: ShardLayout.headerName, bytes: Array(header.canonicalText.utf8))
        for (k, user) in users.enumerated() {
            let key = "u" + String(1000000 + k).dropFirst()
            let train = Npy.encode(Interactions(items: [1, 2], ratings: [rating, 3], times: [1, 2]))
            let test = Npy.encode(Interactions())
            var meta = user.objectValue ?? [:]
            meta["id"] = .string("x\(k)")
            let json = sealed
                ? JSONSeal.sealed(meta.merging([ShardLayout.filesKey: ["train.npy": .string(ShardLayout.memberChecksum(train)), "test.npy": .string(ShardLayout.memberChecksum(test))]]) { $1 }, key: ShardLayout.sealKey)
                : .object(meta)
            try writer.add(name: key + ".json", bytes: Array(json.canonicalText.utf8))
            try writer.add(name: key + ".train.npy", bytes: train)
            try writer.add(name: key + ".test.npy", bytes: test)
        }
        try writer.commit()
    }

    @Test("a shard whose JSON holds user or client 3000000000 or -1, or a rating NaN, is corrupt (84), not a crash")
    func hostileShardNumbers() throws {
        let round = try Round()
        let p = round.path
        let datasetId = try DatasetManifest.load(p + "/ds").datasetId
        let hostile: [(String, JSONValue, Float)] = [
            ("user-big", ["user": 3_000_000_000, "client": 0], 4), ("user-negative", ["user": -1, "client": 0], 4),
            ("client-big", ["user": 1, "client": 3_000_000_000], 4), ("client-negative", ["user": 1, "client": -1], 4),
            ("rating-nan", ["user": 1, "client": 0], .nan),
        ]
        for sealed in [false, true] {
            for (name, meta, rating) in hostile {
                let file = "\(name)-\(sealed ? "v3" : "v2").tar"
                try Self.writeShard(p + "/" + file, datasetId: datasetId, users: [meta], rating: rating, sealed: sealed)
                for parameters in [["--reconstruct"], ["--state", "new-state.safetensors"]] {
                    try refused("fl-train-local", ["--model", "m0.safetensors", "--shard", file, "-o", "out"] + parameters, in: p, code: 84, file: file)
                }
                try refused("fl-inspect", [file], in: p, code: 84, file: file)
            }
        }
        // In range, the same shard trains.
        try Self.writeShard(p + "/fine.tar", datasetId: datasetId, users: [["user": 1, "client": 0]], sealed: true)
        #expect(try Tool.run("fl-train-local", ["--model", "m0.safetensors", "--shard", "fine.tar", "--reconstruct", "-o", "out"], in: p).status == 0)
    }

    /// Rewrites a fedrec file with some metadata replaced, sealed and checksummed afresh
    /// (as a writer that produced those values would).
    static func rewrite(_ source: String, to target: String, metadata changes: [String: String]) throws {
        let file = try SafeTensorsFile(path: source)
        var writer = SafeTensorsWriter(metadata: file.metadata.merging(changes) { $1 })
        writer.chunkedChecksum = file.metadata["checksum"]?.hasPrefix(ChunkedChecksum.prefix) == true
        for name in file.names where name != ChunkedChecksum.tensorName {
            let info = file.tensors[name]!
            switch info.dtype {
            case .f32: writer.add(name, shape: info.shape, .f32(try file.floats(name)))
            case .i32: writer.add(name, shape: info.shape, .i32(try file.int32s(name)))
            case .f64: writer.add(name, shape: info.shape, .f64(try file.doubles(name)))
            default: throw FedRecError(.shape, file: source, "tensor \(name) of a dtype this test does not copy")
            }
        }
        try writer.write(to: target)
    }

    @Test("checkpoint and update metadata out of range (round -1, dim 0, clients -5, sample rate 2) are corrupt (84)")
    func hostileMetadata() throws {
        let round = try Round()
        let p = round.path
        for (name, changes) in [("round-negative", ["round": "-1"]), ("round-big", ["round": "3000000000"]), ("dim-zero", ["dim": "0"]),
                                ("items-big", ["items": "3000000000"])] {
            let file = "\(name).safetensors"
            try Self.rewrite(p + "/m0.safetensors", to: p + "/" + file, metadata: changes)
            try refused("fl-train-local", ["--model", file, "--shard", "ds/shards/shard-00000.tar", "--reconstruct", "-o", "out"], in: p, code: 84, file: file)
        }
        for (name, changes) in [("clients-negative", ["clients": "-5"]), ("clipped-more", ["clipped": "100000"]),
                                ("rate-two", ["sample_rate": "2", "population": "5"]), ("weight-nan", ["weight": "nan"])] {
            let file = "\(name).safetensors"
            try Self.rewrite(p + "/u0.safetensors", to: p + "/" + file, metadata: changes)
            try refused("fl-aggregate", [file, "-o", "out"], in: p, code: 84, file: file)
        }
        #expect(!FileManager.default.fileExists(atPath: p + "/out"))
    }

    @Test("users.tsv indices out of range (shard -1 or 7, user -3, client -1) are corrupt (84) for fl-recommend")
    func hostileUserTable() throws {
        let round = try Round()
        let p = round.path
        let text = try String(contentsOfFile: p + "/ds/users.tsv", encoding: .utf8)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let row = try #require(lines.firstIndex { $0.split(separator: "\t").dropFirst().first == "1" })
        let fields = lines[row].split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
        for (name, changed) in [("shard", [fields[0], fields[1], fields[2], "-1"]), ("shard-big", [fields[0], fields[1], fields[2], "7"]),
                                ("user", ["-3", fields[1], fields[2], fields[3]]), ("client", [fields[0], fields[1], "-1", fields[3]])] {
            try FileManager.default.copyItem(atPath: p + "/ds", toPath: p + "/ds-\(name)")
            lines[row] = changed.joined(separator: "\t")
            try writeAtomically(lines.joined(separator: "\n"), to: p + "/ds-\(name)/users.tsv")
            try refused("fl-recommend", ["--model", "m0.safetensors", "--dataset", "ds-\(name)", "--reconstruct", "--user", "1"], in: p, code: 84,
                        file: "ds-\(name)/users.tsv")
        }
    }

    @Test("dataset.json counts out of range (items -1, users 3000000000, a cold item 3000000000) are corrupt (84)")
    func hostileDataset() throws {
        let round = try Round()
        let p = round.path
        let original = try readBytes(p + "/ds/dataset.json").withUnsafeBytes { try JSONValue.parse($0) }
        for (name, key, value) in [("items", "items", JSONValue.number(-1)), ("users", "users", .number(3_000_000_000)),
                                   ("cold", "cold_items", .array([.number(3_000_000_000)]))] {
            try FileManager.default.copyItem(atPath: p + "/ds", toPath: p + "/ds-\(name)")
            var object = try #require(original.objectValue)
            object[key] = value
            try writeAtomically(JSONValue.object(object).prettyText, to: p + "/ds-\(name)/dataset.json")
            try refused("fl-init", ["--dataset", "ds-\(name)", "--objective", "mse", "--dim", "4", "-o", "x.safetensors"], in: p, code: 84,
                        file: "ds-\(name)/dataset.json")
            try refused("fl-eval", ["--model", "m0.safetensors", "--dataset", "ds-\(name)", "--reconstruct"], in: p, code: 84,
                        file: "ds-\(name)/dataset.json")
        }
    }
}
