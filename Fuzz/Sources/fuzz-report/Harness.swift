import FedRecCore
import FuzzSupport

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// libFuzzer harness for fl-report: a run directory whose files are the input, cut at each
/// line `%%` into `metrics.jsonl`, `rounds.jsonl`, `config`, `popularity.jsonl` and
/// `ledger.jsonl` (as many as there are parts; the ledger's hash chain made good, so its
/// values reach the accountant), read by `RunRecord` and rendered as the
/// text and the HTML report (its charts scale whatever numbers the lines hold), the run
/// beside itself as fl-report compares runs. A run a crash cut short, or edited by hand, may
/// be refused, never trap. The directory is removed before the next input. Any error must
/// be a `FedRecError`; a trap or sanitizer report is a bug.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzReport(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let parts = split(UnsafeBufferPointer(start: data, count: size))
    let names = ["metrics.jsonl", "rounds.jsonl", "config", "popularity.jsonl", "ledger.jsonl"]
    guard mkdir(directory, 0o700) == 0 else { return 0 }
    var written = [String]()
    defer {
        for path in written { unlink(path) }
        rmdir(directory)
    }
    for (part, name) in zip(parts, names) {
        let path = directory + "/" + name
        let bytes = name == "ledger.jsonl" ? rechained(part) : Array(part)
        guard bytes.withUnsafeBytes({ writeFile($0, to: path) }) else { return 0 }
        written.append(path)
    }
    attempt {
        let run = try RunRecord(directory: directory)
        _ = TextReport(runs: [run, run]).render()
        _ = HTMLReport(runs: [run, run], generator: "fuzz").render()
        _ = HTMLReport(runs: [run], generator: "fuzz").render()
    }
    return 0
}

/// A ledger's lines with their hash chain made good, as whoever edits a ledger can: each
/// line that is a JSON object gets `prev` = the SHA-256 of the line before (in canonical
/// form, as the ledger writes it), so the accountant's checks of the values are reached.
/// Other lines are kept as they are.
func rechained(_ part: ArraySlice<UInt8>) -> [UInt8] {
    var out = [UInt8]()
    var prev = sha256Hex([UInt8]())
    for line in part.split(separator: 0x0A, omittingEmptySubsequences: false).dropLast(part.last == 0x0A ? 1 : 0) {
        var bytes = Array(line)
        if case .object(var object)? = try? bytes.withUnsafeBytes({ try JSONValue.parse($0) }) {
            object["prev"] = .string(prev)
            bytes = Array(JSONValue.object(object).canonicalText.utf8)
        }
        prev = sha256Hex(bytes)
        out += bytes + [0x0A]
    }
    return out
}

/// The input's parts between lines `%%`.
func split(_ input: UnsafeBufferPointer<UInt8>) -> [ArraySlice<UInt8>] {
    let bytes = Array(input)
    let separator = Array("\n%%\n".utf8)
    var parts = [ArraySlice<UInt8>]()
    var start = 0, i = 0
    while i + separator.count <= bytes.count {
        if bytes[i..<(i + separator.count)].elementsEqual(separator) {
            parts.append(bytes[start..<(i + 1)])
            i += separator.count
            start = i
        } else {
            i += 1
        }
    }
    parts.append(bytes[start...])
    return parts
}

/// The harness's run directory: one per process.
let directory = scratchPath("report")
