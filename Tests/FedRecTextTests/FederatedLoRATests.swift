import FedRecAggregation
import FedRecCore
import FedRecData
import FedRecFormats
import FedRecModel
import FedRecSupport
import FedRecTestSupport
import FedRecWire
import Foundation
import Testing

@testable import FedRecText

/// One federated round of text-lora on the tiny random BERT of `Fixtures/` (hidden 8, two
/// layers, a 12-word vocabulary): fl-partition's query logs, the shards' local training
/// and FedAvg, checked against the example-weighted average of each client's own delta
/// computed apart (one AdamW step on the client's training queries).
@Suite struct FederatedLoRATests {
    /// A model directory of the fixture's weights with a vocabulary of its 12 ids.
    static func tinyModel(in directory: String) throws -> String {
        let file = try SafeTensorsFile(path: LoRAReferenceTests.fixture)
        let dir = directory + "/tiny-bert"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try (try #require(file.metadata["config"])).write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: LoRAReferenceTests.fixture, toPath: dir + "/model.safetensors")
        let vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "space", "war", "love", "comedy", "drama", "funny", "dark"]
        try (vocabulary.joined(separator: "\n") + "\n").write(toFile: dir + "/vocab.txt", atomically: true, encoding: .utf8)
        return dir
    }

    /// The round the tests share: the fixture's model, three users' query logs in three
    /// shards, the initial adapter and each shard's update of one local step.
    struct TrainedRound {
        let tmp: TemporaryDirectory
        let modelDir: String
        let initial: TensorModel
        let model0: String
        let updates: [String]
    }

    static func trainedRound() throws -> TrainedRound {
        let tmp = try TemporaryDirectory()
        let modelDir = try Self.tinyModel(in: tmp.path)
        // Three users with two ratings each (one shard each); user 1 has six queries (the
        // latest 20 % from position ⌊0.8·6⌋ = 4 on are test), user 2 two (all training),
        // user 3 none; a query of an unknown user and one of an unknown item are dropped.
        try "userId,movieId,rating,timestamp\n1,10,4,1\n1,20,5,2\n2,20,3,1\n2,30,4,2\n3,30,2,1\n3,40,5,2\n"
            .write(toFile: tmp.path + "/ratings.csv", atomically: true, encoding: .utf8)
        try "movieId,title,genres\n10,Space War,Drama\n20,Love,Comedy\n30,Dark,Drama\n40,Funny Love,Comedy\n"
            .write(toFile: tmp.path + "/movies.csv", atomically: true, encoding: .utf8)
        let tags = """
            userId,movieId,tag,timestamp
            1,10,space,100
            1,20,love,101
            1,30,dark,102
            1,40,"funny  love",103
            1,10,war,104
            1,20,comedy,105
            2,30,drama,100
            2,40,funny,101
            9,10,space,100
            2,99,dark,102

            """
        try tags.write(toFile: tmp.path + "/tags.csv", atomically: true, encoding: .utf8)
        var options = PartitionOptions(ratings: tmp.path + "/ratings.csv")
        options.itemsFile = tmp.path + "/movies.csv"
        options.shards = 3
        options.negatives = 0
        options.queries = QueryLogOptions(path: tmp.path + "/tags.csv")
        let dataset = tmp.path + "/data"
        let manifest = try Partitioner.run(options, output: dataset)
        #expect(manifest.details["queries"]?["train"]?.intValue == 6)
        #expect(manifest.details["queries"]?["test"]?.intValue == 2)
        #expect(manifest.details["queries"]?["dropped_unknown_users"]?.intValue == 1)
        #expect(manifest.details["queries"]?["dropped_unknown_items"]?.intValue == 1)
        let shards = manifest.shardPaths(in: dataset)
        try #require(shards.count == 3 && manifest.shards.allSatisfy { $0.clients == 1 })

        let initial = try TextLoRAModel.initial(
            config: LoRAConfig(rank: 2, alpha: 4, targets: [.query, .value], seed: 3, frozenA: true), baseModelDirectory: modelDir,
            manifest: manifest)
        #expect(Set(initial.tensors.keys).allSatisfy { $0.hasSuffix("lora_B") } && initial.tensors.count == 4)
        let model0 = tmp.path + "/model-0000.safetensors"
        try initial.write(to: model0)

        var settings = LoRALocalSettings()
        settings.batchSize = 16  // one step a client: the batch's order does not matter
        settings.negatives = 0
        settings.learningRate = 0.01
        var updates: [String] = []
        for (s, shard) in shards.enumerated() {
            let path = tmp.path + "/update-\(s).safetensors"
            _ = try LoRAShardTrainer.run(
                modelPath: model0, shardPath: shard, itemsPath: dataset + "/items.tsv", modelDirectory: modelDir, output: path,
                settings: settings)
            updates.append(path)
        }
        let weights = try updates.map { try ModelUpdate.load($0).header.weight }
        #expect(weights == [4, 2, 0])
        return TrainedRound(tmp: tmp, modelDir: modelDir, initial: initial, model0: model0, updates: updates)
    }

    @Test("a federated round's adapter is the example-weighted average of the clients' deltas")
    func oneRound() throws {
        let round = try Self.trainedRound()
        let (modelDir, initial, model0, updates) = (round.modelDir, round.initial, round.model0, round.updates)
        let sum = try ModelUpdate.sum(paths: updates)
        let next = try TensorServerStep.apply(sum, sumFile: "sum", to: model0, options: ServerOptions())
        #expect(next.round == 1)

        // Each client's delta apart: one AdamW step from the round's adapter on its
        // training queries (by the hold-out rule above) and their items' texts.
        let encoder = try SentenceEncoder(directory: modelDir)
        func text(_ title: String, _ genres: String) -> [Int32] { encoder.tokenizer.encode(ItemText.compose(title: title, genres: genres)) }
        let space = text("Space War", "Drama"), love = text("Love", "Comedy"), dark = text("Dark", "Drama"), funny = text("Funny Love", "Comedy")
        try Self.expectWeightedAverage(
            next, from: initial, file: model0, encoder: encoder,
            clients: [(4, ["space", "love", "dark", "funny love"], [space, love, dark, funny]), (2, ["drama", "funny"], [dark, funny])])
    }

    /// Checks that `next` is `initial` moved by the weighted average of the clients'
    /// deltas, each computed apart as one AdamW step (lr 0.01, weight decay 0.01, τ 0.05)
    /// from `initial`'s adapter on the client's (query, positive item tokens).
    static func expectWeightedAverage(
        _ next: TensorModel, from initial: TensorModel, file: String, encoder: SentenceEncoder,
        clients: [(weight: Float, queries: [String], items: [[Int32]])], sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let start = try TextLoRAModel.adapter(of: initial, file: file)
        let deltas = try clients.map { client -> [String: [Float]] in
            let trainable = try TrainableEncoder(base: encoder.encoder, adapter: start, pooling: encoder.pooling)
            try LoRATrainer(encoder: trainable, optimizer: AdamW(learningRate: 0.01, weightDecay: 0.01), temperature: 0.05)
                .step(queries: client.queries.map { encoder.tokenizer.encode($0) }, positives: client.items)
            var out: [String: [Float]] = [:]
            for (p, pair) in trainable.adapter.pairs.enumerated() { out[pair.tensorName("B")] = zip(pair.b, start.pairs[p].b).map { $0 - $1 } }
            return out
        }
        let total = clients.reduce(Float(0)) { $0 + $1.weight }
        var worst: Float = 0, scale: Float = 0
        for (name, tensor) in next.tensors {
            let b0 = try #require(initial.tensors[name]).values
            let each = try deltas.map { try #require($0[name]) }
            for i in tensor.values.indices {
                let expected = b0[i] + zip(clients, each).reduce(Float(0)) { $0 + $1.0.weight * $1.1[i] } / total
                worst = max(worst, abs(tensor.values[i] - expected))
                scale = max(scale, abs(expected - b0[i]))
            }
        }
        #expect(scale > 1e-4, "the round moved the adapter", sourceLocation: sourceLocation)
        #expect(worst <= 1e-6 + 1e-4 * scale, "largest difference \(worst) (delta scale \(scale))", sourceLocation: sourceLocation)
    }

    /// Checks every value of the unmasked sum against the plain one: each party's rounding
    /// moves a value by less than one step c/M, M = ⌊(2^(b-1) - 1)/n⌋, n the roster's
    /// parties, so the sums differ by at most n·c/M; and the plain sum moved the adapter by
    /// more than 10× that. Returns the bound.
    @discardableResult
    static func expectWithinRounding(
        _ secure: ModelUpdate, _ plain: ModelUpdate, parties: Int, clip: Double, bits: Int, sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> Double {
        let bound = Double(parties) * clip / Double(((1 << (bits - 1)) - 1) / parties) + 1e-7
        var moved = 0.0
        for (name, values) in plain.dense {
            let other = try #require(secure.dense[name], sourceLocation: sourceLocation)
            let worst = zip(other, values).map { abs(Double($0) - Double($1)) }.max() ?? .infinity
            #expect(other.count == values.count && worst <= bound, "\(name): \(worst) > \(bound)", sourceLocation: sourceLocation)
            moved = max(moved, values.map { abs(Double($0)) }.max() ?? 0)
        }
        #expect(moved > 10 * bound, "the plain sum moved the adapter by more than the rounding (\(moved))", sourceLocation: sourceLocation)
        return bound
    }

    /// Cross-silo secure aggregation of the round's updates, every step a file as a
    /// pipeline runs it: each shard is a party, the server sees only the masked sum.
    @Test("a secure round of text-lora updates: the unmasked sum is the plain sum within the quantisation bound, and so is the next adapter")
    func secureRound() throws {
        let round = try Self.trainedRound()
        let dir = round.tmp.path
        func run(_ arguments: [String]) throws {
            let r = try CommandRunner.run("fl-secagg", arguments, in: dir)
            guard r.status == 0 else { throw FedRecError(.io, "fl-secagg \(arguments.prefix(1)) failed (\(r.status)): \(r.stderr)") }
        }
        let parties = round.updates.count, bits = 24, clip = 1.0
        try run(["session", "--round", "0", "-o", "session"])
        for p in 0..<parties { try run(["keys", "--session", "session", "--party", String(p), "--state", "p\(p).state", "-o", "p\(p).keys"]) }
        try run(["roster", "--session", "session", "--bits", String(bits), "-q", "-o", "roster"] + (0..<parties).map { "p\($0).keys" })
        for p in 0..<parties { try run(["share", "--session", "session", "--state", "p\(p).state", "--roster", "roster", "-o", "p\(p).shares"]) }
        try run(["relay", "--session", "session", "--roster", "roster", "-o", "deliveries"] + (0..<parties).map { "p\($0).shares" })
        for p in 0..<parties {
            try run(["mask", "--session", "session", "--state", "p\(p).state", "--roster", "roster", "--deliveries", "deliveries",
                     "--update", round.updates[p], "--clip", String(clip), "-o", "p\(p).masked"])
        }
        let aggregated = try CommandRunner.run("fl-aggregate", (0..<parties).map { "p\($0).masked" } + ["-o", "masked-sum"], in: dir)
        #expect(aggregated.status == 0, "\(aggregated.stderr)")
        try run(["request", "--session", "session", "--roster", "roster", "--deliveries", "deliveries", "--sum", "masked-sum", "-o", "request"])
        for p in 0..<parties { try run(["reveal", "--session", "session", "--state", "p\(p).state", "--roster", "roster", "--request", "request", "-o", "p\(p).reveal"]) }
        try run(["unmask", "--session", "session", "--roster", "roster", "--request", "request", "--sum", "masked-sum", "-o", "secure.sum"]
                + (0..<parties).map { "p\($0).reveal" })

        let plain = try ModelUpdate.sum(paths: round.updates)
        let secure = try ModelUpdate.load(dir + "/secure.sum")
        #expect(secure.header.weight == plain.header.weight && secure.header.clients == plain.header.clients)
        #expect(Set(secure.dense.keys) == Set(plain.dense.keys) && !plain.dense.isEmpty)
        let bound = try Self.expectWithinRounding(secure, plain, parties: parties, clip: clip, bits: bits)
        let next = try TensorServerStep.apply(secure, sumFile: "secure.sum", to: round.model0, options: ServerOptions())
        let expected = try TensorServerStep.apply(plain, sumFile: "plain", to: round.model0, options: ServerOptions())
        for (name, tensor) in expected.tensors {
            let worst = zip(try #require(next.tensors[name]).values, tensor.values).map { abs(Double($0) - Double($1)) }.max() ?? .infinity
            #expect(worst <= bound, "\(name): \(worst)")
        }
    }

    /// Cross-device secure aggregation: every client its own party (fl-train-local
    /// --secagg-session on a text-lora model), each client's adapter delta quantised and
    /// masked apart; the unmasked sum against the plain shard sums of the same training.
    @Test("a cross-device secure round of text-lora: each client masked as its party, the unmasked sum is the plain sum within the bound")
    func crossDeviceSecureRound() throws {
        let round = try Self.trainedRound()
        let dir = round.tmp.path
        // The two shards whose users have queries (the third's user has none: a party that
        // never sends would only count as dropped).
        let shards = Array(try DatasetManifest.load(dir + "/data").shardPaths(in: dir + "/data").prefix(2))
        func run(_ tool: String, _ arguments: [String]) throws {
            let r = try CommandRunner.run(tool, arguments, in: dir)
            guard r.status == 0 else { throw FedRecError(.io, "\(tool) \(arguments.prefix(1)) failed (\(r.status)): \(r.stderr)") }
        }
        let training = ["--model", round.model0, "--batch-size", "16", "--negatives", "1", "--lr", "0.01", "--quiet"]
        for (k, shard) in shards.enumerated() { try run("fl-train-local", training + ["--shard", shard, "-o", "plain\(k).update"]) }
        let bits = 24, clip = 1.0
        try run("fl-secagg", ["session", "--round", "0", "-o", "session"])
        for (k, shard) in shards.enumerated() {
            try run("fl-secagg", ["keys", "--session", "session", "--shard", shard, "--state", "c\(k).state", "-o", "c\(k).keys"])
        }
        try run("fl-secagg", ["roster", "--session", "session", "--bits", String(bits), "-q", "-o", "roster"] + shards.indices.map { "c\($0).keys" })
        for k in shards.indices { try run("fl-secagg", ["share", "--session", "session", "--state", "c\(k).state", "--roster", "roster", "-o", "c\(k).shares"]) }
        try run("fl-secagg", ["relay", "--session", "session", "--roster", "roster", "-o", "deliveries"] + shards.indices.map { "c\($0).shares" })
        for (k, shard) in shards.enumerated() {
            try run("fl-train-local", training + [
                "--shard", shard, "--secagg-session", "session", "--secagg-state", "c\(k).state", "--secagg-roster", "roster",
                "--secagg-deliveries", "deliveries", "--secagg-clip", String(clip), "-o", "c\(k).masked",
            ])
        }
        let masked = shards.indices.map { "c\($0).masked" }
        try run("fl-aggregate", masked + ["-o", "masked-sum"])
        try run("fl-secagg", ["request", "--session", "session", "--roster", "roster", "--deliveries", "deliveries", "--sum", "masked-sum", "-o", "request"])
        for k in shards.indices { try run("fl-secagg", ["reveal", "--session", "session", "--state", "c\(k).state", "--roster", "roster", "--request", "request", "-o", "c\(k).reveal"]) }
        try run("fl-secagg", ["unmask", "--session", "session", "--roster", "roster", "--request", "request", "--sum", "masked-sum", "-o", "secure.sum"]
                + shards.indices.map { "c\($0).reveal" })

        let plain = try ModelUpdate.sum(paths: shards.indices.map { dir + "/plain\($0).update" })
        let secure = try ModelUpdate.load(dir + "/secure.sum")
        #expect(secure.header.clients == 2 && plain.header.clients == 2)
        #expect(secure.header.weight == plain.header.weight)
        try Self.expectWithinRounding(secure, plain, parties: shards.count, clip: clip, bits: bits)
        // A text-lora shard takes no distributed DP.
        let ddp = try CommandRunner.run("fl-train-local", training + ["--shard", shards[0], "--secagg-session", "session", "--secagg-silo", "-o", "x"], in: dir)
        #expect(ddp.status == FailureClass.usage.rawValue && ddp.stderr.contains("distributed DP"))
    }

    @Test("Poisson sampling of text-lora clients: the clients the key selects train, the update records q, the population and the key's source")
    func sampling() throws {
        let round = try Self.trainedRound()
        let dataset = round.tmp.path + "/data"
        let manifest = try DatasetManifest.load(dataset)
        let shards = manifest.shardPaths(in: dataset)
        var decisions = Set<Bool>()
        for (rate, seed) in [(1.0, UInt64(4)), (0.5, 9), (0.5, 10), (0.3, 11)] {
            var settings = LoRALocalSettings()
            settings.batchSize = 16
            settings.negatives = 0
            settings.learningRate = 0.01
            settings.sampleRate = rate
            settings.sampleSeed = seed
            let sampler = try PoissonSampling(rate: rate, seed: seed)
            for (s, shard) in shards.enumerated() {
                let path = round.tmp.path + "/sampled-\(s).safetensors"
                _ = try LoRAShardTrainer.run(
                    modelPath: round.model0, shardPath: shard, itemsPath: dataset + "/items.tsv", modelDirectory: round.modelDir, output: path,
                    settings: settings)
                let header = try ModelUpdate.load(path).header
                let plain = try ModelUpdate.load(round.updates[s]).header
                // One client a shard, client index = the shard's user (0, 1, 2).
                let reader = try ShardUserReader(path: shard)
                let client = try #require(try reader.next()).client
                let chosen = sampler.includes(round: 0, client: Int(client))
                if s < 2 { decisions.insert(chosen) }  // shard 2's client has no training query
                #expect(header.sampleRate == rate && header.population == 1 && header.extra[DPMetadata.samplingKey] == "test")
                #expect(header.clients == (chosen ? plain.clients : 0) && header.weight == (chosen ? plain.weight : 0), "rate \(rate) seed \(seed) shard \(s)")
            }
        }
        #expect(decisions == [true, false], "the seeds above both include and leave out a client with queries")
    }
}
