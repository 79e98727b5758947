#!/usr/bin/env python3
"""Known answers for the seeded stream, the neighbour graph's permutation, the hypergeometric
distribution and the SecAgg+ parameter rule, from implementations independent of ours:
Python's `cryptography` package (OpenSSL) for the ChaCha20 keystream, plain Python integers
for Lemire's bounded integers and Fisher-Yates, scipy.stats.hypergeom (Boost) for the
distribution, its probabilities emitted from exact rational arithmetic (which scipy matches), and a re-implementation of the
parameter rule on top of scipy and exact logarithms (not lgamma) for the disconnection bound.

Regenerate (from the repository root):
    pip install cryptography scipy
    python3 Tests/FedRecSecureAggregationTests/KnownAnswers/make_stream_vectors.py \
        > Tests/FedRecSecureAggregationTests/StreamKnownAnswers.swift

The output is the same on every run. The layouts and rules below restate the ones documented
in SeededStream.swift, NeighbourGraph.swift and SecAggParameters.swift; a change there must be
made here too, and the vectors regenerated.
"""
import hashlib
import math
import struct
import sys
from fractions import Fraction

import cryptography
import numpy as np
import scipy
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from scipy.stats import hypergeom

MASK64 = (1 << 64) - 1


def fixed_bytes(label, count):
    """`count` bytes from SHA-256 in counter mode over `label`, as make_vectors.py derives its
    inputs (each script runs on its own)."""
    out = b""
    block = 0
    while len(out) < count:
        out += hashlib.sha256(label.encode() + struct.pack(">I", block)).digest()
        block += 1
    return out[:count]




# --- The stream: ChaCha20 keystream, nonce from SHA-256, 8-byte little-endian words. ---------

def stream_nonce(label):
    return hashlib.sha256(("fedrec-secagg-stream/" + label).encode()).digest()[:12]


def keystream(seed, label, byte_count):
    # cryptography's ChaCha20 nonce is 16 bytes: the 32-bit little-endian block counter, then
    # the 96-bit RFC 8439 nonce.
    full_nonce = struct.pack("<I", 0) + stream_nonce(label)
    encryptor = Cipher(algorithms.ChaCha20(seed, full_nonce), mode=None).encryptor()
    return encryptor.update(bytes(byte_count))


class Words:
    def __init__(self, seed, label, word_count):
        data = keystream(seed, label, 8 * word_count)
        self.words = [int.from_bytes(data[8 * i:8 * i + 8], "little") for i in range(word_count)]
        self.used = 0

    def next(self):
        word = self.words[self.used]
        self.used += 1
        return word


def next_index(words, bound, rejections):
    """Lemire (2019): high word of x * bound, redrawing x while the low word < 2^64 mod bound."""
    product = words.next() * bound
    if (product & MASK64) < bound:
        threshold = (1 << 64) % bound
        while (product & MASK64) < threshold:
            rejections[0] += 1
            product = words.next() * bound
    return product >> 64


def ring_permutation(seed, n):
    words = Words(seed, "neighbour-graph", 4 * n + 64)
    ring = list(range(n))
    rejections = [0]
    for i in range(n - 1, 0, -1):
        j = next_index(words, i + 1, rejections)
        ring[i], ring[j] = ring[j], ring[i]
    return ring


# --- The hypergeometric distribution. -------------------------------------------------------

def exact_pmf(N, K, n, x):
    if x < max(0, n - (N - K)) or x > min(n, K):
        return Fraction(0)
    return Fraction(math.comb(K, x) * math.comb(N - K, n - x), math.comb(N, n))


def close(a, b, rel=1e-9):
    return abs(a - b) <= rel * max(abs(a), abs(b)) + 1e-300


def smallest(xs, holds):
    for x in xs:
        if holds(x):
            return x
    raise AssertionError("no value holds")


# --- The parameter rule, restated (see SecAggParameters.swift). -----------------------------

SLACK = 1e-14


def log_disconnection_bound(n, k, bad):
    """log(n(n-k-1)/2 * bad!/(bad-k)! * (n-k)!/n!), summed as a product of ratios (no lgamma)."""
    if k > bad:
        return -math.inf
    total = math.log(n) + math.log(n - k - 1) - math.log(2)
    for i in range(k):
        total += math.log(bad - i) - math.log(n - i)
    return total


def choose(n, delta, gamma):
    """(degree, threshold), or None where the Swift code throws. Unlike Google's finder, which
    accepts k when t2 > t1 and raises t to 2 afterwards, the raised t itself must be <= t2; the
    cases where the two differ are reported on stderr."""
    if not (2 <= n <= 1_000_000 and 0 <= delta < 1 and 0 <= gamma < 1 and gamma + delta <= 0.9):
        return None
    corrupt = math.floor(n * (gamma + SLACK))
    dropped = math.floor(n * (delta + SLACK))
    survivors = math.ceil(n * (1 - delta - SLACK))
    q1 = 2.0 ** -41 / n
    q2 = 2.0 ** -20 / n
    for k in range(2, n - 1, 2):
        if log_disconnection_bound(n, k, corrupt + dropped) >= -41 * math.log(2):
            continue
        xs = np.arange(0, k + 1)
        a_sf = hypergeom(n, corrupt, k).sf(xs)
        s_cdf = hypergeom(n, survivors, k).cdf(xs)
        t1 = smallest(range(k + 1), lambda x: a_sf[x] <= q1)
        t2 = smallest(range(k + 1), lambda x: s_cdf[x] >= q2)
        threshold = max(t1 + 1, 2)
        if (t2 > t1) != (threshold <= t2):
            print(f"note: n={n} delta={delta} gamma={gamma} k={k}: Google's finder would accept "
                  f"t={threshold} with t2={t2}", file=sys.stderr)
        if threshold <= t2:
            return (k, threshold)
    threshold = max(corrupt + 1, 2)
    if threshold > survivors - 1 and corrupt == 0:
        threshold = 1  # n = 2: the one other party holds the one share
    if threshold <= survivors - 1:
        return (n - 1, threshold)
    return None


def swift_double(value):
    return repr(float(value))


def main():
    out = []
    emit = out.append
    emit("// Generated by KnownAnswers/make_stream_vectors.py (Python `cryptography` %s, scipy %s,"
         % (cryptography.__version__, scipy.__version__))
    emit("// integer and rational arithmetic): implementations independent of ours. Do not edit;")
    emit("// regenerate with")
    emit("//     python3 Tests/FedRecSecureAggregationTests/KnownAnswers/make_stream_vectors.py \\")
    emit("//         > Tests/FedRecSecureAggregationTests/StreamKnownAnswers.swift")
    emit("")
    emit("/// Known answers for the stream, the graph's permutation, the hypergeometric distribution")
    emit("/// and the parameter rule, computed outside Swift (see make_stream_vectors.py).")
    emit("enum StreamKnownAnswers {")

    # The stream.
    seed = fixed_bytes("stream seed", 32)
    label = "known-answer"
    word_count = 1100  # crosses two 4 KiB refills (512 words each)
    words = Words(seed, label, word_count).words
    emit('    static let streamSeed = "%s"' % seed.hex())
    emit('    static let streamLabel = "%s"' % label)
    emit('    static let streamNonce = "%s"' % stream_nonce(label).hex())
    emit("    /// Words 0..<%d of the stream, next() by next()." % word_count)
    emit("    static let streamWordCount = %d" % word_count)
    picked = list(range(0, 8)) + list(range(508, 516)) + list(range(1020, 1028)) + [word_count - 1]
    emit("    static let streamWordIndices: [Int] = [%s]" % ", ".join(str(i) for i in picked))
    emit("    static let streamWords: [UInt64] = [")
    for i in picked:
        emit("        0x%016x," % words[i])
    emit("    ]")

    # Bounded integers.
    bounds = [1, 2, 3, 7, 10, 1000, (1 << 32) + 15, (1 << 62) + 1, 3 << 61, (1 << 63) - 1] * 6
    index_words = Words(seed, "indices", 4 * len(bounds))
    rejections = [0]
    indices = [next_index(index_words, b, rejections) for b in bounds]
    assert rejections[0] > 0, "the vectors should exercise a rejection"
    emit("    /// nextIndex(below: bounds[i]) in turn, on the stream of the seed under \"indices\"")
    emit("    /// (%d of the draws were rejected and redrawn)." % rejections[0])
    emit("    static let indexBounds: [Int] = [%s]" % ", ".join(str(b) for b in bounds))
    emit("    static let indices: [Int] = [")
    for i in range(0, len(indices), 6):
        emit("        " + ", ".join(str(v) for v in indices[i:i + 6]) + ",")
    emit("    ]")

    # The neighbour graph's permutation.
    graph_seed = fixed_bytes("graph seed", 32)
    emit('    static let graphSeed = "%s"' % graph_seed.hex())
    for n in (10, 1000):
        ring = ring_permutation(graph_seed, n)
        emit("    /// The ring (party at each position) of %d parties under graphSeed." % n)
        emit("    static let ring%d: [Int] = [" % n)
        for i in range(0, n, 20):
            emit("        " + ", ".join(str(v) for v in ring[i:i + 20]) + ",")
        emit("    ]")

    # The hypergeometric distribution.
    cases = [(20, 7, 12), (50, 25, 50), (10, 0, 5), (10, 10, 5), (1000, 50, 30),
             (1000, 700, 40), (100000, 5000, 60), (100000, 70000, 60), (1000000, 200000, 120)]
    probabilities = [2.0 ** -41 / 100000, 1e-15, 1e-6, 0.01, 0.3, 0.5, 0.7, 0.99]
    emit("    struct HypergeometricCase {")
    emit("        let population: Int, successes: Int, draws: Int")
    emit("        /// (x, P(X = x), P(X <= x), P(X > x)), exact (rational arithmetic) and as scipy.stats.hypergeom.")
    emit("        let points: [(Int, Double, Double, Double)]")
    emit("        /// (p, smallest x with P(X <= x) >= p, smallest x with P(X > x) <= p).")
    emit("        let quantiles: [(Double, Int, Int)]")
    emit("    }")
    emit("    static let hypergeometric: [HypergeometricCase] = [")
    for (N, K, n) in cases:
        dist = hypergeom(N, K, n)
        xs = sorted(set(list(range(0, min(n, 12) + 1)) + list(range(max(0, n - 6), n + 1)) + [n // 2, n // 3]))
        emit("        HypergeometricCase(")
        emit("            population: %d, successes: %d, draws: %d," % (N, K, n))
        emit("            points: [")
        exact_cdf = {}
        running = Fraction(0)
        for x in range(0, n + 1):
            running += exact_pmf(N, K, n, x)
            exact_cdf[x] = running
        assert running == 1
        for x in xs:
            # Exact rational arithmetic, rounded once; scipy (Boost) agrees to 1e-9.
            pmf, cdf, sf = float(exact_pmf(N, K, n, x)), float(exact_cdf[x]), float(1 - exact_cdf[x])
            assert close(pmf, dist.pmf(x), 1e-9), (N, K, n, x)
            assert close(cdf, dist.cdf(x), 1e-9), (N, K, n, x)
            assert close(sf, dist.sf(x), 1e-9), (N, K, n, x)
            emit("                (%d, %s, %s, %s)," % (x, swift_double(pmf), swift_double(cdf), swift_double(sf)))
        emit("            ],")
        emit("            quantiles: [")
        for p in probabilities:
            cdfs, sfs = dist.cdf(np.arange(n + 1)), dist.sf(np.arange(n + 1))
            lower = smallest(range(n + 1), lambda x: cdfs[x] >= p)
            upper = smallest(range(n + 1), lambda x: sfs[x] <= p)
            # The same from exact arithmetic, and from scipy's own ppf; and no case on a knife's
            # edge, where rounding may rightly tip either way.
            assert lower == smallest(range(n + 1), lambda x: exact_cdf[x] >= Fraction(p))
            assert upper == smallest(range(n + 1), lambda x: 1 - exact_cdf[x] <= Fraction(p))
            assert lower == int(dist.ppf(p)), (N, K, n, p)
            for value in (cdfs[lower], sfs[upper]):
                assert value == 0 or value == 1 or not close(value, p, 1e-6)
            emit("                (%s, %d, %d)," % (swift_double(p), lower, upper))
        emit("            ]),")
    emit("    ]")

    # The parameter rule.
    counts = [2, 3, 5, 10, 50, 100, 500, 943, 1000, 10000, 100000]
    rates = [0.0, 0.1, 0.3]
    fractions = [0.0, 0.05, 0.2]
    emit("    /// (n, δ, γ, degree, threshold), degree and threshold 0 where no parameters exist;")
    emit("    /// from a re-implementation of the rule on scipy.stats.hypergeom.")
    emit("    static let parameters: [(Int, Double, Double, Int, Int)] = [")
    for n in counts:
        for delta in rates:
            for gamma in fractions:
                chosen = choose(n, delta, gamma)
                k, t = chosen if chosen else (0, 0)
                emit("        (%d, %s, %s, %d, %d)," % (n, swift_double(delta), swift_double(gamma), k, t))
    emit("    ]")
    emit("}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
