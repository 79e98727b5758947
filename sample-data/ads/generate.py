#!/usr/bin/env python3
"""Generates fedrec's synthetic ad log for the CTR models (no real user's data).

Users have an age band, a device and a region; ads have an advertiser, a category and a
format. A user is shown 15-40 distinct ads over time (popular ads more often) and clicks
with probability sigmoid(base + user propensity + ad appeal + affinity(age band,
category) + format-by-device effect): a logistic model with pairwise interactions, which
a factorisation machine can fit and logistic regression only partly. Deterministic for
the seed.

    python3 generate.py     # writes impressions.csv, ads.csv and users.csv here

    fl-partition impressions.csv --rating-col clicked --item-col adId --no-items \\
        --item-features ads.csv --user-features users.csv \\
        --split time --test-ratio 0.2 -o ads-ctr
    fl-init --model fm --dataset ads-ctr --click-threshold 1 --dim 4 -o m0.safetensors
"""
import csv
import math
import random

SEED = 20261203
USERS, ADS = 200, 120
AGES = ["18-24", "25-34", "35-44", "45-54", "55+"]
DEVICES = ["mobile", "desktop", "tablet"]
REGIONS = ["north", "south", "east", "west"]
CATEGORIES = ["games", "travel", "finance", "fashion", "food", "tech"]
FORMATS = ["banner", "video", "native"]

rng = random.Random(SEED)
# Pairwise effects: (age band, category) and (format, device).
affinity = {(a, c): rng.gauss(0, 0.9) for a in AGES for c in CATEGORIES}
format_device = {(f, d): rng.gauss(0, 0.6) for f in FORMATS for d in DEVICES}

ads = []
for i in range(ADS):
    ads.append({
        "id": f"ad{i + 1:03d}", "advertiser": f"adv{rng.randrange(25):02d}",
        "category": rng.choice(CATEGORIES), "format": rng.choice(FORMATS),
        "appeal": rng.gauss(0, 0.5), "popularity": 1.0 / (1 + i) ** 0.7,
    })
users = []
for u in range(USERS):
    users.append({
        "id": str(u + 1), "age": rng.choice(AGES), "device": rng.choice(DEVICES), "region": rng.choice(REGIONS),
        "propensity": rng.gauss(0, 0.5),
    })

rows = []
for user in users:
    shown = set()
    count = rng.randrange(15, 41)
    while len(shown) < count:
        shown.add(rng.choices(range(ADS), weights=[a["popularity"] for a in ads])[0])
    time = 1_700_000_000 + rng.randrange(0, 5_000_000)
    for i in sorted(shown, key=lambda _: rng.random()):
        ad = ads[i]
        z = (-1.6 + user["propensity"] + ad["appeal"] + affinity[(user["age"], ad["category"])]
             + format_device[(ad["format"], user["device"])])
        clicked = 1 if rng.random() < 1 / (1 + math.exp(-z)) else 0
        time += rng.randrange(60, 200_000)
        rows.append((user["id"], ad["id"], clicked, time))

with open("impressions.csv", "w", newline="") as f:
    out = csv.writer(f)
    out.writerow(["userId", "adId", "clicked", "timestamp"])
    out.writerows(rows)
with open("ads.csv", "w", newline="") as f:
    out = csv.writer(f)
    out.writerow(["id", "advertiser", "category", "format"])
    for ad in ads:
        out.writerow([ad["id"], ad["advertiser"], ad["category"], ad["format"]])
with open("users.csv", "w", newline="") as f:
    out = csv.writer(f)
    out.writerow(["id", "age", "device", "region"])
    for user in users:
        out.writerow([user["id"], user["age"], user["device"], user["region"]])
print(f"{len(rows)} impressions, {sum(r[2] for r in rows)} clicks, {USERS} users, {ADS} ads")
