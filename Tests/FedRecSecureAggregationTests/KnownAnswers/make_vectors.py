#!/usr/bin/env python3
"""Known-answer vectors for FedRecSecureAggregation's primitives, from an implementation
independent of ours: Python's `cryptography` package (OpenSSL) for AES-256-CTR, X25519, HKDF and
ChaCha20-Poly1305, hashlib for the mask nonce, and plain Python integers for GF(2^127 - 1) and
Shamir sharing (direct polynomial evaluation and Lagrange's formula, not our Horner/weights code).

Regenerate (from the repository root):
    pip install cryptography
    python3 Tests/FedRecSecureAggregationTests/KnownAnswers/make_vectors.py \
        > Tests/FedRecSecureAggregationTests/KnownAnswerVectors.swift

Every input is derived from fixed labels with SHA-256, so the output is the same on every run.
The layouts below restate the ones documented in the Swift sources (MaskDomain, KeyAgreement,
ShareEnvelope); a change there must be made here too, and the vectors regenerated.
"""
import hashlib
import struct

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

P = 2**127 - 1
PROTOCOL_VERSION = 2


def fixed_bytes(label, count):
    """`count` bytes from SHA-256 in counter mode over `label`: deterministic test inputs."""
    out = b""
    block = 0
    while len(out) < count:
        out += hashlib.sha256(label.encode() + struct.pack(">I", block)).digest()
        block += 1
    return out[:count]


def fixed_field_element(label):
    return int.from_bytes(fixed_bytes(label, 16), "big") % P


def hexs(data):
    return '"' + data.hex() + '"'


def u128(value):
    return "0x%032x" % value


def wrapped(items, per_line=8):
    """A Swift array literal, `per_line` items a line."""
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return "[\n        " + ",\n        ".join(lines) + ",\n    ]"


def u32s(values):
    return wrapped(["0x%08x" % v for v in values])


# ---- GF(2^127 - 1) ----------------------------------------------------------------------
field_pairs = [(0, 0), (1, P - 1), (P - 1, P - 1), (2**126, 2), (2**126 + 5, 2**126 + 7)]
field_pairs += [(fixed_field_element("field a %d" % i), fixed_field_element("field b %d" % i)) for i in range(6)]
field_rows = []
for a, b in field_pairs:
    inverse = pow(a, P - 2, P) if a != 0 else 0
    field_rows.append((a, b, (a + b) % P, (a - b) % P, (a * b) % P, inverse))

# ---- Shamir over GF(2^127 - 1) ------------------------------------------------------------
def chunks_of(secret):
    return [int.from_bytes(secret[i:i + 15], "big") for i in range(0, len(secret), 15)]


def evaluate(constant, coefficients, x):
    """f(x) = constant + sum_k coefficients[k-1] x^k, term by term."""
    return (constant + sum(c * pow(x, k + 1, P) for k, c in enumerate(coefficients))) % P


def lagrange_at_zero(points):
    total = 0
    for i, (xi, yi) in enumerate(points):
        num, den = 1, 1
        for j, (xj, _) in enumerate(points):
            if j != i:
                num = num * xj % P
                den = den * (xj - xi) % P
        total = (total + yi * num * pow(den, -1, P)) % P
    return total


def shamir_case(name, secret_length, threshold, shareholders, subset):
    secret = fixed_bytes("shamir secret " + name, secret_length)
    chunks = chunks_of(secret)
    coefficients = [[fixed_field_element("shamir %s chunk %d coefficient %d" % (name, c, k))
                     for k in range(1, threshold)] for c in range(len(chunks))]
    shares = [(x, [evaluate(chunks[c], coefficients[c], x) for c in range(len(chunks))]) for x in shareholders]
    # Reconstruction from `subset` (indices into shares) must give the chunks back.
    for c in range(len(chunks)):
        assert lagrange_at_zero([(shares[i][0], shares[i][1][c]) for i in subset]) == chunks[c]
    # One share fewer than the threshold interpolates something else (for these inputs).
    short = subset[:threshold - 1]
    below = [lagrange_at_zero([(shares[i][0], shares[i][1][c]) for i in short]) for c in range(len(chunks))]
    assert all(b != c for b, c in zip(below, chunks))
    wire = [struct.pack(">I", x) + b"".join(v.to_bytes(16, "big") for v in values) for x, values in shares]
    return secret, chunks, coefficients, shares, wire, short, below


shamir_cases = [
    ("seed", 32, 3, [1, 2, 5, 9, 200, 0xFFFFFFFF], [5, 3, 4]),
    ("odd", 40, 4, [3, 4, 10, 11, 12, 1000, 7], [6, 0, 5, 2]),
]

# ---- AES-256-CTR mask expansion -------------------------------------------------------------
def mask_nonce(session_id, round_number, purpose):
    data = b"fedrec-secagg-mask-nonce" + struct.pack(">I", len(session_id)) + session_id
    data += struct.pack(">Q", round_number) + bytes([purpose])
    return hashlib.sha256(data).digest()[:12]


def chacha20_keystream(key, nonce, byte_count, counter=0):
    # cryptography's ChaCha20 takes a 16-byte nonce: 4-byte little-endian block counter, then the
    # RFC 8439 96-bit nonce.
    encryptor = Cipher(algorithms.ChaCha20(key, struct.pack("<I", counter) + nonce), mode=None).encryptor()
    return encryptor.update(b"\x00" * byte_count)


def aes_ctr_keystream(key, nonce, byte_count):
    # The counter block: the 12-byte nonce, then a 32-bit big-endian block counter from 0
    # (cryptography's CTR increments the whole 128-bit block, the same below 2^32 blocks).
    encryptor = Cipher(algorithms.AES(key), modes.CTR(nonce + b"\x00" * 4)).encryptor()
    return encryptor.update(b"\x00" * byte_count)


def mask_coordinates(key, nonce, count, bits):
    """The mask's coordinates mod 2^bits as MaskExpansion documents them: w = ceil(bits / 8)
    keystream bytes each, little-endian; for w = 3 in groups of 16 coordinates from 48 bytes,
    coordinates 0-11 the low three bytes of the group's words W_0..W_11 and coordinate 12 + j
    the top bytes of W_j, W_4+j, W_8+j (low to high). Written from the description, bytes
    picked one by one, not from the Swift code's word arithmetic."""
    width = (bits + 7) // 8
    if width == 3:
        groups = (count + 15) // 16
        stream = aes_ctr_keystream(key, nonce, 48 * groups)
        values = []
        for g in range(groups):
            group = stream[48 * g:48 * g + 48]
            for lane in range(16):
                if lane < 12:
                    picked = group[4 * lane:4 * lane + 3]
                else:
                    j = lane - 12
                    picked = bytes([group[4 * j + 3], group[16 + 4 * j + 3], group[32 + 4 * j + 3]])
                values.append(int.from_bytes(picked, "little"))
        values = values[:count]
    else:
        stream = aes_ctr_keystream(key, nonce, width * count)
        values = [int.from_bytes(stream[width * i:width * i + width], "little") for i in range(count)]
    return [v % (1 << bits) for v in values]


SELF, PAIRWISE = 1, 2
mask_seed = fixed_bytes("mask seed", 32)
mask_session = fixed_bytes("mask session", 32)
mask_round = 7
mask_count = 16384 + 61          # crosses our 16384-coordinate call boundary; a partial last group
mask_nonce_pairwise = mask_nonce(mask_session, mask_round, PAIRWISE)
mask_nonce_self = mask_nonce(mask_session, 0, SELF)
head_range = range(0, 40)
boundary_range = range(16370, 16420)
tail_range = range(mask_count - 20, mask_count)


def pick(values, ranges):
    return [values[i] for r in ranges for i in r]


ranges = (head_range, boundary_range, tail_range)
indices = [i for r in ranges for i in r]
words = mask_coordinates(mask_seed, mask_nonce_pairwise, mask_count, 32)
mask_cases = []
for mask_bits in (8, 16, 17, 20, 24, 32):
    coordinates = mask_coordinates(mask_seed, mask_nonce_pairwise, mask_count, mask_bits)
    base = [(i * 2654435761) % (1 << mask_bits) for i in range(mask_count)]
    added = [(base[i] + coordinates[i]) % (1 << mask_bits) for i in range(mask_count)]
    subtracted = [(base[i] - coordinates[i]) % (1 << mask_bits) for i in range(mask_count)]
    mask_cases.append((mask_bits, pick(added, ranges), pick(subtracted, ranges)))

# NIST SP 800-38A F.5.5 (CTR-AES256.Encrypt) cross-check of the layout above: our literals in the
# tests come from the standard; confirm them here.
nist_key = bytes.fromhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
nist_counter = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
nist_plain = bytes.fromhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51")
nist_cipher = Cipher(algorithms.AES(nist_key), modes.CTR(nist_counter)).encryptor().update(nist_plain)
assert nist_cipher.hex() == "601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c5"

# ---- X25519 + HKDF-SHA256 ----------------------------------------------------------------------
def raw_public(private_key):
    return private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def derivation_info(purpose, i, j):
    return (b"fedrec-secagg/" + purpose.encode() + b"\x00" + struct.pack(">I", PROTOCOL_VERSION)
            + struct.pack(">II", min(i, j), max(i, j)))


alice_raw = fixed_bytes("x25519 alice", 32)
bob_raw = fixed_bytes("x25519 bob", 32)
alice = X25519PrivateKey.from_private_bytes(alice_raw)
bob = X25519PrivateKey.from_private_bytes(bob_raw)
shared = alice.exchange(X25519PublicKey.from_public_bytes(raw_public(bob)))
assert shared == bob.exchange(X25519PublicKey.from_public_bytes(raw_public(alice)))
ka_session = fixed_bytes("key agreement session", 32)
alice_index, bob_index = 7, 3
agreed = {}
for purpose in ("shareEncryption", "pairwiseMask"):
    info = derivation_info(purpose, alice_index, bob_index)
    agreed[purpose] = HKDF(algorithm=hashes.SHA256(), length=32, salt=ka_session, info=info).derive(shared)

# ---- ChaCha20-Poly1305 share envelope ----------------------------------------------------------------
env_key = fixed_bytes("envelope key", 32)
env_session = fixed_bytes("envelope session", 32)
env_round, env_sender, env_receiver = 11, 3, 7
env_nonce = fixed_bytes("envelope nonce", 12)
env_plaintext = fixed_bytes("envelope plaintext", 104)
env_ad = struct.pack(">I", PROTOCOL_VERSION) + env_session + struct.pack(">QII", env_round, env_sender, env_receiver)
env_combined = env_nonce + ChaCha20Poly1305(env_key).encrypt(env_nonce, env_plaintext, env_ad)

# ---- RFC 8439 cross-check: our literals in the tests come from the RFC; confirm them here ----
rfc_key = bytes(range(32))
assert chacha20_keystream(rfc_key, bytes.fromhex("000000090000004a00000000"), 64, counter=1).hex() == (
    "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
    "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e")

# ---- Output ----------------------------------------------------------------------------------------------
out = []
w = out.append
w("// Generated by KnownAnswers/make_vectors.py (Python `cryptography` %s, hashlib, integer" % __import__("cryptography").__version__)
w("// arithmetic): an implementation independent of ours. Do not edit; regenerate with")
w("//     python3 Tests/FedRecSecureAggregationTests/KnownAnswers/make_vectors.py \\")
w("//         > Tests/FedRecSecureAggregationTests/KnownAnswerVectors.swift")
w("")
w("/// Known answers for the primitives, computed outside Swift (see make_vectors.py).")
w("enum KnownAnswerVectors {")
w("    /// The bytes a lowercase hex literal below spells.")
w("    static func bytes(_ hex: String) -> [UInt8] {")
w("        let digits = Array(hex.utf8).map { $0 >= 97 ? $0 - 87 : $0 - 48 }")
w("        return stride(from: 0, to: digits.count - 1, by: 2).map { digits[$0] << 4 | digits[$0 + 1] }")
w("    }")
w("")
w("    /// (a, b, a + b, a - b, a * b, a^-1 (0 for a = 0)) in GF(2^127 - 1).")
w("    static let field: [(UInt128, UInt128, UInt128, UInt128, UInt128, UInt128)] = [")
for row in field_rows:
    w("        (" + ", ".join(u128(v) for v in row) + "),")
w("    ]")
w("")
w("    struct ShamirCase {")
w("        let secret: String")
w("        let threshold: Int")
w("        let chunks: [UInt128]")
w("        /// coefficients[c]: those of x^1...x^(t-1) for chunk c.")
w("        let coefficients: [[UInt128]]")
w("        let shareX: [UInt32]")
w("        let shareValues: [[UInt128]]")
w("        /// The shares' wire form (ShamirShare.bytes).")
w("        let shareBytes: [String]")
w("        /// Indices into the shares: `threshold` of them reconstruct the secret.")
w("        let reconstructingSubset: [Int]")
w("        /// The first threshold - 1 of that subset, and what Lagrange interpolation at 0 gives from them.")
w("        let shortSubset: [Int]")
w("        let shortInterpolation: [UInt128]")
w("    }")
w("    static let shamir: [ShamirCase] = [")
for name, length, threshold, holders, subset in shamir_cases:
    secret, chunks, coefficients, shares, wire, short, below = shamir_case(name, length, threshold, holders, subset)
    w("        ShamirCase(")
    w("            secret: %s, threshold: %d," % (hexs(secret), threshold))
    w("            chunks: [%s]," % ", ".join(u128(c) for c in chunks))
    w("            coefficients: [")
    for row in coefficients:
        w("                [%s]," % ", ".join(u128(c) for c in row))
    w("            ],")
    w("            shareX: [%s]," % ", ".join(str(x) for x, _ in shares))
    w("            shareValues: [")
    for _, values in shares:
        w("                [%s]," % ", ".join(u128(v) for v in values))
    w("            ],")
    w("            shareBytes: [")
    for item in wire:
        w("                %s," % hexs(item))
    w("            ],")
    w("            reconstructingSubset: %s, shortSubset: %s," % (subset, short))
    w("            shortInterpolation: [%s])," % ", ".join(u128(v) for v in below))
w("    ]")
w("")
w("    // AES-256-CTR mask: seed, session, round %d, pairwise; %d coordinates." % (mask_round, mask_count))
w("    static let maskSeed = %s" % hexs(mask_seed))
w("    static let maskSession = %s" % hexs(mask_session))
w("    static let maskRound: UInt64 = %d" % mask_round)
w("    static let maskCount = %d" % mask_count)
w("    /// MaskDomain(maskSession, maskRound, .pairwise).nonce and MaskDomain(maskSession, 0, .selfMask).nonce.")
w("    static let maskNoncePairwise = %s" % hexs(mask_nonce_pairwise))
w("    static let maskNonceSelf = %s" % hexs(mask_nonce_self))
w("    /// The coordinates the answers below are given at.")
w("    static let maskIndices: [Int] = %s" % wrapped([str(i) for i in indices], 10))
w("    /// Mask coordinates mod 2^32 (four keystream bytes each) at maskIndices.")
w("    static let maskWords: [UInt32] = %s" % u32s(pick(words, ranges)))
w("    /// For each modulus width b, with base[i] = i * 2654435761 mod 2^b: (base + mask) and")
w("    /// (base - mask) mod 2^b at maskIndices.")
w("    static let maskCases: [(bits: Int, added: [UInt32], subtracted: [UInt32])] = [")
for mask_bits, added, subtracted in mask_cases:
    w("        (")
    w("            %d," % mask_bits)
    w("            " + u32s(added).replace("\n    ", "\n            ") + ",")
    w("            " + u32s(subtracted).replace("\n    ", "\n            ") + "),")
w("    ]")
w("")
w("    // X25519 (party %d = alice, party %d = bob) + HKDF-SHA256." % (alice_index, bob_index))
w("    static let aliceIndex = %d" % alice_index)
w("    static let bobIndex = %d" % bob_index)
w("    static let alicePrivate = %s" % hexs(alice_raw))
w("    static let alicePublic = %s" % hexs(raw_public(alice)))
w("    static let bobPrivate = %s" % hexs(bob_raw))
w("    static let bobPublic = %s" % hexs(raw_public(bob)))
w("    static let keyAgreementSession = %s" % hexs(ka_session))
w("    static let infoShareEncryption = %s" % hexs(derivation_info("shareEncryption", alice_index, bob_index)))
w("    static let agreedShareEncryption = %s" % hexs(agreed["shareEncryption"]))
w("    static let agreedPairwiseMask = %s" % hexs(agreed["pairwiseMask"]))
w("")
w("    // ChaCha20-Poly1305 envelope from %d to %d in round %d." % (env_sender, env_receiver, env_round))
w("    static let envelopeKey = %s" % hexs(env_key))
w("    static let envelopeSession = %s" % hexs(env_session))
w("    static let envelopeRound: UInt64 = %d" % env_round)
w("    static let envelopeSender: UInt32 = %d" % env_sender)
w("    static let envelopeReceiver: UInt32 = %d" % env_receiver)
w("    static let envelopeNonce = %s" % hexs(env_nonce))
w("    static let envelopePlaintext = %s" % hexs(env_plaintext))
w("    static let envelopeAssociatedData = %s" % hexs(env_ad))
w("    /// nonce || ciphertext || tag.")
w("    static let envelopeCombined = %s" % hexs(env_combined))
w("}")
print("\n".join(out))
