#!/usr/bin/env python3
"""The fine-tuning `fl-train-local` runs on a text-lora model, in PyTorch + PEFT, on the
same examples and in the same order, for bench/lora-vs-peft/run.

One client holding a dataset's whole query log (`fl-partition --queries … --clients 1`):
its training queries (test: false) in shard order, each paired with the text of the item
it led to ("Title — Genre, Genre", as fedrec composes it). Per epoch the examples are
shuffled and each batch gets its catalogue negatives with fedrec's own generator
(xoshiro256** seeded as fl-train-local seeds client 0 of round 0, Swift's Fisher–Yates
shuffle and Lemire's bounded draw), so both programs see the same batches in the same
order. The adapter is PEFT's LoRA, r and α as given, on query and value of every layer,
no dropout (fedrec trains without dropout), lora_A set to fedrec's seeded A and frozen
(FFA-LoRA: only lora_B trains), lora_B zero. Loss: the sampled softmax of each query
against the batch's positives and negatives, τ as given; torch.optim.AdamW with
fedrec's defaults (β 0.9/0.999, ε 1e-8, weight decay 0.01).

Queries and candidates (positives, then negatives) are two forward passes, each padded
to its own longest sequence (sentence-transformers' way; fedrec packs sequences without
padding in one pass). Mean pooling over the attention mask, then L2 normalisation, as
the model's modules.json says.

Prints one JSON line: examples, steps, mean loss of the first and last epoch, and its own
timing (load: imports, model, tokenizing; train: the steps only) and peak RSS.
"""
import argparse
import json
import os
import resource
import sys
import tarfile
import time

START = time.perf_counter()
# Offline and quiet: the model is a local directory.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
MASK = (1 << 64) - 1


class SeededGenerator:
    """fedrec's SeededGenerator: xoshiro256** seeded through splitmix64."""

    def __init__(self, seed, stream=None):
        if stream is not None:
            seed = ((seed ^ ((stream * 0xD1B54A32D192ED03) & MASK)) + 0x632BE59BD9B4E019) & MASK
        x = seed
        state = []
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & MASK
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
            state.append(z ^ (z >> 31))
        self.s = state

    def next(self):
        s0, s1, s2, s3 = self.s
        m = (s1 * 5) & MASK
        result = ((((m << 7) | (m >> 57)) & MASK) * 9) & MASK
        t = (s1 << 17) & MASK
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = ((s3 << 45) | (s3 >> 19)) & MASK
        self.s = [s0, s1, s2, s3]
        return result

    def next_unit_float(self):
        """Float(next() >> 40) · 2⁻²⁴, exact in float32."""
        return (self.next() >> 40) * 2.0**-24

    def next_index(self, bound):
        """Lemire's nearly divisionless draw in [0, bound), as Swift's next(upperBound:)."""
        m = self.next() * bound
        if (m & MASK) < bound:
            threshold = ((1 << 64) - bound) % bound
            while (m & MASK) < threshold:
                m = self.next() * bound
        return m >> 64

    def shuffle(self, values):
        """Swift's MutableCollection.shuffle(using:)."""
        amount = len(values)
        current = 0
        while amount > 1:
            j = self.next_index(amount)
            amount -= 1
            values[current], values[current + j] = values[current + j], values[current]
            current += 1


def compose_item_text(title, genres):
    """ItemText.compose: "Title — Genre, Genre", empty parts left out."""
    genre_list = [g.strip(" ") for g in genres.split("|")]
    parts = [title.strip(" "), ", ".join(g for g in genre_list if g), ""]
    return " — ".join(p for p in parts if p)


def read_items(path):
    texts = []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        assert header[:4] == ["index", "id", "title", "genres"], header
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            fields = line.split("\t")
            assert int(fields[0]) == len(texts)
            texts.append(compose_item_text(fields[2], fields[3]))
    return texts


def read_training_queries(shard):
    """(query text, item) of every training query, in shard order."""
    out = []
    with tarfile.open(shard) as tar:
        for member in tar:
            if not member.name.endswith(".queries.jsonl"):
                continue
            for line in tar.extractfile(member).read().decode("utf-8").splitlines():
                if line.strip():
                    q = json.loads(line)
                    if not q["test"]:
                        out.append((q["text"], q["item"]))
    return out


def fedrec_lora_a(rank, layers, hidden, seed):
    """LoRAAdapter's A for targets query and value: layer-major, each r × inputs row-major,
    uniform in ±1/√inputs in float32: (2u − 1)·bound."""
    import numpy as np

    generator = SeededGenerator(seed)
    bound = np.float32(1) / np.sqrt(np.float32(hidden))
    out = {}
    for layer in range(layers):
        for target in ("query", "value"):
            u = np.array([generator.next_unit_float() for _ in range(rank * hidden)], dtype=np.float32)
            out[(layer, target)] = ((np.float32(2) * u - np.float32(1)) * bound).reshape(rank, hidden)
    return out


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", required=True, help="fl-partition --clients 1 output with --queries")
    p.add_argument("--model-dir", required=True)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--negatives", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--temperature", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0, help="fl-train-local --seed")
    p.add_argument("--lora-seed", type=int, default=0, help="fl-init --seed (A's initialisation)")
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=float, default=16)
    p.add_argument("--max-length", type=int, default=256, help="sentence_bert_config.json max_seq_length")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--attention", default="sdpa", help="transformers attn_implementation (sdpa or eager)")
    args = p.parse_args()

    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    import torch

    torch.set_num_threads(args.threads)
    import numpy as np
    import torch.nn.functional as F
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    config = AutoConfig.from_pretrained(args.model_dir)
    config.hidden_dropout_prob = 0.0
    config.attention_probs_dropout_prob = 0.0
    base = AutoModel.from_pretrained(args.model_dir, config=config, attn_implementation=args.attention)
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    lora = LoraConfig(r=args.rank, lora_alpha=args.alpha, target_modules=["query", "value"], lora_dropout=0.0, bias="none")
    model = get_peft_model(base, lora)
    a = fedrec_lora_a(args.rank, config.num_hidden_layers, config.hidden_size, args.lora_seed)
    trained = []
    with torch.no_grad():
        for name, module in model.named_modules():
            if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
                layer = int(name.split(".layer.")[1].split(".")[0])
                target = name.rsplit(".", 1)[1]
                module.lora_A["default"].weight.copy_(torch.from_numpy(a[(layer, target)]))
                module.lora_A["default"].weight.requires_grad_(False)
                module.lora_B["default"].weight.zero_()
                trained.append(module.lora_B["default"].weight)
    assert len(trained) == 2 * config.num_hidden_layers, len(trained)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == sum(t.numel() for t in trained), trainable
    model.train()
    optimizer = torch.optim.AdamW(trained, lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=args.weight_decay)

    items = read_items(os.path.join(args.dataset, "items.tsv"))
    shard = os.path.join(args.dataset, "shards", "shard-00000.tar")
    examples = read_training_queries(shard)
    # Tokenize once, as fedrec does (the catalogue and the client's queries).
    catalogue = tokenizer(items, truncation=True, max_length=args.max_length)["input_ids"]
    query_ids = tokenizer([t for t, _ in examples], truncation=True, max_length=args.max_length)["input_ids"]
    pad = tokenizer.pad_token_id

    def batch_tensors(sequences):
        longest = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), longest), pad, dtype=torch.long)
        mask = torch.zeros((len(sequences), longest), dtype=torch.long)
        for i, s in enumerate(sequences):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        return ids, mask

    def embed(sequences):
        ids, mask = batch_tensors(sequences)
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, p=2, dim=1, eps=1e-12)

    load_seconds = time.perf_counter() - START
    load_rss = peak_rss_mb()

    generator = SeededGenerator(args.seed, stream=0)  # round 0, client 0
    order = list(range(len(examples)))
    steps = 0
    tokens = 0
    epoch_losses = []
    train_start = time.perf_counter()
    for _ in range(args.epochs):
        generator.shuffle(order)
        losses = []
        start = 0
        while start < len(order):
            batch = order[start : start + max(args.batch_size, 1)]
            start += len(batch)
            positives = {examples[i][1] for i in batch}
            negatives = []
            if args.negatives > 0 and len(catalogue) > len(positives):
                drawn = set()
                while len(drawn) < min(args.negatives, len(catalogue) - len(positives)):
                    item = generator.next_index(len(catalogue))
                    if item not in positives and item not in drawn:
                        drawn.add(item)
                        negatives.append(catalogue[item])
            queries = [query_ids[i] for i in batch]
            candidates = [catalogue[examples[i][1]] for i in batch] + negatives
            tokens += sum(map(len, queries)) + sum(map(len, candidates))
            q = embed(queries)
            c = embed(candidates)
            logits = q @ c.T / args.temperature
            loss = F.cross_entropy(logits, torch.arange(len(batch)))
            optimizer.zero_grad(set_to_none=False)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            steps += 1
        epoch_losses.append(sum(losses) / len(losses) if losses else float("nan"))
    train_seconds = time.perf_counter() - train_start
    nan = float("nan")
    print(json.dumps({
        "examples": len(examples) * args.epochs, "steps": steps, "tokens": tokens, "trained_values": trainable,
        "first_epoch_loss": epoch_losses[0] if epoch_losses else nan,
        "last_epoch_loss": epoch_losses[-1] if epoch_losses else nan,
        "load_seconds": round(load_seconds, 3), "train_seconds": round(train_seconds, 3),
        "load_peak_rss_mb": round(load_rss, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
        "threads": torch.get_num_threads(), "torch": torch.__version__,
    }, sort_keys=True))


if __name__ == "__main__":
    sys.exit(main())
