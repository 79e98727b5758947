import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecPrivacy
import FedRecSupport
import FedRecMechanisms

@Suite("Privacy ledger")
struct PrivacyLedgerTests {
    func entry(_ round: Int, q: Double = 0.01, z: Double = 1.1, isPrivate: Bool = true) -> LedgerEntry {
        LedgerEntry(round: round, noiseMultiplier: z, sampleRate: q, clip: 0.5, clients: 100 + round, isPrivate: isPrivate)
    }

    @Test("appended lines read back, chained by SHA-256 of the previous line")
    func roundTrip() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/ledger.jsonl"
        var heads: [String] = []
        for r in 0..<4 { heads.append(try PrivacyLedger.append(entry(r, isPrivate: r != 2), to: path)) }
        let contents = try PrivacyLedger.read(path: path, expectedHead: heads.last)
        #expect(contents.entries == (0..<4).map { entry($0, isPrivate: $0 != 2) })
        #expect(contents.head == heads.last)
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines.count == 4)
        #expect(lines[0] == #"{"clients":100,"clip":0.5,"mechanism":"subsampled_gaussian","noise_multiplier":1.1,"prev":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","private":true,"round":0,"sample_rate":0.01,"steps":1}"#)
        #expect(lines[2].contains(#""private":false"#))
        for i in 1..<4 { #expect(lines[i].contains(#""prev":"\#(sha256Hex(Array(lines[i - 1].utf8)))""#)) }
        #expect(PrivacyLedger.genesis == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test("one changed byte in any line is reported with that line's number", arguments: 0..<4)
    func tamper(line target: Int) throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/ledger.jsonl"
        var head = ""
        for r in 0..<4 { head = try PrivacyLedger.append(entry(r), to: path) }
        var bytes = try readBytes(path)
        // Change a digit of the noise multiplier: "1.1" → "1.2", still valid canonical JSON.
        let lineStarts = [0] + bytes.indices.filter { bytes[$0] == 0x0A }.map { $0 + 1 }
        let text = String(decoding: bytes[lineStarts[target]..<lineStarts[target + 1]], as: UTF8.self)
        let offset = try #require(text.range(of: "\"noise_multiplier\":1.1")).upperBound.utf16Offset(in: text) - 1
        bytes[lineStarts[target] + offset] = UInt8(ascii: "2")
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let error = try #require(throws: FedRecError.self) { try PrivacyLedger.read(path: path, expectedHead: head) }
        #expect(error.failure == .corrupt)
        #expect(error.file == path)
        // A change to line k breaks the prev of line k+1; the last line is caught by its head.
        let reported = target == 3 ? 4 : target + 2
        #expect(error.message.hasPrefix("line \(reported):"), "\(error)")
        // Without the head, an edit of the last line is invisible to the chain alone.
        if target == 3 { #expect(throws: Never.self) { try PrivacyLedger.read(path: path) } }
        // A corrupt ledger is never extended.
        #expect(throws: FedRecError.self) { try PrivacyLedger.append(entry(9), to: path, expectedHead: head) }
        if target < 3 { #expect(throws: FedRecError.self) { try PrivacyLedger.append(entry(9), to: path) } }
    }

    @Test("truncation, non-canonical text and bad values are corrupt, with the line number")
    func malformed() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/ledger.jsonl"
        try PrivacyLedger.append(entry(0), to: path)
        try PrivacyLedger.append(entry(1), to: path)
        let good = try readBytes(path)
        func expectError(_ bytes: [UInt8], _ failure: FailureClass, _ prefix: String) throws {
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let error = try #require(throws: FedRecError.self) { try PrivacyLedger.read(path: path) }
            #expect(error.failure == failure && error.message.hasPrefix(prefix), "\(error)")
        }
        try expectError(Array(good.dropLast(5)), .corrupt, "line 2: truncated")
        try expectError(Array(good.dropLast()), .corrupt, "line 2: truncated")
        let firstEnd = good.firstIndex(of: 0x0A)!
        try expectError([UInt8(ascii: " ")] + good, .corrupt, "line 1: not in canonical form")
        try expectError(Array(good[(firstEnd + 1)...]), .corrupt, "line 1: prev hash")  // first line removed
        try expectError(Array(good[(firstEnd + 1)...]) + Array(good[...firstEnd]), .corrupt, "line 1:")  // reordered
        // A valid chain with an unusable value.
        let bad = LedgerEntry(round: 0, noiseMultiplier: 1, sampleRate: 2, clip: 1, clients: 1, isPrivate: true)
        try expectError(Array((bad.line(prev: PrivacyLedger.genesis) + "\n").utf8), .badData, "line 1:")
        try Data().write(to: URL(fileURLWithPath: path))
        #expect(try PrivacyLedger.read(path: path) == LedgerContents(entries: [], head: PrivacyLedger.genesis))
        #expect(throws: FedRecError.self) { try PrivacyLedger.read(path: dir.path + "/missing") }
    }

    @Test("ε of a heterogeneous ledger is the sum of its curves")
    func accounting() throws {
        let accountant = RDPAccountant()
        let entries = (0..<30).map { entry($0) } + (30..<40).map { entry($0, q: 0.05, z: 2) }
        let expected = zip(
            try accountant.rdp(sampleRate: 0.01, noiseMultiplier: 1.1, steps: 30),
            try accountant.rdp(sampleRate: 0.05, noiseMultiplier: 2, steps: 10)
        ).map { $0 + $1 }
        #expect(try accountant.rdp(ledger: entries) == expected)
        let eps = try accountant.epsilon(ledger: entries, delta: 1e-5)
        #expect(eps.epsilon == (try accountant.epsilon(rdp: expected, delta: 1e-5)).epsilon)
        // A homogeneous ledger equals T steps.
        let same = try accountant.epsilon(ledger: (0..<30).map { entry($0) }, delta: 1e-5)
        #expect(abs(same.epsilon - (try accountant.epsilon(sampleRate: 0.01, noiseMultiplier: 1.1, steps: 30, delta: 1e-5)).epsilon) < 1e-12)
    }

    @Test("budget: the release that would overspend is refused; rounds left")
    func budget() throws {
        let budget = try PrivacyBudget(epsilon: 2, delta: 1e-5)
        var entries: [LedgerEntry] = []
        let left = try budget.remainingRounds(after: entries, sampleRate: 0.02, noiseMultiplier: 1)
        #expect(left > 10)
        for r in 0..<left {
            try budget.checkRelease(after: entries, sampleRate: 0.02, noiseMultiplier: 1)
            entries.append(entry(r, q: 0.02, z: 1))
            if r % 25 == 0 {
                #expect(try budget.remainingRounds(after: entries, sampleRate: 0.02, noiseMultiplier: 1) == left - r - 1)
            }
        }
        #expect(try budget.spent(entries) <= 2)
        #expect(try budget.remainingRounds(after: entries, sampleRate: 0.02, noiseMultiplier: 1) == 0)
        let error = try #require(throws: FedRecError.self) {
            try budget.checkRelease(after: entries, sampleRate: 0.02, noiseMultiplier: 1)
        }
        #expect(error.failure == .budgetExhausted)
        // More noise per round still fits a little.
        #expect(try budget.remainingRounds(after: entries, sampleRate: 0.02, noiseMultiplier: 20) > 0)
        #expect(throws: FedRecError.self) { try PrivacyBudget(epsilon: 0, delta: 1e-5) }
    }

    /// An adaptive-clipping release as `fl-dp-noise --adaptive-clip` records it.
    func adaptiveEntry(_ round: Int, q: Double = 0.01, z: Double = 1.1, sigmaB: Double = 5) throws -> LedgerEntry {
        let zDelta = try AdaptiveClipping.updateNoiseMultiplier(total: z, countNoiseStddev: sigmaB)
        return LedgerEntry(round: round, noiseMultiplier: z, sampleRate: q, clip: 0.5 + Double(round), clients: 100, isPrivate: true,
                           mechanism: LedgerEntry.adaptiveClipGaussian, updateNoiseMultiplier: zDelta, countNoiseStddev: sigmaB)
    }

    @Test("adaptive-clipping lines record z_Δ and σ_b, read back, and cost what fixed clipping at z costs")
    func adaptive() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/ledger.jsonl"
        let entries = try (0..<30).map { try adaptiveEntry($0) }
        for e in entries { try PrivacyLedger.append(e, to: path) }
        let contents = try PrivacyLedger.read(path: path)
        #expect(contents.entries == entries)
        let first = try #require(String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").first)
        #expect(first.hasPrefix(#"{"clients":100,"clip":0.5,"count_noise_stddev":5,"mechanism":"subsampled_gaussian_adaptive_clip","noise_multiplier":1.1,"#))
        #expect(first.contains(#""update_noise_multiplier":\#(entries[0].updateNoiseMultiplier!)"#))
        let accountant = RDPAccountant()
        let adaptive = try accountant.epsilon(ledger: contents.entries, delta: 1e-5).epsilon
        let fixed = try accountant.epsilon(sampleRate: 0.01, noiseMultiplier: 1.1, steps: 30, delta: 1e-5).epsilon
        #expect(abs(adaptive - fixed) <= 1e-12 * fixed)
        // Mixed with fixed-clip releases of the same (q, z): still T steps of z.
        let mixed = try accountant.epsilon(ledger: Array(contents.entries[0..<10]) + (10..<30).map { entry($0) }, delta: 1e-5).epsilon
        #expect(abs(mixed - fixed) <= 1e-12 * fixed)
    }

    @Test("an adaptive line whose z is not its pair's, or without its split, is refused")
    func adaptiveRefusals() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/ledger.jsonl"
        var overstated = try adaptiveEntry(0)
        overstated.noiseMultiplier = 1.2  // would under-count ε
        #expect(throws: FedRecError.self) { try PrivacyLedger.append(overstated, to: path) }
        var missing = try adaptiveEntry(0)
        missing.countNoiseStddev = nil
        #expect(throws: FedRecError.self) { try PrivacyLedger.append(missing, to: path) }
        var stray = entry(0)
        stray.countNoiseStddev = 5
        #expect(throws: FedRecError.self) { try PrivacyLedger.append(stray, to: path) }
        #expect(!FileManager.default.fileExists(atPath: path))  // refused before the file is opened
        // The same in a file: a valid chain, a bad value (badData) or missing keys (corrupt).
        func expectError(_ line: String, _ failure: FailureClass) throws {
            try Data((line + "\n").utf8).write(to: URL(fileURLWithPath: path))
            let error = try #require(throws: FedRecError.self) { try PrivacyLedger.read(path: path) }
            #expect(error.failure == failure && error.message.hasPrefix("line 1:"), "\(error)")
        }
        try expectError(overstated.line(prev: PrivacyLedger.genesis), .badData)
        try expectError(missing.line(prev: PrivacyLedger.genesis), .corrupt)
        try expectError(stray.line(prev: PrivacyLedger.genesis), .corrupt)
    }

    func distributedEntry(_ round: Int) throws -> LedgerEntry {
        let mechanism = try DistributedGaussian(sensitivity: 0.5, granularity: 0x1p-10, beta: DistributedGaussian.defaultBeta, dimension: 4096, localSigma: 300)
        return LedgerEntry(round: round, distributed: mechanism, parties: 12, clients: 3000, isPrivate: true)
    }

    @Test("a distributed-DP line keeps its parameters, is charged the mechanism's own curve, and an overstated z is refused")
    func distributed() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/ledger.jsonl"
        try PrivacyLedger.append(entry(0), to: path)
        try PrivacyLedger.append(try distributedEntry(1), to: path)
        let contents = try PrivacyLedger.read(path: path)
        #expect(contents.entries == [entry(0), try distributedEntry(1)])
        let line = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")[1]
        #expect(line.contains(#""local_sigma":300"#) && line.contains(#""parties":12"#) && line.contains(#""granularity":0.0009765625"#))
        // Heterogeneous composition: the Gaussian's curve plus the distributed one's.
        let accountant = RDPAccountant()
        let mechanism = try #require(contents.entries[1].distributed)
        let gaussian = try accountant.rdp(sampleRate: 0.01, noiseMultiplier: 1.1)
        let curve = zip(gaussian, mechanism.rdp(parties: 12, orders: accountant.orders)).map { $0 + $1 }
        let expected = try accountant.epsilon(rdp: curve, delta: 1e-5).epsilon
        #expect(try accountant.epsilon(ledger: contents.entries, delta: 1e-5).epsilon == expected)
        // z recorded as more than √s·σ'/Δ₂ would under-count ε: refused.
        var overstated = try distributedEntry(2)
        overstated.noiseMultiplier *= 1.1
        #expect(throws: FedRecError.self) { try PrivacyLedger.append(overstated, to: path) }
        var sampled = try distributedEntry(2)
        sampled.sampleRate = 0.5
        #expect(throws: FedRecError.self) { try PrivacyLedger.append(sampled, to: path) }
        #expect(try PrivacyLedger.read(path: path).entries.count == 2)
    }
}
