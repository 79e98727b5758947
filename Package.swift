// swift-tools-version:6.0
import PackageDescription

/// The fl-* commands: each is a thin executable over `FedRecCLI` (argument parsing) and
/// `FedRecCore`, which re-exports the library's layers (support, formats, mechanisms, data,
/// model, wire, training, aggregation, privacy, evaluation).
/// `fl-encode` and `fl-recommend` (whose `--query` embeds text) are apart: their commands
/// live in `FedRecTextCLI`, over `FedRecText`, so only they link OpenBLAS.
let commands = [
    "fl-partition", "fl-init", "fl-train-local", "fl-aggregate", "fl-eval", "fl-inspect", "fl-dp-noise", "fl-compact", "fl-secagg", "fl-report",
]
let textCommands = ["fl-encode", "fl-recommend"]
/// fl-init, fl-train-local and fl-eval do not link OpenBLAS (its thread pool costs every
/// process start about 17 ms): given a text-lora model they exec `fl-text-lora`, installed
/// beside them, which links both FedRecCLI and FedRecTextCLI and runs the same command with
/// the text family registered (`TextFamilyLink`).
let familyCommands = ["fl-text-lora"]
/// The library's layers, bottom up (see the targets below).
let layers = [
    "FedRecSupport", "FedRecFormats", "FedRecMechanisms", "FedRecSecureAggregation", "FedRecData", "FedRecModel", "FedRecWire", "FedRecTraining",
    "FedRecAggregation", "FedRecPrivacy", "FedRecEvaluation", "FedRecReport",
]
/// What the code above the library depends on: every layer it imports by name, and
/// FedRecCore. Naming each layer (in the dependencies and in the files' imports), not only
/// the re-exporting FedRecCore, keeps incremental builds from reusing code compiled
/// against an older layout of a layer's types.
let library: [Target.Dependency] = (layers + ["FedRecCore"]).map { .target(name: $0) }

let package = Package(
    name: "fedrec",
    products: (commands + textCommands + familyCommands).map { .executable(name: $0, targets: [$0]) } + [
        .library(name: "FedRecCore", targets: ["FedRecCore"]),
        .library(name: "FedRecText", targets: ["FedRecText"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CArchive", pkgConfig: "libarchive", providers: [.apt(["libarchive-dev"])]),
        // The library's layers, each importing only those below it:
        // Support → Formats → Data → Model → Wire → Training / Aggregation → Privacy →
        // Evaluation, with Mechanisms (noise, sampling, accounting: pure functions) beside
        // Formats. FedRecCore re-exports them all and adds what needs every layer
        // (fl-inspect's file inspector).
        .target(
            name: "FedRecSupport",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]),
        .target(name: "FedRecFormats", dependencies: ["FedRecSupport", "CArchive"]),
        .target(
            name: "FedRecMechanisms",
            dependencies: ["FedRecSupport", .product(name: "_CryptoExtras", package: "swift-crypto")]),
        // Secure aggregation's protocol (Bonawitz et al. 2017; Bell et al. 2020): key
        // agreement, Shamir sharing, the neighbour graph, quantisation and masks. Pure
        // protocol arithmetic and cryptography, beside Mechanisms; no file formats.
        .target(
            name: "FedRecSecureAggregation",
            dependencies: [
                "FedRecSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]),
        .target(name: "FedRecData", dependencies: ["FedRecFormats", "FedRecSupport"]),
        .target(name: "FedRecModel", dependencies: ["FedRecFormats", "FedRecSupport"]),
        // Updates, sums and their headers, the ALS statistics layout, DP metadata keys, the
        // secure-aggregation files and masked updates: what crosses the wire between clients
        // and the server.
        .target(
            name: "FedRecWire",
            dependencies: ["FedRecModel", "FedRecFormats", "FedRecMechanisms", "FedRecSecureAggregation", "FedRecSupport"]),
        .target(
            name: "FedRecTraining",
            dependencies: [
                "FedRecWire", "FedRecModel", "FedRecData", "FedRecMechanisms", "FedRecSecureAggregation", "FedRecFormats",
                "FedRecSupport",
            ]),
        .target(
            name: "FedRecAggregation",
            dependencies: ["FedRecWire", "FedRecModel", "FedRecSecureAggregation", "FedRecFormats", "FedRecSupport"]),
        .target(
            name: "FedRecPrivacy",
            dependencies: ["FedRecAggregation", "FedRecWire", "FedRecModel", "FedRecMechanisms", "FedRecSecureAggregation", "FedRecFormats", "FedRecSupport"]),
        .target(
            name: "FedRecEvaluation",
            dependencies: ["FedRecTraining", "FedRecModel", "FedRecData", "FedRecFormats", "FedRecSupport"]),
        // Reports of runs (fl-report): reads run directories, accounts their ledgers.
        .target(name: "FedRecReport", dependencies: ["FedRecPrivacy", "FedRecMechanisms", "FedRecSupport"]),
        .target(
            name: "FedRecCore",
            dependencies: [
                "FedRecSupport", "FedRecFormats", "FedRecMechanisms", "FedRecSecureAggregation", "FedRecData", "FedRecModel", "FedRecWire",
                "FedRecTraining", "FedRecAggregation", "FedRecPrivacy", "FedRecEvaluation", "FedRecReport",
            ]),
        // OpenBLAS only for the text encoder: commands that do not encode text never link it.
        .systemLibrary(
            name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .target(name: "FedRecText", dependencies: library + ["COpenBLAS"]),
        .target(
            name: "FedRecCLI",
            dependencies: [
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ] + library),
        // The commands that link the text encoder (and OpenBLAS): fl-encode, fl-recommend.
        .target(
            name: "FedRecTextCLI",
            dependencies: [
                "FedRecText", "FedRecCLI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ] + library),
        // What every test target shares: running the built commands, scratch directories,
        // synthetic datasets, the shared data beside the repository.
        .target(name: "FedRecTestSupport", dependencies: library),
        // One test target per layer, each testing its own module (`@testable`); FedRecCoreTests
        // holds what spans the layers: the commands run as a pipeline does, cold start.
    ] + layers.map {
        .testTarget(
            name: $0 + "Tests", dependencies: library + ["FedRecTestSupport"],
            // The known-answer generators (Python) beside the tests that use their values.
            exclude: ["FedRecSecureAggregation", "FedRecMechanisms"].contains($0) ? ["KnownAnswers"] : [])
    } + [
        .testTarget(name: "FedRecCoreTests", dependencies: library + ["FedRecCLI", "FedRecTestSupport"]),
        // Fixtures/: the PyTorch reference of the LoRA backward pass and its generator.
        .testTarget(
            name: "FedRecTextTests", dependencies: library + ["FedRecText", "FedRecTestSupport"], exclude: ["Fixtures"]),
        // Benchmark driver for bench/quality-search (personalized search on MovieLens tags).
        .executableTarget(name: "search-bench", dependencies: library + ["FedRecText"], path: "bench/search-bench"),
        // Benchmark driver for bench/encode-throughput.sh, not a command.
        .executableTarget(name: "encode-bench", dependencies: library + ["FedRecText"], path: "bench/encode-bench"),
        // Benchmark driver for bench/secagg-vs-flower (one simulated secure round), not a command.
        .executableTarget(
            name: "secagg-bench",
            dependencies: library + [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            path: "bench/secagg-bench"),
        // Benchmark driver for bench/dp-noise-throughput (privacy-noise sampling), not a command.
        .executableTarget(name: "dp-noise-bench", dependencies: library, path: "bench/dp-noise-bench"),
    ] + commands.map { .executableTarget(name: $0, dependencies: ["FedRecCLI"]) }
        + textCommands.map { .executableTarget(name: $0, dependencies: ["FedRecTextCLI"]) }
        + familyCommands.map {
            .executableTarget(name: $0, dependencies: ["FedRecCLI", "FedRecTextCLI", .product(name: "ArgumentParser", package: "swift-argument-parser")])
        }
)
