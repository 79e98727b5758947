// encode-bench: times FedRecText's sentence encoder on a file of texts, one per line.
// Run by bench/encode-throughput.sh; not a fedrec command.
//
//   encode-bench MODEL_DIR TEXTS_FILE [--batch N] [--threads N] [--repeat N] [--output FILE.f32]
//
// Prints one JSON line: texts, tokens, seconds (best of --repeat), texts_per_second,
// load_seconds. --output writes the vectors as raw little-endian float32.
import FedRecCore
import FedRecText
import Foundation
import FedRecSupport

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

func option(_ name: String, _ args: inout [String]) -> String? {
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    defer { args.removeSubrange(i...(i + 1)) }
    return args[i + 1]
}
var args = Array(CommandLine.arguments.dropFirst())
let batch = Int(option("--batch", &args) ?? "") ?? 64
let threads = Int(option("--threads", &args) ?? "")
let repeats = Int(option("--repeat", &args) ?? "") ?? 3
let output = option("--output", &args)
guard args.count == 2 else {
    FileHandle.standardError.write("usage: encode-bench MODEL_DIR TEXTS_FILE [--batch N] [--threads N] [--repeat N] [--output FILE]\n".data(using: .utf8)!)
    exit(64)
}
do {
    if let threads { SentenceEncoder.setBLASThreads(threads) }
    let file = try MappedFile(path: args[1])
    let texts = String(decoding: file.bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        .map(String.init).filter { !$0.isEmpty }
    var encoder: SentenceEncoder!
    let load = try seconds { encoder = try SentenceEncoder(directory: args[0]) }
    if let threads { encoder.encoder.threads = threads }
    _ = try encoder.encode(Array(texts.prefix(batch)), batchSize: batch)  // warm-up
    var vectors = [Float]()
    var best = Double.infinity
    for _ in 0..<max(repeats, 1) {
        best = min(best, try seconds { vectors = try encoder.encode(texts, batchSize: batch) })
    }
    let tokens = texts.reduce(0) { $0 + encoder.tokenizer.encode($1).count }
    let tokenize = seconds { for t in texts { _ = encoder.tokenizer.encode(t) } }
    if let output {
        try vectors.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: output)) }
    }
    let line: JSONValue = [
        "implementation": "fedrec-swift", "texts": .number(Double(texts.count)), "tokens": .number(Double(tokens)),
        "batch": .number(Double(batch)), "blas_threads": .number(Double(SentenceEncoder.blasThreads)), "workers": .number(Double(encoder.encoder.threads)),
        "seconds": .number(best), "texts_per_second": .number(Double(texts.count) / best),
        "tokenize_seconds": .number(tokenize), "load_seconds": .number(load),
    ]
    print(line.canonicalText)
} catch {
    FileHandle.standardError.write("encode-bench: \(error)\n".data(using: .utf8)!)
    exit(1)
}
