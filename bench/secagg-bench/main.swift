// Benchmark driver for bench/secagg-vs-flower and bench/RESULTS.md (not a command): one
// secure-aggregation round of n parties' vectors of m coordinates, simulated in one process
// on one thread with the library's protocol (the same code the fl-secagg steps run, without
// the files), every party's work and the server's timed apart.
//
//   secagg-bench --parties 1000 --length 100000 [--dropout-rate 0.1]
//       [--dropout-stage unmask|masked] [--bits 24] [--seed 1]
//
// Prints one JSON line: parties, length, dropout rate and stage, the chosen k (num_shares)
// and t (threshold), round_seconds (wall, all parties and the server), party_cpu_ms (the
// mean CPU of one party's four steps), server_seconds and unmask_seconds, the bytes one
// party uploads (keys, shares, masked vector, revealed shares) against a float32 vector,
// and max_abs_error of the unmasked sum against the plain float sum of the survivors.
// Randomness is the system CSPRNG (ChaCha20 keyed from it), as in a real round; the
// inputs come from --seed.
//
//   secagg-bench --parties 10000 --length 1000000 --sample 20
//
// With --sample S (dropouts after the masked upload only), every party advertises, shares,
// opens its neighbours' envelopes and reveals for real, but only S parties (drawn with
// --seed) mask their full vector with maskInput, timed as one party's CPU; the others mask a
// one-coordinate vector (their envelopes opened and pairwise secrets agreed as in a real
// round, the expansions not) and their full-length contribution to the masked sum is made
// by a faster path: x_u + PRG(b_u) + the pairwise masks shared with sampled neighbours, the
// pairwise masks between two unsampled parties left out since they cancel in the sum. The
// masked sum is therefore the one the full protocol gives, and the server's request and
// unmask (timed) are the real code; the unmasked words are checked exactly against the sum
// of the quantised inputs. party_cpu_ms is then the sampled parties' mean.
//
//   secagg-bench --prg-throughput [--bits 22] [--length 57190]
//
// Prints one JSON line instead: the keystream throughput (GB/s of one thread, 64 KiB calls)
// of swift-crypto's ChaCha20 and AES-256-CTR, which chose the mask PRG, and the rate of
// MaskExpansion.apply (coordinates a second) on a vector of --length words mod 2^--bits.
import Crypto
import FedRecSecureAggregation
import FedRecSupport
import FedRecTraining
import Foundation
import _CryptoExtras

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}
func threadCPU() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

var n = 100, m = 100_000, dropoutRate = 0.1, stage = "unmask", bits = 24, seed: UInt64 = 1, sample = 0
var arguments = CommandLine.arguments.dropFirst()
if arguments.first == "--prg-throughput" {
    arguments.removeFirst()
    m = 57_190
    bits = 22
}
let prgThroughput = CommandLine.arguments.dropFirst().first == "--prg-throughput"
while let flag = arguments.popFirst() {
    guard let value = arguments.popFirst() else { fatalError("\(flag) needs a value") }
    switch flag {
    case "--parties": n = Int(value)!
    case "--length": m = Int(value)!
    case "--dropout-rate": dropoutRate = Double(value)!
    case "--dropout-stage": stage = value
    case "--bits": bits = Int(value)!
    case "--seed": seed = UInt64(value)!
    case "--sample": sample = Int(value)!
    default: fatalError("unknown argument \(flag)")
    }
}

if prgThroughput {
    print(try prgThroughputReport(length: m, bits: bits))
    exit(0)
}

/// The `--prg-throughput` report: keystream of 1 GiB from each PRG, 64 KiB a call, then
/// 40 mask expansions of an m-word vector (one party's k + 1 at n ≈ 1,000; the fastest of 5),
/// one thread.
func prgThroughputReport(length m: Int, bits: Int) throws -> String {
    var system = SystemRandomNumberGenerator()
    let key = SymmetricKey(data: randomBytes(32, using: &system))
    let nonce = randomBytes(12, using: &system)
    let zeros = [UInt8](repeating: 0, count: 1 << 16)
    let calls = (1 << 30) / zeros.count
    var sink: UInt8 = 0
    var c0 = threadCPU()
    for call in 0..<calls {
        let keystream = try Insecure.ChaCha20CTR.encrypt(
            zeros, using: key, counter: .init(offset: UInt32(call * zeros.count / 64)), nonce: .init(data: nonce))
        sink ^= keystream[keystream.startIndex]
    }
    let chacha = threadCPU() - c0
    c0 = threadCPU()
    for call in 0..<calls {
        var block = nonce
        let counter = UInt32(call * zeros.count / 16)
        for shift in [24, 16, 8, 0] { block.append(UInt8(truncatingIfNeeded: counter >> UInt32(shift))) }
        let keystream = try AES._CTR.encrypt(zeros, using: key, nonce: .init(nonceBytes: block))
        sink ^= keystream[keystream.startIndex]
    }
    let aes = threadCPU() - c0
    let domain = MaskDomain(sessionID: nonce, round: 0, purpose: .pairwise)
    let masks = (0..<40).map { Mask(seed: randomBytes(32, using: &system), domain: domain, adding: $0 % 2 == 0) }
    var vector = [UInt32](repeating: 0, count: m)
    var expansion = Double.infinity
    for _ in 0..<5 {
        c0 = threadCPU()
        vector.withUnsafeMutableBufferPointer { MaskExpansion.apply(masks, modulusBits: bits, to: $0) }
        expansion = min(expansion, threadCPU() - c0)
    }
    let report: [String: Any] = [
        "chacha20_gb_per_s": Double(calls * zeros.count) / chacha / 1e9,
        "aes256ctr_gb_per_s": Double(calls * zeros.count) / aes / 1e9,
        "mask_expansion_coordinates_per_s": Double(masks.count * m) / expansion, "modulus_bits": bits, "length": m,
        "expansion_us_per_mask": expansion / Double(masks.count) * 1e6, "sink": Int(sink ^ UInt8(truncatingIfNeeded: vector[0])),
    ]
    return String(decoding: try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys]), as: UTF8.self)
}

if sample > 0 {
    print(try sampledRound(parties: n, length: m, sample: sample, dropoutRate: dropoutRate, bits: bits, seed: seed))
    exit(0)
}

/// The `--sample` round (see the header).
func sampledRound(parties n: Int, length m: Int, sample: Int, dropoutRate: Double, bits: Int, seed: UInt64) throws -> String {
    var system = SystemRandomNumberGenerator()
    let session = randomBytes(KeyAgreement.sessionIDByteCount, using: &system)
    let round: UInt64 = 0
    var picks = SeededGenerator(seed: seed)
    let order = (0..<n).shuffled(using: &picks)
    let sampled = Set(order.prefix(sample))
    let dropped = Set(order.dropFirst(sample).prefix(Int((Double(n) * dropoutRate).rounded())).map { UInt32($0) })
    let started = now()
    let setUp = try keysAndShares(parties: n, session: session, round: round, dropoutRate: dropoutRate, bits: bits)
    let (roster, bundles, deliveries) = (setUp.roster, setUp.bundles, setUp.deliveries)
    var (states, partyCPU, serverTime) = (setUp.states, setUp.partyCPU, setUp.serverTime)
    var s0 = now()
    let quantizer = try Quantizer(clipBound: 1, modulusBits: bits, maximumParties: n)
    let reduction: UInt32 = bits == 32 ? .max : (1 << UInt32(bits)) - 1
    var sum = [UInt32](repeating: 0, count: m)
    var plain = [UInt32](repeating: 0, count: m)
    let pairwise = MaskDomain(sessionID: session, round: round, purpose: .pairwise)
    let selfDomain = MaskDomain(sessionID: session, round: round, purpose: .selfMask)
    for party in 0..<n {
        var local = SeededGenerator(seed: seed, stream: UInt64(party))
        if sampled.contains(party) {
            let values = (0..<m).map { _ in Float(local.nextUnitDouble() * 2 - 1) }
            let c0 = threadCPU()
            var generator = freshGenerator()
            let words = try quantizer.quantize(values, using: &generator)
            let masked = try states[party].maskInput(words, roster: roster, delivery: deliveries[party])
            _ = BitPacking.pack(masked.values, bits: bits)
            partyCPU[party] += threadCPU() - c0
            for i in 0..<m {
                plain[i] = plain[i] &+ words[i]
                sum[i] = sum[i] &+ masked.values[i]
            }
        } else {
            let c0 = threadCPU()
            _ = try states[party].maskInput([0], roster: roster, delivery: deliveries[party])
            partyCPU[party] += threadCPU() - c0
            // The faster path: quantised-range inputs drawn directly, the self mask, and the
            // pairwise masks shared with sampled neighbours.
            let levels = UInt64(quantizer.levels)
            var input = [UInt32](repeating: 0, count: m)
            for i in 0..<m {
                input[i] = UInt32(truncatingIfNeeded: Int64(local.next() % (2 * levels + 1)) - Int64(levels)) & reduction
                plain[i] = plain[i] &+ input[i]
            }
            var masks = [Mask(seed: states[party].record.selfMaskSeed, domain: selfDomain, adding: true)]
            let key = try PartyKeyPair(rawPrivateKey: states[party].record.maskPrivateKey)
            for neighbour in roster.graph.neighbours(of: party) where sampled.contains(neighbour) {
                let secret = try KeyAgreement.agreedSecret(
                    privateKey: key.privateKey, publicKey: roster.parties[neighbour].maskKey, sessionID: session,
                    purpose: .pairwiseMask, parties: (party, neighbour))
                masks.append(Mask(seed: secret, domain: pairwise, adding: party < neighbour))
            }
            input.withUnsafeMutableBufferPointer { MaskExpansion.apply(masks, modulusBits: bits, to: $0) }
            for i in 0..<m { sum[i] = sum[i] &+ input[i] }
        }
    }
    for i in 0..<m {
        sum[i] &= reduction
        plain[i] &= reduction
    }
    let masked = try MaskedInput(sessionID: session, round: round, modulusBits: bits, parties: (0..<n).map { UInt32($0) }, values: sum)
    s0 = now()
    let request = try SecAggServer.unmaskRequest(roster: roster, sharers: bundles.map(\.sender), sum: masked)
    serverTime += now() - s0
    var responses = [UnmaskResponse]()
    for party in request.survivors where !dropped.contains(party) {
        let c0 = threadCPU()
        responses.append(try states[Int(party)].unmask(request, roster: roster))
        partyCPU[Int(party)] += threadCPU() - c0
    }
    let u0 = now()
    let words = try SecAggServer.unmask(roster: roster, request: request, sum: masked, responses: responses)
    let unmaskSeconds = now() - u0
    serverTime += unmaskSeconds
    let meanCPU = sampled.reduce(0.0) { $0 + partyCPU[$1] } / Double(sampled.count)
    let report: [String: Any] = [
        "framework": "fedrec", "parties": n, "length": m, "dropout_rate": dropoutRate, "dropout_stage": "unmask",
        "num_shares": roster.parameters.degree, "threshold": roster.parameters.threshold, "modulus_bits": bits,
        "sampled_parties": sampled.count, "party_cpu_ms": meanCPU * 1000,
        "party_cpu_ms_max": (sampled.map { partyCPU[$0] }.max() ?? 0) * 1000, "server_seconds": serverTime,
        "unmask_seconds": unmaskSeconds, "exact": words == plain, "bench_seconds": now() - started, "threads": 1,
    ]
    return String(decoding: try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys]), as: UTF8.self)
}

/// What a party's step draws from in a real round (`fl-secagg`): ChaCha20 keyed by the
/// system CSPRNG.
func freshGenerator() -> ChaCha20Generator { SecureParty.Randomness.system.generator(party: 0, step: 0) }

/// Steps 1–3 of a round for n parties in one process: every party advertises its keys, the
/// server makes the roster, every party shares, the server relays. Each party's CPU, the
/// bytes it uploads and the server's wall time are counted as they go.
func keysAndShares(parties n: Int, session: [UInt8], round: UInt64, dropoutRate: Double, bits: Int) throws -> (
    states: [SecAggParty], roster: SecAggRoster, bundles: [ShareBundle], deliveries: [ShareDelivery],
    partyCPU: [Double], upload: [Int], serverTime: Double
) {
    var partyCPU = [Double](repeating: 0, count: n)
    var upload = [Int](repeating: 0, count: n)
    var serverTime = 0.0
    var states = [SecAggParty]()
    var advertisements = [KeyAdvertisement]()
    for party in 0..<n {
        let c0 = threadCPU()
        var generator = freshGenerator()
        let (state, ad) = try SecAggParty.advertise(sessionID: session, round: round, party: UInt32(party), using: &generator)
        states.append(state)
        advertisements.append(ad)
        partyCPU[party] += threadCPU() - c0
        upload[party] += 4 + 64
    }
    var s0 = now()
    let roster = try SecAggServer.roster(
        sessionID: session, round: round, advertisements: advertisements, dropoutRate: dropoutRate, corruptFraction: 0.05,
        modulusBits: bits)
    serverTime += now() - s0
    var bundles = [ShareBundle]()
    for party in 0..<n {
        let c0 = threadCPU()
        var generator = freshGenerator()
        bundles.append(try states[party].shareKeys(roster: roster, using: &generator))
        partyCPU[party] += threadCPU() - c0
        upload[party] += bundles[party].envelopes.reduce(0) { $0 + 8 + $1.ciphertext.count }
    }
    s0 = now()
    let deliveries = try SecAggServer.deliveries(roster: roster, bundles: bundles)
    serverTime += now() - s0
    return (states, roster, bundles, deliveries, partyCPU, upload, serverTime)
}

var system = SystemRandomNumberGenerator()
let session = randomBytes(KeyAgreement.sessionIDByteCount, using: &system)
let round: UInt64 = 0
var inputs = SeededGenerator(seed: seed)
let dropped = Set((0..<n).shuffled(using: &inputs).prefix(Int((Double(n) * dropoutRate).rounded())).map { UInt32($0) })

let started = now()
// 1.–3. Keys, roster, shares.
let setUp = try keysAndShares(parties: n, session: session, round: round, dropoutRate: dropoutRate, bits: bits)
let (roster, bundles, deliveries) = (setUp.roster, setUp.bundles, setUp.deliveries)
var (states, partyCPU, upload, serverTime) = (setUp.states, setUp.partyCPU, setUp.upload, setUp.serverTime)
var s0 = now()
// 4. Masked inputs (those dropping at the masked stage send none).
let quantizer = try Quantizer(clipBound: 1, modulusBits: bits, maximumParties: n)
var plain = [Double](repeating: 0, count: m)
var sum: MaskedInput?
var sumSeconds = 0.0
for party in 0..<n {
    let id = UInt32(party)
    if stage == "masked" && dropped.contains(id) { continue }
    var values = [Float](repeating: 0, count: m)
    var local = SeededGenerator(seed: seed, stream: UInt64(party))
    for i in 0..<m { values[i] = Float(local.nextUnitDouble() * 2 - 1) }
    for i in 0..<m { plain[i] += Double(values[i]) }
    let c0 = threadCPU()
    var generator = freshGenerator()
    let words = try quantizer.quantize(values, using: &generator)
    let masked = try states[party].maskInput(words, roster: roster, delivery: deliveries[party])
    let packed = BitPacking.pack(masked.values, bits: bits)
    partyCPU[party] += threadCPU() - c0
    upload[party] += packed.count + 8
    let a0 = now()
    sum = try sum.map { try $0.adding(masked) } ?? masked
    sumSeconds += now() - a0
}
serverTime += sumSeconds
// 5. Request and reveals (those dropping at the unmask stage do not answer).
s0 = now()
let request = try SecAggServer.unmaskRequest(roster: roster, sharers: bundles.map(\.sender), sum: sum!)
serverTime += now() - s0
var responses = [UnmaskResponse]()
for party in request.survivors where !dropped.contains(party) {
    let c0 = threadCPU()
    let response = try states[Int(party)].unmask(request, roster: roster)
    responses.append(response)
    partyCPU[Int(party)] += threadCPU() - c0
    upload[Int(party)] += (response.selfMaskShares.count + response.maskKeyShares.count) * (4 + 1 + SecAggParty.shareByteCount)
}
let u0 = now()
let words = try SecAggServer.unmask(roster: roster, request: request, sum: sum!, responses: responses)
let unmaskSeconds = now() - u0
serverTime += unmaskSeconds
let roundSeconds = now() - started
let decoded = try quantizer.dequantizeSum(words, parties: request.survivors.count)
var worst = 0.0
if stage == "masked" {
    // plain holds only the senders' vectors already.
}
for i in 0..<m { worst = max(worst, abs(decoded[i] - plain[i])) }
// Only parties that did every step count for the per-party cost.
let full = (0..<n).filter { !dropped.contains(UInt32($0)) }
let meanCPU = full.reduce(0.0) { $0 + partyCPU[$1] } / Double(max(full.count, 1))
let meanUpload = Double(full.reduce(0) { $0 + upload[$1] }) / Double(max(full.count, 1))
let json: [String: Any] = [
    "framework": "fedrec", "parties": n, "length": m, "dropout_rate": dropoutRate, "dropout_stage": stage,
    "num_shares": roster.parameters.degree, "threshold": roster.parameters.threshold, "modulus_bits": bits,
    "round_seconds": roundSeconds, "party_cpu_ms": meanCPU * 1000, "party_cpu_ms_max": (partyCPU.max() ?? 0) * 1000,
    "server_seconds": serverTime, "unmask_seconds": unmaskSeconds, "upload_bytes_per_client": meanUpload,
    "upload_vs_float32": meanUpload / Double(4 * m), "max_abs_error": worst, "threads": 1,
]
let data = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
print(String(decoding: data, as: UTF8.self))
