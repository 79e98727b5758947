#!/usr/bin/env python3
"""Generates fedrec's synthetic sample data set (no real user's data).

A low-rank taste model: users and items get latent vectors in 8 dimensions around a
few genre clusters; a user sees items with probability rising with affinity and item
popularity (Zipf), and rates them 1-5 from the affinity plus noise. Timestamps grow per
user, so leave-last-out splits are meaningful. Deterministic for the seed.

    python3 generate.py            # writes ratings.csv and movies.csv here
"""
import csv
import math
import random

SEED = 20261122
USERS, ITEMS, DIM = 400, 500, 8
GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Documentary", "Animation"]
WORDS = ["Night", "River", "Last", "Golden", "Silent", "Broken", "Summer", "Iron", "Paper", "Hidden",
         "City", "Dream", "Storm", "Garden", "Shadow", "Winter", "Star", "Glass", "Wild", "Echo"]

rng = random.Random(SEED)


def gauss_vector(center, spread):
    return [c + rng.gauss(0, spread) for c in center]


centers = [[rng.gauss(0, 1) for _ in range(DIM)] for _ in GENRES]
items = []
for i in range(ITEMS):
    g = rng.randrange(len(GENRES))
    second = rng.randrange(len(GENRES)) if rng.random() < 0.4 else None
    vec = gauss_vector(centers[g], 0.6)
    popularity = 1.0 / (1 + i) ** 0.8  # Zipf-like, items shuffled below
    genres = [GENRES[g]] + ([GENRES[second]] if second is not None and second != g else [])
    title = f"{rng.choice(WORDS)} {rng.choice(WORDS)} ({rng.randrange(1950, 2024)})"
    items.append((vec, popularity, genres, title))
rng.shuffle(items)

rows = []
for u in range(USERS):
    taste = gauss_vector(centers[rng.randrange(len(GENRES))], 0.8)
    bias = rng.gauss(0, 0.4)
    count = max(5, int(rng.lognormvariate(3.3, 0.7)))
    count = min(count, 200)
    weights = []
    for vec, pop, _, _ in items:
        affinity = sum(a * b for a, b in zip(taste, vec)) / DIM
        weights.append(pop * math.exp(2.0 * affinity))
    chosen = set()
    while len(chosen) < count:
        chosen.add(rng.choices(range(ITEMS), weights=weights)[0])
    time = 1_600_000_000 + rng.randrange(0, 10_000_000)
    for i in sorted(chosen, key=lambda _: rng.random()):
        vec = items[i][0]
        affinity = sum(a * b for a, b in zip(taste, vec)) / DIM
        score = 3.4 + bias + 1.6 * affinity + rng.gauss(0, 0.7)
        rating = min(5, max(1, round(score)))
        time += rng.randrange(60, 400_000)
        rows.append((u + 1, i + 1, rating, time))

with open("ratings.csv", "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["userId", "movieId", "rating", "timestamp"])
    w.writerows(rows)
with open("movies.csv", "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["movieId", "title", "genres"])
    for i, (_, _, genres, title) in enumerate(items):
        w.writerow([i + 1, title, "|".join(genres)])
print(f"{len(rows)} ratings, {USERS} users, {ITEMS} items")
