import Crypto
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FedRecMechanisms
import FedRecSupport
import FedRecWire

/// One noised release, as recorded in the privacy ledger.
public struct LedgerEntry: Sendable, Equatable {
    /// The only mechanism fedrec releases today: a Poisson-sampled sum of clipped client
    /// deltas plus Gaussian noise of standard deviation `noiseMultiplier · clip`.
    public static let subsampledGaussian = "subsampled_gaussian"
    /// The same with adaptive clipping (Andrew et al. 2021): the update sum noised with
    /// multiplier z_Δ and the centred clipped count with standard deviation σ_b, released
    /// together. By the paper's Theorem 1 the pair is one Gaussian mechanism of multiplier
    /// z = (z_Δ⁻² + (2σ_b)⁻²)^(-1/2), which is what `noiseMultiplier` records and the
    /// accountant charges; `updateNoiseMultiplier` and `countNoiseStddev` record the split.
    public static let adaptiveClipGaussian = "subsampled_gaussian_adaptive_clip"
    /// Private ALS (`PrivateALSRelease`, Chien et al. 2021): the round's summed ALS
    /// statistics of users with bounded contributions, plus Gaussian noise of standard
    /// deviation `noiseMultiplier · clip`, where `clip` records the sensitivity Δ.
    /// Accounted as a sampled Gaussian at `sampleRate` (1 without client sampling).
    public static let alsGaussian = DPMetadata.alsGaussianMechanism
    /// Distributed DP under secure aggregation (`DistributedGaussian`, Kairouz, Liu &
    /// Steinke 2021): each of `parties` parties added its own discrete Gaussian share of σ'
    /// grid units to its rotated, rounded vectors before masking; `clip` records c.
    /// `noise_multiplier` records √s·σ'/Δ₂ (for reading; the accountant uses the
    /// mechanism's own curve from the recorded parameters).
    public static let distributedGaussian = DPMetadata.distributedGaussianMechanism

    public var round: Int
    public var mechanism: String
    public var noiseMultiplier: Double
    public var sampleRate: Double
    public var clip: Double
    /// Clients whose updates were in the sum (for the record; the accountant uses q).
    public var clients: Int
    public var steps: Int
    /// False when the noise came from a test seed: such a release has no privacy at all.
    public var isPrivate: Bool
    /// Adaptive clipping only: z_Δ, the update sum's own noise multiplier.
    public var updateNoiseMultiplier: Double?
    /// Adaptive clipping only: σ_b, the noise standard deviation of the centred clipped count.
    public var countNoiseStddev: Double?
    /// Distributed DP only: the mechanism's parameters and the noise shares in the sum.
    public var distributed: DistributedGaussian?
    public var parties: Int?

    public init(
        round: Int, noiseMultiplier: Double, sampleRate: Double, clip: Double, clients: Int,
        steps: Int = 1, isPrivate: Bool, mechanism: String = LedgerEntry.subsampledGaussian,
        updateNoiseMultiplier: Double? = nil, countNoiseStddev: Double? = nil
    ) {
        self.round = round
        self.mechanism = mechanism
        self.noiseMultiplier = noiseMultiplier
        self.sampleRate = sampleRate
        self.clip = clip
        self.clients = clients
        self.steps = steps
        self.isPrivate = isPrivate
        self.updateNoiseMultiplier = updateNoiseMultiplier
        self.countNoiseStddev = countNoiseStddev
    }

    /// The keys an adaptive-clipping line has on top of the common ones.
    static let adaptiveKeys: Set<String> = ["count_noise_stddev", "update_noise_multiplier"]
    /// The keys a distributed-DP line has on top of the common ones.
    static let distributedKeys: Set<String> = ["beta", "dimension", "granularity", "local_sigma", "parties"]

    /// The line of a distributed-DP release: `parties` shares of `mechanism`'s noise.
    public init(round: Int, distributed mechanism: DistributedGaussian, parties: Int, clients: Int, isPrivate: Bool) {
        self.init(
            round: round, noiseMultiplier: mechanism.noiseMultiplier(parties: parties), sampleRate: 1, clip: mechanism.sensitivity, clients: clients,
            isPrivate: isPrivate, mechanism: LedgerEntry.distributedGaussian)
        self.distributed = mechanism
        self.parties = parties
    }

    /// The ledger line (without its newline) chained to the previous line's hash.
    func line(prev: String) -> String {
        var object: [String: JSONValue] = [
            "round": .number(Double(round)), "mechanism": .string(mechanism),
            "noise_multiplier": .number(noiseMultiplier), "sample_rate": .number(sampleRate),
            "clip": .number(clip), "clients": .number(Double(clients)), "steps": .number(Double(steps)),
            "private": .bool(isPrivate), "prev": .string(prev),
        ]
        if let updateNoiseMultiplier { object["update_noise_multiplier"] = .number(updateNoiseMultiplier) }
        if let countNoiseStddev { object["count_noise_stddev"] = .number(countNoiseStddev) }
        if let distributed, let parties {
            object["granularity"] = .number(distributed.granularity)
            object["beta"] = .number(distributed.beta)
            object["dimension"] = .number(Double(distributed.dimension))
            object["local_sigma"] = .number(distributed.localSigma)
            object["parties"] = .number(Double(parties))
        }
        return JSONValue.object(object).canonicalText
    }

    /// Checks that the values make sense for the accountant.
    func validate() throws {
        switch mechanism {
        case LedgerEntry.subsampledGaussian, LedgerEntry.alsGaussian:
            guard updateNoiseMultiplier == nil, countNoiseStddev == nil else {
                throw FedRecError(.badData, "update_noise_multiplier and count_noise_stddev belong to \(LedgerEntry.adaptiveClipGaussian) lines")
            }
            guard distributed == nil, parties == nil else {
                throw FedRecError(.badData, "distributed-DP parameters belong to \(LedgerEntry.distributedGaussian) lines")
            }
        case LedgerEntry.distributedGaussian:
            guard let distributed, let parties, parties >= 1, sampleRate == 1, distributed.sensitivity == clip else {
                throw FedRecError(.badData, "a distributed-DP release needs its parameters, parties >= 1, sample_rate 1 and clip = c")
            }
            let z = distributed.noiseMultiplier(parties: parties)
            guard abs(noiseMultiplier - z) <= 1e-9 * z else {
                throw FedRecError(.badData, "noise_multiplier \(noiseMultiplier) is not the recorded parameters' \(z)")
            }
        case LedgerEntry.adaptiveClipGaussian:
            // The charged z must be the pair's (Andrew et al. 2021, Thm. 1): a larger recorded
            // z would let the accountant under-count ε.
            guard let zDelta = updateNoiseMultiplier, let sigmaB = countNoiseStddev,
                zDelta > 0, zDelta.isFinite, sigmaB > 0, sigmaB.isFinite
            else { throw FedRecError(.badData, "an adaptive-clip release needs positive update_noise_multiplier and count_noise_stddev") }
            let pair = AdaptiveClipping.totalNoiseMultiplier(update: zDelta, countNoiseStddev: sigmaB)
            guard abs(noiseMultiplier - pair) <= 1e-9 * pair else {
                throw FedRecError(.badData, "noise_multiplier \(noiseMultiplier) is not the pair's (z_delta \(zDelta), count std \(sigmaB) give \(pair))")
            }
        default:
            throw FedRecError(.badData, "unknown mechanism \"\(mechanism)\"")
        }
        guard round >= 0, clients >= 0, steps >= 1 else {
            throw FedRecError(.badData, "round and clients must be >= 0 and steps >= 1")
        }
        guard noiseMultiplier >= 0, noiseMultiplier.isFinite, sampleRate >= 0, sampleRate <= 1,
            clip > 0, clip.isFinite
        else {
            throw FedRecError(.badData, "noise multiplier, sample rate or clip out of range")
        }
    }
}

/// A ledger's releases with the hash of its last line (the head of the chain).
public struct LedgerContents: Sendable, Equatable {
    public var entries: [LedgerEntry]
    /// SHA-256 hex of the last line's bytes, or of "" for an empty ledger.
    public var head: String
    /// SHA-256 hex of each line's bytes, in order (the last is `head`).
    public var lineHashes: [String] = []
}

/// The privacy ledger: JSON lines, append only, one line per noised release.
///
/// Each line is the canonical JSON (sorted keys, `JSONValue.canonicalText`) of
/// `{clients, clip, mechanism, noise_multiplier, prev, private, round, sample_rate, steps}`
/// (an adaptive-clipping release, mechanism `subsampled_gaussian_adaptive_clip`, adds
/// `count_noise_stddev` and `update_noise_multiplier`)
/// where `prev` is the SHA-256 hex of the previous line's exact bytes (without its newline),
/// or of the empty string for the first line. Reading verifies the chain, so a line that was
/// edited, removed, reordered or cut off is reported with its line number. The chain cannot
/// see a change to the *last* line on its own: keep `head` elsewhere (fl-dp-noise writes it
/// into the noised sum's metadata) and pass it as `expectedHead`.
///
/// Appending locks the file (`flock`), re-verifies it, writes the whole line with
/// `O_APPEND` and `fsync`s before returning, so a noised sum is released only after its
/// line is durable.
public enum PrivacyLedger {
    /// SHA-256 of the empty string: the `prev` of the first line.
    public static let genesis = sha256Hex([])

    /// Reads and verifies a ledger. A missing file is an error (`.noInput`); an empty one has
    /// no entries.
    /// - Parameter expectedHead: if given, the hash the last line must have.
    /// - Throws: `FedRecError(.corrupt)` naming the line for a broken chain, a truncated or
    ///   non-canonical line; `.badData` for values the accountant cannot use.
    public static func read(path: String, expectedHead: String? = nil) throws -> LedgerContents {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FedRecError(.noInput, file: path, "cannot open ledger: \(systemError())") }
        defer { close(fd) }
        let bytes = try readAllBytes(fd, fromStart: true, path: path, what: "ledger")
        let contents = try inFile(path) { try verify(bytes) }
        if let expectedHead, expectedHead != contents.head {
            throw FedRecError(.corrupt, file: path,
                "line \(contents.entries.count): last line does not have the expected hash \(expectedHead); the ledger was changed or cut")
        }
        return contents
    }

    /// Verifies ledger bytes: the hash chain, canonical form, a newline after every line.
    public static func verify(_ bytes: [UInt8]) throws -> LedgerContents {
        var entries: [LedgerEntry] = []
        var hashes: [String] = []
        var prev = genesis
        var start = 0
        var lineNumber = 0
        while start < bytes.count {
            lineNumber += 1
            guard let end = bytes[start...].firstIndex(of: 0x0A) else {
                throw FedRecError(.corrupt, "line \(lineNumber): truncated (no newline at the end of the ledger)")
            }
            let line = Array(bytes[start..<end])
            let entry = try parseLine(line, prev: prev, lineNumber: lineNumber)
            entries.append(entry)
            prev = sha256Hex(line)
            hashes.append(prev)
            start = end + 1
        }
        return LedgerContents(entries: entries, head: prev, lineHashes: hashes)
    }

    static func parseLine(_ line: [UInt8], prev: String, lineNumber n: Int) throws -> LedgerEntry {
        func corrupt(_ what: String) -> FedRecError { FedRecError(.corrupt, "line \(n): \(what)") }
        let value: JSONValue
        do {
            value = try line.withUnsafeBytes { try JSONValue.parse($0) }
        } catch {
            throw corrupt("not valid JSON (\(error))")
        }
        guard let object = value.objectValue else { throw corrupt("not a JSON object") }
        guard value.canonicalText.utf8.elementsEqual(line) else { throw corrupt("not in canonical form (edited?)") }
        let adaptive = object["mechanism"]?.stringValue == LedgerEntry.adaptiveClipGaussian
        let distributed = object["mechanism"]?.stringValue == LedgerEntry.distributedGaussian
        let common: Set<String> = [
            "clients", "clip", "mechanism", "noise_multiplier", "prev", "private", "round", "sample_rate", "steps",
        ]
        let keys = adaptive ? common.union(LedgerEntry.adaptiveKeys) : distributed ? common.union(LedgerEntry.distributedKeys) : common
        guard Set(object.keys) == keys else {
            throw corrupt("fields \(object.keys.sorted()) are not the ledger's \(keys.sorted())")
        }
        guard let linePrev = object["prev"]?.stringValue, linePrev == prev else {
            throw corrupt("prev hash does not match line \(n - 1 == 0 ? "0 (the empty string)" : String(n - 1)); a line was changed, removed or reordered")
        }
        guard let round = object["round"]?.intValue, let mechanism = object["mechanism"]?.stringValue,
            let z = object["noise_multiplier"]?.doubleValue, let q = object["sample_rate"]?.doubleValue,
            let clip = object["clip"]?.doubleValue, let clients = object["clients"]?.intValue,
            let steps = object["steps"]?.intValue, let isPrivate = object["private"]?.boolValue
        else { throw corrupt("a field has the wrong type") }
        var entry = LedgerEntry(
            round: round, noiseMultiplier: z, sampleRate: q, clip: clip, clients: clients, steps: steps,
            isPrivate: isPrivate, mechanism: mechanism)
        if adaptive {
            guard let zDelta = object["update_noise_multiplier"]?.doubleValue,
                let sigmaB = object["count_noise_stddev"]?.doubleValue
            else { throw corrupt("a field has the wrong type") }
            entry.updateNoiseMultiplier = zDelta
            entry.countNoiseStddev = sigmaB
        }
        if distributed {
            guard let g = object["granularity"]?.doubleValue, let beta = object["beta"]?.doubleValue,
                let d = object["dimension"]?.intValue, let sigma = object["local_sigma"]?.doubleValue,
                let parties = object["parties"]?.intValue
            else { throw corrupt("a field has the wrong type") }
            do {
                entry.distributed = try DistributedGaussian(sensitivity: clip, granularity: g, beta: beta, dimension: d, localSigma: sigma)
            } catch let error as FedRecError {
                throw FedRecError(.badData, "line \(n): \(error.message)")
            }
            entry.parties = parties
        }
        do { try entry.validate() } catch let error as FedRecError {
            throw FedRecError(error.failure, "line \(n): \(error.message)")
        }
        return entry
    }

    /// Appends one release durably and returns the new head hash.
    ///
    /// Creates the ledger if needed. Under an exclusive `flock` the existing lines are
    /// verified (a corrupt ledger is never extended), the line is written with `O_APPEND`,
    /// and the file is `fsync`ed (and its directory, when the file is new) before return.
    /// A failed write is cut back off so the ledger stays valid.
    /// - Parameter expectedHead: if given, the hash the current last line must have (the
    ///   head returned by the previous append), so that an edit of the last line is caught.
    /// - Returns: the new head: SHA-256 hex of the appended line.
    @discardableResult
    public static func append(_ entry: LedgerEntry, to path: String, expectedHead: String? = nil) throws -> String {
        do { try entry.validate() } catch let error as FedRecError { throw error.inFile(path) }
        let fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FedRecError(.cannotCreate, file: path, "cannot open ledger: \(systemError())") }
        defer { close(fd) }
        guard flock(fd, LOCK_EX) == 0 else { throw FedRecError(.io, file: path, "cannot lock ledger: \(systemError())") }
        let existing = try readAllBytes(fd, fromStart: true, path: path, what: "ledger")
        let contents = try inFile(path) { try verify(existing) }
        if let expectedHead, expectedHead != contents.head {
            throw FedRecError(.corrupt, file: path,
                "line \(contents.entries.count): last line does not have the expected hash \(expectedHead); the ledger was changed or cut")
        }
        let head = contents.head
        let line = Array((entry.line(prev: head) + "\n").utf8)
        guard line.withUnsafeBytes({ writeAllBytes(fd, $0) }) else {
            let reason = systemError()
            _ = ftruncate(fd, off_t(existing.count))
            throw FedRecError(.io, file: path, "cannot append to ledger: \(reason)")
        }
        guard fsync(fd) == 0 else {
            let reason = systemError()
            _ = ftruncate(fd, off_t(existing.count))
            throw FedRecError(.io, file: path, "cannot sync ledger: \(reason)")
        }
        if existing.isEmpty { syncDirectory(containing: path) }
        return sha256Hex(line.dropLast())
    }
}

