#!/usr/bin/env python3
"""Synthetic data for the catalogue-scaling benchmark: the same interactions (USERS users
× PER_USER events on items drawn from the first 5,000 ids with a Zipf-like law) with an
item file listing CATALOGUE items, so only the catalogue's size changes.

    catalogue.py OUTDIR CATALOGUE
"""
import os
import random
import sys

out, catalogue = sys.argv[1], int(sys.argv[2])
USERS, PER_USER, ACTIVE = 943, 85, 5000
rng = random.Random(7)
weights = [1.0 / (1 + i) ** 0.7 for i in range(ACTIVE)]
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "ratings.csv"), "w") as f:
    f.write("userId,movieId,rating,timestamp\n")
    for u in range(USERS):
        items = set()
        while len(items) < PER_USER:
            items.add(rng.choices(range(ACTIVE), weights=weights)[0])
        for t, i in enumerate(sorted(items)):
            f.write(f"{u + 1},{i + 1},{rng.randint(1, 5)},{1000 + t}\n")
with open(os.path.join(out, "items.csv"), "w") as f:
    f.write("movieId,title,genres\n")
    for i in range(catalogue):
        f.write(f"{i + 1},Item {i + 1},Drama\n")
