import FedRecCore
import FedRecSupport

/// The shape of a BERT-family encoder, from Hugging Face's `config.json`.
public struct BertConfig: Sendable, Equatable {
    public var vocabSize: Int
    public var hiddenSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var intermediateSize: Int
    public var maxPositionEmbeddings: Int
    public var typeVocabSize: Int
    public var layerNormEps: Float

    public init(
        vocabSize: Int, hiddenSize: Int, numHiddenLayers: Int, numAttentionHeads: Int, intermediateSize: Int,
        maxPositionEmbeddings: Int = 512, typeVocabSize: Int = 2, layerNormEps: Float = 1e-12
    ) {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.intermediateSize = intermediateSize
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.typeVocabSize = typeVocabSize
        self.layerNormEps = layerNormEps
    }

    /// Width of one attention head.
    public var headSize: Int { hiddenSize / numAttentionHeads }

    /// Reads `config.json`. Only absolute position embeddings and the exact (erf) GELU are
    /// supported; anything else is refused rather than computed wrongly.
    /// - Throws: `FedRecError(.badData, file:)` naming the file and the key.
    public init(json: JSONValue, file: String) throws {
        func int(_ key: String, default value: Int? = nil) throws -> Int {
            if let v = json[key]?.intValue, v > 0 { return v }
            if json[key] == nil, let value { return value }
            throw FedRecError(.badData, file: file, "\(key) must be a positive integer")
        }
        if let type = json["model_type"], type.stringValue != "bert" {
            // RoBERTa and others differ in position ids or layer layout.
            throw FedRecError(.badData, file: file, "model_type \(type.canonicalText) is not supported (only \"bert\")")
        }
        if let act = json["hidden_act"], act.stringValue != "gelu" {
            throw FedRecError(.badData, file: file, "hidden_act \(act.canonicalText) is not supported (only \"gelu\", the erf form)")
        }
        if let kind = json["position_embedding_type"], kind.stringValue != "absolute" {
            throw FedRecError(.badData, file: file, "position_embedding_type \(kind.canonicalText) is not supported (only \"absolute\")")
        }
        self.init(
            vocabSize: try int("vocab_size"), hiddenSize: try int("hidden_size"),
            numHiddenLayers: try int("num_hidden_layers"), numAttentionHeads: try int("num_attention_heads"),
            intermediateSize: try int("intermediate_size"), maxPositionEmbeddings: try int("max_position_embeddings", default: 512),
            typeVocabSize: try int("type_vocab_size", default: 2),
            layerNormEps: Float(json["layer_norm_eps"]?.doubleValue ?? 1e-12))
        guard hiddenSize % numAttentionHeads == 0 else {
            throw FedRecError(.badData, file: file, "hidden_size \(hiddenSize) is not a multiple of num_attention_heads \(numAttentionHeads)")
        }
    }
}
