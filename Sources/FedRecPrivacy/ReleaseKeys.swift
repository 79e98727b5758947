#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FedRecSupport

/// A release in flight: the secret key its noise is drawn from, recorded before its ledger
/// line, so that a rerun after a crash releases the very same noised output and charges
/// nothing more.
public struct PendingRelease: Sendable, Equatable {
    /// The round of the sum.
    public var round: Int
    /// The identity (`SafeTensorsFile.identity`) of the sum the release noises.
    public var sum: String
    /// 256 bits from the noise source; the release's noise is ChaCha20 keyed by them.
    public var key: [UInt8]
    /// SHA-256 hex of the ledger line that charges the release (its `prev` is fixed when
    /// the key is recorded, so the line is known before it is written).
    public var line: String

    public init(round: Int, sum: String, key: [UInt8], line: String) {
        self.round = round
        self.sum = sum
        self.key = key
        self.line = line
    }

    /// The canonical JSON line (without its newline).
    var text: String {
        let hex = key.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        return JSONValue.object([
            "key": .string(hex), "line": .string(line), "round": .number(Double(round)), "sum": .string(sum),
        ]).canonicalText
    }
}

/// The ledger's private side, `LEDGER.keys`: one line per release in flight, mode 600.
///
/// `CentralRelease` draws a release's 256-bit key from its noise source (the system CSPRNG),
/// appends `{key, line, round, sum}` here (`fsync`ed) before the ledger line, and removes it
/// (the file stays, empty) once the noised sum is in place. A rerun of the same round on the same sum whose line is
/// already in the ledger finds the key and replays the release: the same noise, the same
/// output, no second charge. Whoever holds a key and the released sum can subtract the noise,
/// so the file is as private as the un-noised sums: it is created mode 600 (and set to 600
/// when found wider), and holds keys only while a release is incomplete. Deleting it loses
/// nothing but idempotence (a rerun of an interrupted release is then charged again).
public enum ReleaseKeys {
    /// The keys file of a ledger.
    public static func path(ledger: String) -> String { ledger + ".keys" }

    /// The pending releases (none when the file does not exist).
    /// - Throws: `.corrupt` naming the line for a line that does not parse.
    public static func read(path: String) throws -> [PendingRelease] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return [] }
            throw FedRecError(.noInput, file: path, "cannot open release keys: \(systemError())")
        }
        defer { close(fd) }
        return try parse(readAllBytes(fd, fromStart: true, path: path, what: "release keys"), path: path)
    }

    /// Appends a pending release durably, creating the file mode 600.
    public static func record(_ release: PendingRelease, to path: String) throws {
        let created = access(path, F_OK) != 0
        let fd = try openPrivate(path)
        defer { close(fd) }
        guard flock(fd, LOCK_EX) == 0 else { throw FedRecError(.io, file: path, "cannot lock release keys: \(systemError())") }
        let existing = try readAllBytes(fd, fromStart: true, path: path, what: "release keys")
        if let last = existing.last, last != 0x0A {
            let end = existing.lastIndex(of: 0x0A).map { $0 + 1 } ?? 0
            guard ftruncate(fd, off_t(end)) == 0 else { throw FedRecError(.io, file: path, "cannot cut a torn record: \(systemError())") }
        }
        let bytes = Array((release.text + "\n").utf8)
        try writeAll(fd, bytes, path: path)
        guard fsync(fd) == 0 else { throw FedRecError(.io, file: path, "cannot sync release keys: \(systemError())") }
        if created { syncDirectory(containing: path) }
    }

    /// Forgets the keys of `round` on `sum` (the release is complete), rewriting the file in
    /// place under its lock, so a concurrent `record` is not lost (an empty file stays).
    public static func remove(round: Int, sum: String, from path: String) throws {
        guard access(path, F_OK) == 0 else { return }
        let fd = try openPrivate(path)
        defer { close(fd) }
        guard flock(fd, LOCK_EX) == 0 else { throw FedRecError(.io, file: path, "cannot lock release keys: \(systemError())") }
        let kept = try parse(readAllBytes(fd, fromStart: true, path: path, what: "release keys"), path: path).filter { !($0.round == round && $0.sum == sum) }
        guard ftruncate(fd, 0) == 0 else { throw FedRecError(.io, file: path, "cannot rewrite release keys: \(systemError())") }
        try writeAll(fd, Array(kept.map { $0.text + "\n" }.joined().utf8), path: path)
        guard fsync(fd) == 0 else { throw FedRecError(.io, file: path, "cannot sync release keys: \(systemError())") }
    }

    static func parse(_ bytes: [UInt8], path: String) throws -> [PendingRelease] {
        var releases: [PendingRelease] = []
        var lineNumber = 0
        for line in bytes.split(separator: 0x0A, omittingEmptySubsequences: false).dropLast() {
            lineNumber += 1
            func corrupt() -> FedRecError { FedRecError(.corrupt, file: path, "line \(lineNumber): not a release key record") }
            guard let value = try? Array(line).withUnsafeBytes({ try JSONValue.parse($0) }),
                let round = value["round"]?.intValue, round >= 0,
                let sum = value["sum"]?.stringValue, let lineHash = value["line"]?.stringValue,
                let hex = value["key"]?.stringValue, let key = decodeHex(hex), key.count == 32
            else { throw corrupt() }
            releases.append(PendingRelease(round: round, sum: sum, key: key, line: lineHash))
        }
        // A last record without its newline was cut off by a crash before its fsync, so its
        // release never got a ledger line: it is not returned (and `record` drops it).
        return releases
    }

    private static func decodeHex(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: c - 0x30
            case 0x61...0x66: c - 0x61 + 10
            default: nil
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var i = 0
        while i < digits.count {
            guard let high = value(digits[i]), let low = value(digits[i + 1]) else { return nil }
            bytes.append(high << 4 | low)
            i += 2
        }
        return bytes
    }

    private static func openPrivate(_ path: String) throws -> Int32 {
        let fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FedRecError(.cannotCreate, file: path, "cannot open release keys: \(systemError())") }
        guard fchmod(fd, 0o600) == 0 else {
            let reason = systemError()
            close(fd)
            throw FedRecError(.cannotCreate, file: path, "cannot make release keys private (mode 600): \(reason)")
        }
        return fd
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws {
        guard bytes.withUnsafeBytes({ writeAllBytes(fd, $0) }) else {
            throw FedRecError(.io, file: path, "cannot write release keys: \(systemError())")
        }
    }
}
