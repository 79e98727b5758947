#!/usr/bin/env python3
"""Centralised logistic regression (scikit-learn) on a fedrec CTR dataset's own examples
and hashed features: the peer of federated `lr` and `fm` in bench/ctr-vs-sklearn.

Reads the dataset directory fl-partition wrote (shards: KEY.json, KEY.train.npy,
KEY.test.npy, KEY.features.txt, KEY.imp.npy, KEY.testimp.npy; item_features.tsv) and
hashes every token as fedrec does (FNV-1a 32-bit of "u:" or "i:" + token, mod 2^bits),
independently of fedrec's code, so the two see the same examples and features.

    python3 sklearn_ctr.py DATASET_DIR --hash-bits 18 --click-threshold 4 [--user-id] [--C 1]
"""
import argparse
import io
import json
import sys
import tarfile
import time

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score


def fnv1a(text):
    h = 2166136261
    for byte in text.encode("utf-8"):
        h ^= byte
        h = (h * 16777619) & 0xFFFFFFFF
    return h


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset")
    parser.add_argument("--hash-bits", type=int, default=18)
    parser.add_argument("--click-threshold", type=float, default=4)
    parser.add_argument("--user-id", action="store_true")
    parser.add_argument("--C", type=float, nargs="+", default=[1.0])
    args = parser.parse_args()
    mask = (1 << args.hash_bits) - 1
    manifest = json.load(open(f"{args.dataset}/dataset.json"))
    item_tokens = []
    with open(f"{args.dataset}/{manifest['files']['item_features']}") as f:
        next(f)
        for line in f:
            index, _, features = line.rstrip("\n").partition("\t")
            assert int(index) == len(item_tokens)
            item_tokens.append(["iid=" + index] + [t for t in features.split("|") if t])
    item_buckets = [[fnv1a("i:" + t) & mask for t in tokens] for tokens in item_tokens]

    rows = {"train": [], "test": []}
    labels = {"train": [], "test": []}
    for shard in manifest["shards"]:
        with tarfile.open(f"{args.dataset}/{shard['file']}") as tar:
            members = {}
            for member in tar.getmembers():
                if member.isfile():
                    members[member.name] = tar.extractfile(member).read()
        keys = sorted({name.split(".")[0] for name in members if name != "__shard__.json"})
        for key in keys:
            meta = json.loads(members[key + ".json"])
            features = members.get(key + ".features.txt", b"").decode().split("\n")
            tokens = (["uid=" + meta["id"]] if args.user_id else []) + [t for t in features if t]
            user = [fnv1a("u:" + t) & mask for t in tokens]

            def add(split, items, ys):
                for item, y in zip(items, ys):
                    rows[split].append(user + item_buckets[int(item)])
                    labels[split].append(y)

            for split, events, shown in (("train", "train.npy", "imp.npy"), ("test", "test.npy", "testimp.npy")):
                if key + "." + events in members:
                    data = np.load(io.BytesIO(members[key + "." + events]))
                    add(split, data["item"], (data["rating"] >= args.click_threshold).astype(np.float64))
                if key + "." + shown in members:
                    items = np.load(io.BytesIO(members[key + "." + shown]))
                    add(split, items, np.zeros(len(items)))

    def matrix(split):
        indptr = np.cumsum([0] + [len(r) for r in rows[split]])
        indices = np.concatenate([np.asarray(r, dtype=np.int64) for r in rows[split]])
        # Duplicates (a bucket hit twice) are summed, as fedrec counts them.
        return sp.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(rows[split]), mask + 1))

    x_train, x_test = matrix("train"), matrix("test")
    y_train, y_test = np.asarray(labels["train"]), np.asarray(labels["test"])
    for c in args.C:
        started = time.time()
        model = LogisticRegression(C=c, max_iter=2000, solver="lbfgs")
        model.fit(x_train, y_train)
        p = model.predict_proba(x_test)[:, 1]
        result = {
            "peer": "sklearn LogisticRegression", "C": c, "train_examples": len(y_train), "examples": len(y_test),
            "auc": roc_auc_score(y_test, p), "log_loss": log_loss(y_test, p),
            "mean_predicted": float(p.mean()), "observed_rate": float(y_test.mean()),
            "calibration": float(p.mean() / y_test.mean()), "seconds": round(time.time() - started, 1),
        }
        print(json.dumps(result, sort_keys=True))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
