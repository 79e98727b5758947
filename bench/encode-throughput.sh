#!/bin/sh
# Encoding throughput: FedRecText (Swift, OpenBLAS) against sentence-transformers on
# PyTorch CPU, same texts, same model files, same machine, one run. Not run by tests.
#
#   bench/encode-throughput.sh            # from the repository root
#
# Texts: the 1682 MovieLens-100K titles as "Title — Genre, Genre" (as the fixture in
# ../shared/fixtures/minilm builds them). Needs `make model`; creates a Python venv in
# .build-bench/venv with sentence-transformers and torch from PyPI on first use.
# Environment: THREADS (default: all cores), BATCH (64), REPEAT (3), ITEMS (u.item path).
set -eu
cd "$(dirname "$0")/.."

MODEL=${MODEL:-models/all-MiniLM-L6-v2}
ITEMS=${ITEMS:-../shared/data/movielens/ml-100k/u.item}
THREADS=${THREADS:-$(nproc)}
BATCH=${BATCH:-64}
REPEAT=${REPEAT:-3}
OUT=.build-bench
VENV=$OUT/venv
SCRATCH=${SCRATCH:-.build}

[ -f "$MODEL/config.json" ] || { echo "no model in $MODEL; run make model" >&2; exit 66; }
[ -f "$ITEMS" ] || { echo "no $ITEMS" >&2; exit 66; }
mkdir -p "$OUT"

# Texts, UTF-8, one a line.
python3 - "$ITEMS" "$OUT/ml100k-texts.txt" <<'PY'
import sys
genres = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
          "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
          "Thriller", "War", "Western"]
out = []
with open(sys.argv[1], encoding="latin-1") as f:
    for line in f:
        fields = line.rstrip("\n").split("|")
        if len(fields) < 24:
            continue
        names = [g for g, flag in zip(genres, fields[5:24]) if flag == "1"]
        out.append(fields[1] + (" — " + ", ".join(names) if names else ""))
with open(sys.argv[2], "w", encoding="utf-8") as f:
    f.write("\n".join(out) + "\n")
print(f"{len(out)} texts", file=sys.stderr)
PY

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import sentence_transformers, torch" 2>/dev/null; then
    echo "creating $VENV (sentence-transformers, torch from PyPI)" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q sentence-transformers torch
fi

swift build --scratch-path "$SCRATCH" -c release --product encode-bench >&2
BIN=$(swift build --scratch-path "$SCRATCH" -c release --show-bin-path)/encode-bench

rss() { sed -n 's/.*Maximum resident set size (kbytes): //p' "$1"; }

# Swift first, then PyTorch, one after the other so neither competes for cores.
/usr/bin/time -v -o "$OUT/swift.time" "$BIN" "$MODEL" "$OUT/ml100k-texts.txt" \
    --batch "$BATCH" --threads "$THREADS" --repeat "$REPEAT" --output "$OUT/swift.f32" > "$OUT/swift.json"
/usr/bin/time -v -o "$OUT/torch.time" "$VENV/bin/python" - "$MODEL" "$OUT/ml100k-texts.txt" "$BATCH" "$THREADS" "$REPEAT" \
    "$OUT/torch.f32" > "$OUT/torch.json" <<'PY'
import json, sys, time
import torch
from sentence_transformers import SentenceTransformer
model_dir, texts_path, batch, threads, repeat, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
torch.set_num_threads(threads)
texts = [t for t in open(texts_path, encoding="utf-8").read().split("\n") if t]
t0 = time.perf_counter()
model = SentenceTransformer(model_dir, device="cpu")
load = time.perf_counter() - t0
model.encode(texts[:batch], batch_size=batch)
best = float("inf")
with torch.inference_mode():
    for _ in range(max(repeat, 1)):
        t0 = time.perf_counter()
        vectors = model.encode(texts, batch_size=batch, convert_to_numpy=True)
        best = min(best, time.perf_counter() - t0)
vectors.astype("<f4").tofile(out)
print(json.dumps({"implementation": "sentence-transformers", "torch": torch.__version__, "texts": len(texts),
                  "batch": batch, "torch_threads": torch.get_num_threads(), "seconds": best,
                  "texts_per_second": len(texts) / best, "load_seconds": load}, sort_keys=True))
PY

"$VENV/bin/python" - "$OUT" "$(rss "$OUT/swift.time")" "$(rss "$OUT/torch.time")" <<'PY'
import json, sys
import numpy as np
out, swift_rss, torch_rss = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = json.load(open(f"{out}/swift.json")); t = json.load(open(f"{out}/torch.json"))
a = np.fromfile(f"{out}/swift.f32", dtype="<f4").reshape(s["texts"], -1)
b = np.fromfile(f"{out}/torch.f32", dtype="<f4").reshape(t["texts"], -1)
cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
print(f"texts: {s['texts']} ({s['tokens']} tokens), batch {s['batch']}, threads {s['blas_threads']}")
print(f"{'':24}{'texts/s':>10}{'seconds':>10}{'load s':>9}{'peak RSS MiB':>14}")
print(f"{'fedrec (Swift, OpenBLAS)':24}{s['texts_per_second']:10.0f}{s['seconds']:10.3f}{s['load_seconds']:9.2f}{swift_rss/1024:14.0f}")
print(f"{'sentence-transformers':24}{t['texts_per_second']:10.0f}{t['seconds']:10.3f}{t['load_seconds']:9.2f}{torch_rss/1024:14.0f}")
print(f"speed-up {s['texts_per_second']/t['texts_per_second']:.2f}x; torch {t['torch']}; lowest cosine Swift vs torch {cos.min():.7f}")
PY
