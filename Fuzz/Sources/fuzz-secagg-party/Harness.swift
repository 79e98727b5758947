import FedRecCore
import FuzzSupport

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// libFuzzer harness for a party's side of a secure round when the server is malicious
/// (outside the threat model fl-secagg promises privacy under, but a party must still
/// refuse, not crash): party 0 of the fixture round (`Fuzz/fixtures/secagg-round`,
/// `FEDREC_FUZZ_ROUND` for another) at each step that reads a server's file, with that
/// file replaced by the input, resealed: the roster when it shares its keys (its state as
/// after `keys`), the roster or the deliveries when it masks its update (its state as after
/// `share`), and the roster or the unmasking request when it reveals (its state as after
/// `mask`). The state is copied first, so every input starts from the same one. Any error
/// must be a `FedRecError`; a trap or sanitizer report is a bug.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSecAggParty(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let server = scratch + "-server", state = scratch + "-state", out = scratch + "-out"
    defer { for path in [server, state, out] { unlink(path) } }
    guard writeResealed(data, size, to: server) != nil, let session = try? SecAggSession(path: round("session")),
        let update = try? ModelUpdate.load(round("p0.update"))
    else { return 0 }
    /// Runs `step` on a fresh copy of party 0's state `name`.
    func from(_ name: String, _ step: () throws -> Void) {
        guard copy(round(name), to: state) else { return }
        attempt(step)
    }
    let randomness = SecureParty.Randomness.testSeed(1)
    from("p0.state-keys") {
        try SecureParty.shareKeys(session: session, state: state, roster: server, output: out, randomness: randomness)
    }
    for (roster, deliveries) in [(server, round("deliveries")), (round("roster"), server)] {
        from("p0.state-shared") {
            _ = try SecureParty.mask(
                update: update, session: session, state: state, roster: roster, deliveries: deliveries, clip: 8, output: out,
                randomness: randomness)
        }
    }
    for (roster, request) in [(server, round("request")), (round("roster"), server)] {
        from("p0.state-masked") {
            try SecureParty.reveal(session: session, state: state, roster: roster, request: request, output: out)
        }
    }
    return 0
}

/// The fixture round's file `name`.
func round(_ name: String) -> String { directory + "/" + name }
let directory = getenv("FEDREC_FUZZ_ROUND").map { String(cString: $0) } ?? "Fuzz/fixtures/secagg-round"

/// The harness's files: one set per process.
let scratch = scratchPath("party")

/// Copies `source` to `destination` (mode 600, as a state is); false when it cannot.
func copy(_ source: String, to destination: String) -> Bool {
    guard let file = try? MappedFile(path: source) else { return false }
    return withExtendedLifetime(file) { writeFile(file.bytes, to: destination) }
}
