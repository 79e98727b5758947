import FedRecCore
import FuzzSupport

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// libFuzzer harness for the server's side of a secure round when one party is malicious:
/// a test-seeded four-party round, the fourth dropping after it shared (`Fuzz/fixtures/secagg-round`, written by
/// `Fuzz/make-corpus-files`; `FEDREC_FUZZ_ROUND` names another directory) with party 0's
/// file replaced by the input, rewritten with fresh checksums as such a party could, at each
/// step the server takes from the parties: its keys (roster), its shares (relay), its
/// masked update (fl-aggregate's masked sum, then the unmasking request and the unmasking)
/// and its revealed shares (unmasking). Each step runs on the round's real files otherwise,
/// so an input that leaves the protocol's messages consistent goes the whole way. The
/// server may refuse (any `FedRecError`) and may release a wrong sum (a malicious party can
/// always add garbage to the sum: SecAgg does not promise robustness), but a trap or
/// sanitizer report is a bug. Outputs go to files deleted before the next input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSecAggServer(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let party = scratch + "-party", out = scratch + "-out", sum = scratch + "-sum", request = scratch + "-request"
    defer { for path in [party, out, sum, request] { unlink(path) } }
    guard writeResealed(data, size, to: party) != nil, let session = try? SecAggSession(path: round("session")) else { return 0 }
    // Party 0's file replaced by the input; parties 1 and 2 survive, party 3 shared and dropped.
    let all = { (name: String) in [party, round("p1.\(name)"), round("p2.\(name)"), round("p3.\(name)")] }
    let survivors = { (name: String) in [party, round("p1.\(name)"), round("p2.\(name)")] }
    attempt {
        try SecureServer.roster(
            session: session, keys: all("keys"), dropoutRate: 0.1, corruptFraction: 0.05, modulusBits: 16, output: out)
    }
    attempt { try SecureServer.relay(session: session, roster: round("roster"), shares: all("shares"), output: out) }
    attempt {
        try MaskedUpdateFile.sum(paths: survivors("masked")).write(to: sum, kind: .maskedSum)
        _ = try SecureServer.request(session: session, roster: round("roster"), deliveries: round("deliveries"), sum: sum, output: request)
        _ = try SecureServer.unmask(
            session: session, roster: round("roster"), request: request, sum: sum, reveals: survivors("reveal").map { $0 == party ? round("p0.reveal") : $0 },
            output: out)
    }
    attempt {
        _ = try SecureServer.unmask(
            session: session, roster: round("roster"), request: round("request"), sum: round("masked-sum"), reveals: survivors("reveal"),
            output: out)
    }
    return 0
}

/// The fixture round's file `name`.
func round(_ name: String) -> String { directory + "/" + name }
let directory = getenv("FEDREC_FUZZ_ROUND").map { String(cString: $0) } ?? "Fuzz/fixtures/secagg-round"

/// The harness's files: one set per process.
let scratch = scratchPath("secagg")
