// swift-tools-version:6.0
import PackageDescription

/// libFuzzer harnesses for fedrec's parsers, apart from the main package so its build is
/// untouched. Build and run with `make fuzz` (or `make fuzz-smoke`) from the repository
/// root; the build needs SwiftPM's sanitizer flags, which link libFuzzer's `main`:
///
///     swift build --package-path Fuzz --scratch-path .build-fuzz \
///       --sanitize=fuzzer --sanitize=address
///
/// Each harness is an executable with no top-level code (`-parse-as-library`) that exports
/// `LLVMFuzzerTestOneInput`; the seed corpora are in `Fuzz/corpus/<harness>/`.
let harnesses = ["fuzz-safetensors", "fuzz-shard", "fuzz-ratings", "fuzz-npy", "fuzz-json", "fuzz-fedrec-files", "fuzz-tables", "fuzz-secagg-server", "fuzz-secagg-party", "fuzz-report"]
/// The harnesses past the container share `FuzzSupport` (resealing an input, scratch files).
let supported: Set = ["fuzz-fedrec-files", "fuzz-tables", "fuzz-secagg-server", "fuzz-secagg-party", "fuzz-report"]

let package = Package(
    name: "fedrec-fuzz",
    dependencies: [.package(name: "fedrec", path: "..")],
    targets: [
        .target(name: "FuzzSupport", dependencies: [.product(name: "FedRecCore", package: "fedrec")])
    ] + harnesses.map {
        .executableTarget(
            name: $0,
            dependencies: [.product(name: "FedRecCore", package: "fedrec")] + (supported.contains($0) ? ["FuzzSupport"] : []),
            swiftSettings: [.unsafeFlags(["-parse-as-library"])])
    }
)
