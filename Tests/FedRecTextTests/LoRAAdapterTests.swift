import FedRecCore
import FedRecFormats
import FedRecSupport
import FedRecTestSupport
import Testing

@testable import FedRecText

@Suite struct LoRAAdapterTests {
    @Test("with B = 0 the adapted encoder gives bit-identical embeddings, merged or not")
    func zeroBIsTheBaseModel() throws {
        let tiny = try TinyLoRA()
        let sequences = TinyLoRA.queries + TinyLoRA.positives
        for targets in [[LoRATarget.query, .value], LoRATarget.allCases] {
            let adapter = try tiny.adapter(targets: targets, randomB: false)
            for pooling in LoRAGradientTests.poolings {
                let base = try tiny.base.embed(sequences, pooling: pooling)
                #expect(try tiny.base.adapted(by: adapter, file: "a").embed(sequences, pooling: pooling) == base)
                #expect(try TrainableEncoder(base: tiny.base, adapter: adapter, pooling: pooling).forward(sequences) == base)
            }
        }
    }

    @Test("an adapter file reads back as written, with its metadata and tensor names")
    func roundTrip() throws {
        let tiny = try TinyLoRA()
        let adapter = try tiny.adapter(targets: [.query, .value, .intermediate], frozenA: true)
        let path = tiny.directory.path + "/adapter.safetensors"
        try adapter.write(to: path)
        #expect(try LoRAAdapter(path: path) == adapter)
        let file = try SafeTensorsFile(path: path)
        #expect(file.metadata["kind"] == "text_adapter")
        #expect(file.metadata["targets"] == "query,value,intermediate")
        #expect(file.metadata["frozen_a"] == "true" && file.metadata["rank"] == "2" && file.metadata["seed"] == "7")
        #expect(file.metadata["base_model"] == (try tiny.base.baseIdentity()))
        #expect(try file.info("encoder.layer.1.attention.self.query.lora_B").shape == [8, 2])
        #expect(try file.info("encoder.layer.0.intermediate.dense.lora_A").shape == [2, 8])
        #expect(try file.info("encoder.layer.0.intermediate.dense.lora_B").shape == [16, 2])
        // A is the seed's: the same seed regenerates it.
        #expect(try tiny.adapter(targets: [.query, .value, .intermediate], frozenA: true, randomB: false).pairs.map(\.a) == adapter.pairs.map(\.a))
    }

    /// Expects `body` to throw a one-line `FedRecError` of `failure` naming `file`.
    func expectRefusal(_ failure: FailureClass, file: String, mentioning text: String, _ body: () throws -> Void) {
        do {
            try body()
            Issue.record("expected \(failure) for \(file)")
        } catch let error as FedRecError {
            #expect(error.failure == failure, "\(error)")
            #expect(error.file == file)
            #expect(error.description.contains(text), "\(error)")
            #expect(!error.description.contains("\n"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test("malformed adapters are refused with one line naming the file")
    func refusals() throws {
        let tiny = try TinyLoRA()
        let adapter = try tiny.adapter(targets: [.query, .value])
        let dir = tiny.directory.path
        // Another kind of file: the base model itself.
        expectRefusal(.wrongKind, file: tiny.path, mentioning: "not a fedrec file") { _ = try LoRAAdapter(path: tiny.path) }
        // Rank mismatch: metadata says 3, tensors are rank 2.
        var writer = adapter.writer()
        writer.metadata["rank"] = "3"
        try writer.write(to: dir + "/rank.safetensors")
        expectRefusal(.shape, file: dir + "/rank.safetensors", mentioning: "encoder.layer.0.attention.self.query.lora_A") {
            _ = try LoRAAdapter(path: dir + "/rank.safetensors")
        }
        // A wrong shape.
        writer = adapter.writer()
        writer.add("encoder.layer.1.attention.self.value.lora_B", shape: [9, 2], floats: [Float](repeating: 0, count: 18))
        try writer.write(to: dir + "/shape.safetensors")
        expectRefusal(.shape, file: dir + "/shape.safetensors", mentioning: "[9, 2]") { _ = try LoRAAdapter(path: dir + "/shape.safetensors") }
        // A tensor the targets do not explain.
        writer = adapter.writer()
        writer.add("encoder.layer.0.attention.self.key.lora_A", shape: [2, 8], floats: [Float](repeating: 0, count: 16))
        try writer.write(to: dir + "/extra.safetensors")
        expectRefusal(.shape, file: dir + "/extra.safetensors", mentioning: "key.lora_A") { _ = try LoRAAdapter(path: dir + "/extra.safetensors") }
        // Unknown target, bad seed.
        for (key, value, name) in [("targets", "query,gate", "targets"), ("seed", "-1", "seed"), ("alpha", "nan", "alpha")] {
            writer = adapter.writer()
            writer.metadata[key] = value
            try writer.write(to: dir + "/meta.safetensors")
            expectRefusal(.corrupt, file: dir + "/meta.safetensors", mentioning: name) { _ = try LoRAAdapter(path: dir + "/meta.safetensors") }
        }
        // An adapter for another base model (same shape, other weights).
        try adapter.write(to: dir + "/adapter.safetensors")
        let other = try TinyLoRA(seed: 43)
        let read = try LoRAAdapter(path: dir + "/adapter.safetensors")
        expectRefusal(.mismatch, file: dir + "/adapter.safetensors", mentioning: "another base model") {
            _ = try other.base.adapted(by: read, file: dir + "/adapter.safetensors")
        }
        expectRefusal(.mismatch, file: dir + "/adapter.safetensors", mentioning: "another base model") {
            _ = try TrainableEncoder(base: other.base, adapter: read, pooling: Pooling(), adapterFile: dir + "/adapter.safetensors")
        }
    }
}

@Suite(
    "fl-encode --adapter with the pretrained model", .serialized,
    .enabled(if: ReferencePaths.available, "needs models/all-MiniLM-L6-v2 (run `make model`)"))
struct EncodeAdapterCommandTests {
    @Test("a fresh adapter (B = 0) leaves fl-encode's output unchanged; one for another model is refused")
    func freshAdapter() throws {
        let dir = try ScratchDirectory()
        let model = ReferencePaths.model
        let base = try BertEncoder(directory: try ModelDirectory(path: model))
        try LoRAAdapter(config: LoRAConfig(rank: 8, alpha: 16, targets: [.query, .value], seed: 1), for: base).write(to: dir.path + "/fresh.safetensors")
        let plain = try EncodeTool.run(["--model-dir", model, "--text", "space adventure", "--json"], in: dir.path)
        let adapted = try EncodeTool.run(
            ["--model-dir", model, "--text", "space adventure", "--json", "--adapter", dir.path + "/fresh.safetensors"], in: dir.path)
        #expect(plain.status == 0 && adapted.status == 0, "\(adapted.stderr)")
        #expect(!plain.stdout.isEmpty && adapted.stdout == plain.stdout)

        let tiny = try TinyLoRA()
        try tiny.adapter().write(to: dir.path + "/tiny.safetensors")
        let refused = try EncodeTool.run(
            ["--model-dir", model, "--text", "space adventure", "--adapter", dir.path + "/tiny.safetensors"], in: dir.path)
        #expect(refused.status == FailureClass.mismatch.rawValue)
        #expect(refused.stderr.contains(dir.path + "/tiny.safetensors"))
        #expect(refused.stderr.split(separator: "\n").count == 1, "\(refused.stderr)")
    }
}
