#!/usr/bin/env python3
"""Synthetic explicit ratings for the population-scaling benchmark (bench/million-clients).

    bench/million.py --users 1000000 --items 100000 --per-user 20 -o ratings.csv [--seed 0]

Writes a MovieLens-style ratings.csv (userId,movieId,rating,timestamp) with exactly
--per-user distinct items a user. Items are drawn by a Zipf-like popularity (weight
1/(rank+10)^0.8, so the catalogue has a long tail, as real ones do); ratings are
1…5 from a planted rank-8 model, r = clip(round(3.5 + p_u·v_i + ε), 1, 5) with
ε ~ N(0, 0.5²). Users are drawn in blocks of 10,000, each from its own PCG64 stream
seeded from (seed, block), so the first N users of a larger population are the
population of N. Timestamps are 1…per-user in a random order.
"""
import argparse
import sys

import numpy as np

BLOCK = 10_000


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, required=True)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--per-user", type=int, default=20)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--output", required=True)
    a = ap.parse_args()
    if a.per_user > a.items:
        sys.exit("million.py: --per-user exceeds --items")
    rng = np.random.default_rng([a.seed, 0xC0FFEE])
    v = rng.normal(0, 1 / np.sqrt(a.rank), size=(a.items, a.rank))
    weights = 1.0 / (np.arange(a.items) + 10.0) ** 0.8
    cdf = np.cumsum(weights / weights.sum())
    with open(a.output, "w") as out:
        out.write("userId,movieId,rating,timestamp\n")
        for block in range(0, (a.users + BLOCK - 1) // BLOCK):
            first = block * BLOCK
            count = min(BLOCK, a.users - first)
            r = np.random.default_rng([a.seed, block])
            p = r.normal(0, 1, size=(count, a.rank))
            # Draw a few more than needed and keep the first per-user distinct ones.
            rows = []
            extra = a.per_user * 2
            draws = np.searchsorted(cdf, r.random((count, extra)))
            for u in range(count):
                _, first_seen = np.unique(draws[u], return_index=True)
                items = draws[u][np.sort(first_seen)][: a.per_user]
                while len(items) < a.per_user:
                    more = np.searchsorted(cdf, r.random(extra))
                    merged = np.concatenate([items, more])
                    _, first_seen = np.unique(merged, return_index=True)
                    items = merged[np.sort(first_seen)][: a.per_user]
                rows.append(items)
            items = np.minimum(np.stack(rows), a.items - 1)
            scores = 3.5 + np.einsum("ur,uir->ui", p, v[items]) + r.normal(0, 0.5, size=items.shape)
            ratings = np.clip(np.rint(scores), 1, 5).astype(np.int64)
            times = np.argsort(r.random(items.shape), axis=1) + 1
            users = np.repeat(np.arange(first + 1, first + count + 1), a.per_user)
            table = np.stack([users, items.ravel() + 1, ratings.ravel(), times.ravel()], axis=1)
            out.write("\n".join(",".join(map(str, row)) for row in table.tolist()))
            out.write("\n")


if __name__ == "__main__":
    main()
