#!/usr/bin/env python3
"""Writes lora-tiny-bert.safetensors: the PyTorch reference for the LoRA backward pass.

A tiny random BERT (Hugging Face transformers' BertModel: 2 layers, hidden 8, 2 heads,
intermediate 16) with PEFT LoRA adapters (r = 2, alpha = 4) on every dense layer of
every encoder layer (query, key, value, attention output, intermediate, output), lora_A
and lora_B random. Seven token sequences of different lengths are padded into one batch
with an attention mask; mean pooling over the mask and L2 normalisation (as
sentence-transformers pools all-MiniLM-L6-v2) give the embeddings; the loss is the
in-batch sampled softmax of three queries against their three positives plus one extra
negative, temperature 0.5:  L = mean_i CE(q_i . p_j / 0.5, i). Autograd in float64 gives
dL/dA and dL/dB of every adapter.

The file holds the base weights (F32, BertModel's names), the adapters (F32,
`encoder.layer.N.<module>.lora_A` / `lora_B`), the padded `input_ids` and `lengths`
(I32), the loss and `grad.<adapter tensor>` (F64); metadata: the model's config.json,
rank, alpha, the number of queries, the temperature and the library versions.
FedRecTextTests/LoRAReferenceTests.swift reads it.

Run once, with torch, transformers, peft and safetensors installed (pip, into a venv
outside the repository):
    python3 Tests/FedRecTextTests/Fixtures/make_lora_fixture.py
"""

import json
import os

import peft
import safetensors.torch
import torch
import transformers

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "lora-tiny-bert.safetensors")

CONFIG = dict(
    vocab_size=12, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16,
    max_position_embeddings=8, type_vocab_size=2, layer_norm_eps=1e-12, hidden_act="gelu",
    position_embedding_type="absolute", model_type="bert",
    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
)
RANK, ALPHA, TEMPERATURE = 2, 4.0, 0.5
QUERIES = [[2, 5, 3], [2, 7, 8, 9, 3], [2, 3]]
POSITIVES = [[2, 6, 10, 3], [2, 9, 3], [2, 11, 5, 6, 7, 3]]
NEGATIVES = [[2, 1, 4, 3]]


def uniform(generator, shape, low, high):
    """float32 values (so the Swift side reads exactly what float64 autograd used)."""
    return (torch.rand(shape, generator=generator, dtype=torch.float32) * (high - low) + low)


def main():
    generator = torch.Generator().manual_seed(20240613)
    config = transformers.BertConfig(**CONFIG)
    config._attn_implementation = "eager"
    model = transformers.BertModel(config, add_pooling_layer=False)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name:
                p.copy_(uniform(generator, p.shape, 0.8, 1.2))
            else:
                p.copy_(uniform(generator, p.shape, -0.5, 0.5))
    base = {k: v.detach().clone().float().contiguous() for k, v in model.state_dict().items() if "position_ids" not in k}

    lora = peft.LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.0, bias="none",
                           target_modules=["query", "key", "value", "dense"])
    model = peft.get_peft_model(model, lora)
    adapters = {}
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(uniform(generator, p.shape, -0.5, 0.5))
                short = name.removeprefix("base_model.model.").replace(".default.weight", "")
                adapters[short] = p
    model = model.double()
    model.eval()

    sequences = QUERIES + POSITIVES + NEGATIVES
    width = max(map(len, sequences))
    ids = torch.tensor([s + [0] * (width - len(s)) for s in sequences])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sequences])
    states = model(input_ids=ids, attention_mask=mask).last_hidden_state
    m = mask.unsqueeze(-1).double()
    pooled = (states * m).sum(1) / m.sum(1).clamp(min=1e-9)
    embeddings = torch.nn.functional.normalize(pooled, p=2, dim=1)
    n = len(QUERIES)
    logits = embeddings[:n] @ embeddings[n:].T / TEMPERATURE
    loss = torch.nn.functional.cross_entropy(logits, torch.arange(n))
    loss.backward()

    params = dict(model.named_parameters())
    tensors = dict(base)
    for short in adapters:
        full = [k for k in params if k.removeprefix("base_model.model.").replace(".default.weight", "") == short][0]
        tensors[short] = params[full].detach().float().contiguous()
        tensors["grad." + short] = params[full].grad.detach().double().contiguous()
    tensors["input_ids"] = ids.to(torch.int32)
    tensors["lengths"] = torch.tensor([len(s) for s in sequences], dtype=torch.int32)
    tensors["loss"] = loss.detach().double().reshape(1)
    metadata = {
        "config": json.dumps(CONFIG, sort_keys=True), "rank": str(RANK), "alpha": str(ALPHA),
        "queries": str(n), "temperature": str(TEMPERATURE), "pooling": "mean, normalized",
        "generator": f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}",
    }
    safetensors.torch.save_file(tensors, OUT, metadata=metadata)
    print(f"{OUT}: loss {loss.item():.12f}, {len(adapters)} adapter tensors, {os.path.getsize(OUT)} bytes")


if __name__ == "__main__":
    main()
