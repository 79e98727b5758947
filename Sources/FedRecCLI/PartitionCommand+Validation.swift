import ArgumentParser
import FedRecCore
import FedRecSupport
import FedRecData

/// `fl-partition --validation-from DATASET`: a validation dataset carved from each
/// client's training events (`ValidationSplit`), for tuning without the test set.
extension PartitionCommand {
    func validateValidationSplit() throws {
        guard ratings.isEmpty else { throw ValidationError("--validation-from reads a dataset directory, not ratings files") }
        guard ["leave-last-out", "ratio", "time"].contains(split) else { throw ValidationError("--split is leave-last-out, ratio or time") }
        let refused: [(Bool, String)] = [
            (test != nil, "--test"), (clients != nil, "--clients"), (dirichlet != nil, "--dirichlet"), (shards != nil, "--shards"),
            (coldItems != 0, "--cold-items"), (kCore != 0, "--k-core"), (feedback != nil, "--feedback"),
            (pseudonymizeKey != nil, "--pseudonymize-key"), (items != nil || noItems || catalogueItems, "item options"),
            (compression != "none", "--compression"), (keepDuplicates, "--keep-duplicates"),
            (userFeatures != nil || userFeatureNames != nil || itemFeatures != nil, "feature options"),
            (impressions != 0, "--impressions"),
        ]
        if let (_, name) = refused.first(where: \.0) {
            throw ValidationError("\(name) does not apply to --validation-from: the validation dataset keeps the source's clients, shards and items")
        }
        guard validationEvents >= 1 else { throw ValidationError("--validation-events must be at least 1") }
        if split != "leave-last-out", validationEvents != 1 { throw ValidationError("--validation-events goes with --split leave-last-out") }
        if split != "leave-last-out", !(testRatio > 0 && testRatio < 1) { throw ValidationError("--test-ratio must be between 0 and 1") }
    }

    func runValidationSplit() throws {
        try reportingErrors("fl-partition") {
            guard let source = validationFrom else { throw FedRecError(.usage, "--validation-from needs a dataset directory") }
            let method: SplitMethod = split == "ratio" ? .ratio(testRatio) : (split == "time" ? .time(testRatio) : .leaveLastOut)
            let manifest = try ValidationSplit.run(source: source, output: output, split: method, seed: seed, last: validationEvents, replace: force)
            let summary = manifest.summary(path: output)
            try emit(format.json ? summary.canonicalText : summary.table(aligned: standardOutputIsTerminal))
        }
    }
}
