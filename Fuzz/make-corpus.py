#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora into Fuzz/corpus/<harness>/: small valid files and edge
cases of each format, all synthetic. Needs numpy. The fedrec shard and model seeds made by
the commands themselves are added by Fuzz/make-corpus-commands.

    python3 Fuzz/make-corpus.py
"""
import gzip, io, json, os, struct, tarfile
import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(harness, name, data):
    os.makedirs(os.path.join(ROOT, harness), exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(ROOT, harness, name), "wb") as f:
        f.write(data)


# XXH64 (xxhash spec), for fedrec checksums in the safetensors seeds.
P1, P2, P3, P4, P5 = 0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5
M = (1 << 64) - 1
rotl = lambda x, r: ((x << r) | (x >> (64 - r))) & M
def rnd(acc, lane): return (rotl((acc + lane * P2) & M, 31) * P1) & M
def merge(acc, v): return ((acc ^ rnd(0, v)) * P1 + P4) & M
def xxh64(b, seed=0):
    n, i = len(b), 0
    if n >= 32:
        v = [(seed + P1 + P2) & M, (seed + P2) & M, seed, (seed - P1) & M]
        while i + 32 <= n:
            for k in range(4):
                v[k] = rnd(v[k], struct.unpack_from("<Q", b, i + 8 * k)[0])
            i += 32
        h = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18)) & M
        for k in range(4):
            h = merge(h, v[k])
    else:
        h = (seed + P5) & M
    h = (h + n) & M
    while i + 8 <= n:
        h = (rotl(h ^ rnd(0, struct.unpack_from("<Q", b, i)[0]), 27) * P1 + P4) & M
        i += 8
    if i + 4 <= n:
        h = (rotl(h ^ (struct.unpack_from("<I", b, i)[0] * P1 & M), 23) * P2 + P3) & M
        i += 4
    while i < n:
        h = (rotl(h ^ (b[i] * P5 & M), 11) * P1) & M
        i += 1
    h ^= h >> 33; h = h * P2 & M; h ^= h >> 29; h = h * P3 & M; h ^= h >> 32
    return h


def safetensors(tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype, shape, bytes) in data order."""
    header, data = {}, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def fedrec_safetensors(tensors, metadata, chunked):
    metadata = dict(metadata, format="fedrec", format_version="2")
    if chunked:
        table = [xxh64(raw[i:i + 4096]) for _, _, _, raw in tensors for i in range(0, len(raw), 4096)]
        raw = struct.pack("<%dQ" % len(table), *table)
        metadata.update(checksum="xxh64-chunks:%016x" % xxh64(raw), checksum_chunk="4096")
        # The table sorts first (it is written first).
        tensors = [("checksum.chunks", "U64", [len(table)], raw)] + tensors
    else:
        digests = [xxh64(raw) for _, _, _, raw in tensors]
        metadata["checksum"] = "xxh64:%016x" % xxh64(struct.pack("<%dQ" % len(digests), *digests))
    return safetensors(tensors, metadata)


f32 = lambda *v: struct.pack("<%df" % len(v), *v)
model_meta = {"kind": "model", "model_type": "mf", "objective": "mse", "dim": "2", "items": "3",
              "dataset_id": "0123456789abcdef", "round": "1", "rating_min": "1", "rating_max": "5"}
model = [("global_bias", "F32", [], f32(3.5)), ("item_bias", "F32", [3], f32(0.1, -0.2, 0.3)),
         ("item_embedding", "F32", [3, 2], f32(0.1, 0.2, 0.3, 0.4, 0.5, 0.6))]
put("safetensors", "model-chunked.safetensors", fedrec_safetensors(model, model_meta, True))
put("safetensors", "model-xxh64.safetensors", fedrec_safetensors(model, model_meta, False))
put("safetensors", "update.safetensors", fedrec_safetensors(
    [("item_embedding", "F32", [2, 2], f32(1, 2, 3, 4)), ("rows", "I32", [2], struct.pack("<2i", 0, 2)),
     ("weights", "F64", [2], struct.pack("<2d", 1.5, -2.0))],
    {"kind": "update", "round": "3", "clients": "2"}, False))
put("safetensors", "dtypes.safetensors", safetensors(
    [("a", "F16", [2], struct.pack("<2H", 0x3C00, 0x7C00)), ("b", "BF16", [2], struct.pack("<2H", 0x3F80, 0x0001)),
     ("c", "I64", [2], struct.pack("<2q", 7, -1)), ("d", "U8", [3], b"\x01\x02\x03"), ("e", "BOOL", [1], b"\x01"),
     ("f", "I16", [1], b"\x01\x00"), ("g", "I8", [1], b"\xff"), ("h", "U64", [1], struct.pack("<Q", 9))],
    {"note": "every dtype"}))
put("safetensors", "empty-tensors.safetensors", safetensors([("z", "F32", [0, 4], b""), ("s", "F32", [], f32(1))]))
put("safetensors", "header-only.safetensors", safetensors([], {}))
put("safetensors", "unpadded.safetensors", safetensors([("x", "I32", [1], struct.pack("<i", 5))], None, pad=False))

# .npy: what numpy writes, in each format version fedrec reads.
def npy(array, version=None):
    out = io.BytesIO()
    if version is None:
        np.save(out, array)
    else:
        np.lib.format.write_array(out, array, version=version)
    return out.getvalue()
interactions = np.dtype([("item", "<i4"), ("rating", "<f4"), ("time", "<i8")])
put("npy", "int32.npy", npy(np.array([3, 1, 2], dtype="<i4")))
put("npy", "int64.npy", npy(np.array([5, -1], dtype="<i8")))
put("npy", "float32-2d.npy", npy(np.arange(6, dtype="<f4").reshape(2, 3)))
put("npy", "float64-0d.npy", npy(np.array(2.5, dtype="<f8")))
put("npy", "interactions.npy", npy(np.array([(1, 4.0, 100), (7, 2.5, 200)], dtype=interactions)))
put("npy", "empty.npy", npy(np.zeros(0, dtype=interactions)))
put("npy", "v2.npy", npy(np.array([1, 2], dtype="<i4"), version=(2, 0)))
put("npy", "v3.npy", npy(np.array([1.0], dtype="<f4"), version=(3, 0)))
put("npy", "fortran.npy", npy(np.asfortranarray(np.arange(4, dtype="<f4").reshape(2, 2))))
put("npy", "big-endian.npy", npy(np.array([1], dtype=">i4")))

# JSON: the documents fedrec reads, and the corners of the grammar.
put("json", "shard-header.json", '{"dataset_id":"abc","format":"fedrec","format_version":2,"kind":"shard","users":2}')
put("json", "user.json", '{"client":0,"id":"u7","user":3}')
put("json", "nested.json", ' [ {"a": [1, -0, 2.5e-3, 1E+10, true, false, null]}, [], {}, [[[]]] ] ')
put("json", "strings.json", r'["", "\"\\\/\b\f\n\r\t", "\u00e9\ud83d\ude00", "caf\u00c3\u00a9"]')
put("json", "numbers.json", "[0, -1, 123456789012345678, 1.7976931348623157e308, 5e-324, 0.1, -2.5E-7]")
put("json", "ledger-line.json", '{"delta":1e-05,"epsilon":0.8123,"round":12,"sigma":1.1,"sum":"9f2c"}')

# Ratings: each delimiter and each MovieLens layout, with and without a header.
put("ratings", "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n")
put("ratings", "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n2::1357::5::978298709\n")
put("ratings", "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.0,964981247\n2,6,4.5,964982224\n")
put("ratings", "pipe.txt", "user|item|rating\n1|10|5\n2|11|3.5\n")
put("ratings", "semicolon.csv", 'user_id;item_id;score;time\n"a;1";"b""2";1;1.5e9\n"c";d;2;3\n')
put("ratings", "implicit.csv", "customer_id,product_id\nc1,p1\nc2,p1\nc1,p2\n")
put("ratings", "named-columns.csv", "t,r,i,u\n10,5,x,y\n11,4,z,y\n")
put("ratings", "crlf-bom.csv", "\ufeffuserId,movieId,rating\r\n1,2,3\r\n\r\n  \r\n4,5,1\r\n")
put("ratings", "two-columns.tsv", "1\t2\n3\t4\n")
put("ratings", "quoted-comma.csv", 'userId,movieId,rating,timestamp\n"1,2",3,4,5\n2,"x""y",1,0\n')

# Raw tar streams (the fedrec shard seeds come from the commands): plain, gzip, odd entries.
tarfile.RECORDSIZE = 512  # no padding to 10 KiB: small seeds
def tar(members, fmt=tarfile.PAX_FORMAT):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            else:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return out.getvalue()
shard = [("__shard__.json", b'{"dataset_id":"d","format":"fedrec","format_version":2,"kind":"shard","users":1}'),
         ("u0000003.json", b'{"client":0,"id":"u3","user":3}'),
         ("u0000003.train.npy", npy(np.array([(1, 4.0, 100), (2, 3.0, 101)], dtype=interactions))),
         ("u0000003.test.npy", npy(np.array([(4, 5.0, 102)], dtype=interactions))),
         ("u0000003.neg.npy", npy(np.array([5, 6], dtype="<i4")))]
put("shard", "synthetic-shard.tar", tar(shard, tarfile.USTAR_FORMAT))
put("shard", "synthetic-shard.tar.gz", gzip.compress(tar(shard), mtime=0))
put("shard", "dir-and-pax.tar", tar([("d/", None), ("d/\u00e9t\u00e9.json", b"{}")]))
put("shard", "gnu.tar", tar([("a" * 120 + ".json", b"[]")], tarfile.GNU_FORMAT))

# Tables besides the ratings (fuzz-tables): feature tables, catalogues, item texts, query
# logs, items.tsv and a shard's query member; all made up here.
put("tables", "user-features.csv", "id,age,device,region\n1,55+,tablet,west\n2,18-24,mobile,\n3,25-34,desktop,east\n")
put("tables", "item-features.tsv", "id\tcategory\tgenres\nad1\tfood\tA|B\nad2\ttravel\t\n")
put("tables", "u.user", "1|24|M|technician|85711\n2|53|F|other|94043\n")
put("tables", "u.item", "1|Some Film (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
                        "2|Other Film (1996)|01-Jan-1996||http://y|0|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0\n")
put("tables", "movies.csv", 'movieId,title,genres\n10,"Space War, The (1999)",Drama|Sci-Fi\n20,Love (2001),(no genres listed)\n')
put("tables", "tags.csv", "userId,movieId,tag,timestamp\n1,10,space,1500000000\n2,10,Space,1500000001\n2,20,\"love, loss\",1500000002\n")
put("tables", "id-text.tsv", "10\ta film about space\n20\tlove\n")
put("tables", "items.tsv", "index\tid\ttitle\tgenres\n0\t10\tSpace War\tDrama\n1\t20\tLove\tComedy|Drama\n")
put("tables", "queries.jsonl", '{"item":1,"test":false,"text":"space","time":5}\n{"item":0,"test":true,"text":"love","time":9}\n')
put("tables", "tags.csv.gz", gzip.compress(b"userId,movieId,tag,timestamp\n1,10,space,1500000000\n", mtime=0))
