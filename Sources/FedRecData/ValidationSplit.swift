import Crypto
import Foundation
import FedRecFormats
import FedRecSupport

/// A validation dataset carved from another dataset's *training* events, for tuning
/// without the test set (`fl-partition --validation-from`).
///
/// Each client does it on its own data: a user's training events are split again, by the
/// same rules as `fl-partition` (leave-last-out: the latest training event by time, ties
/// to the larger item index; ratio: a seeded fraction), into the validation dataset's
/// train and test parts. The source's test events are never read into the new dataset,
/// nor its cold interactions; item and user indices, clients and shard boundaries stay
/// the same, so settings chosen on the validation dataset apply to the source as they are.
/// A CTR dataset's users keep their features, their training impressions are divided in
/// proportion to the events (`carveImpressions`), and `item_features.tsv` is copied.
public enum ValidationSplit {
    /// One user's training events divided into what the validation dataset trains on and
    /// what it holds out. Leave-last-out holds out the last `last` events by (time, item),
    /// at most all but one (nothing from a user with one event); ratio holds out a seeded
    /// fraction, time the latest fraction (at least one event stays in training).
    public static func carve(_ events: Interactions, split: SplitMethod, user: Int, seed: UInt64, last: Int = 1) throws
        -> (train: Interactions, held: Interactions)
    {
        var order = Array(0..<events.count)
        order.sort { (events.times[$0], events.items[$0]) < (events.times[$1], events.items[$1]) }
        var heldOut = [Bool](repeating: false, count: events.count)
        switch split {
        case .leaveLastOut:
            guard last >= 1 else { throw FedRecError(.usage, "--validation-events must be at least 1, got \(last)") }
            for e in order.suffix(min(last, max(order.count - 1, 0))) { heldOut[e] = true }
        case .ratio(let fraction):
            guard fraction > 0 && fraction < 1 else {
                throw FedRecError(.usage, "--test-ratio must be between 0 and 1, got \(fraction)")
            }
            var generator = SeededGenerator(seed: seed, stream: UInt64(user) &+ 0x5EED_0006)
            var positions = order
            positions.shuffle(using: &generator)
            let held = min(Int((fraction * Double(events.count)).rounded()), events.count - 1)
            for p in positions.prefix(max(held, 0)) { heldOut[p] = true }
        case .time(let fraction):
            guard fraction > 0 && fraction < 1 else {
                throw FedRecError(.usage, "--test-ratio must be between 0 and 1, got \(fraction)")
            }
            let held = min(Int((fraction * Double(events.count)).rounded()), events.count - 1)
            for e in order.suffix(max(held, 0)) { heldOut[e] = true }
        case .testFile:
            throw FedRecError(.usage, "a validation split is leave-last-out, ratio or time, not a test file")
        }
        var train = Interactions(), held = Interactions()
        for e in order {
            if heldOut[e] {
                held.append(item: events.items[e], rating: events.ratings[e], time: events.times[e])
            } else {
                train.append(item: events.items[e], rating: events.ratings[e], time: events.times[e])
            }
        }
        return (train, held)
    }

    /// Writes the validation dataset of the dataset directory `source` to `output` (built
    /// under a temporary name and renamed into place; an existing non-empty `output` is
    /// replaced only with `replace`). Sampled negatives (`negatives` a user, as the source
    /// stored) are drawn again, seeded, among the items the user did not train on. `last`:
    /// the events leave-last-out holds out a user.
    public static func run(source: String, output: String, split: SplitMethod, seed: UInt64, last: Int = 1,
                           replace: Bool = false) throws
        -> DatasetManifest
    {
        let manifest = try DatasetManifest.load(source)
        try Partitioner.checkOutput(output, replace: replace)
        let sourceFiles = manifest.shardPaths(in: source) + ["items.tsv", "users.tsv", "dataset.json"].map { source + "/" + $0 }
        try FileRoles(inputs: sourceFiles, outputs: [], directoryOutputs: [output]).check()
        let negativesPerUser = manifest.details["negatives"]?.intValue ?? 0
        let cold = Set(manifest.coldItems)
        let impressionRate = manifest.details["impressions"]?.doubleValue ?? 0
        let itemFeatures = manifest.details["files"]?["item_features"]?.stringValue

        var idSource: [String: JSONValue] = ["validation_of": .string(manifest.datasetId), "split": split.json,
                                             "seed": .number(Double(seed))]
        idSource["negatives"] = .number(Double(negativesPerUser))
        if split == .leaveLastOut { idSource["held_per_user"] = .number(Double(last)) }
        let datasetId = hexDigest(SHA256.hash(data: Array(JSONValue.object(idSource).canonicalText.utf8)))

        return try Partitioner.stageDirectory(output) { temporary in
            var shards: [DatasetManifest.Shard] = []
            var trainTotal = 0, heldTotal = 0
            var impressionsTrain = 0, impressionsHeld = 0, usersWithFeatures = 0
            for (index, entry) in manifest.shards.enumerated() {
                let reader = try ShardUserReader(path: source + "/" + entry.file, datasetId: manifest.datasetId, items: manifest.items)
                var records: [UserRecord] = []
                while let record = try reader.next() { records.append(record) }
                let writer = try ShardWriter(path: temporary + "/" + entry.file, compression: ShardCompression(path: entry.file))
                let clients = Set(records.map(\.client)).count
                let header = ShardLayout.header(shard: index, datasetId: datasetId, users: records.count, clients: clients)
                try writer.add(name: ShardLayout.headerName, bytes: Array(header.canonicalText.utf8))
                var shardTrain = 0, shardHeld = 0
                for record in records {
                    let user = Int(record.user)
                    let (train, held) = try carve(record.train, split: split, user: user, seed: seed, last: last)
                    var files: [(String, [UInt8])] = [("train.npy", Npy.encode(train)), ("test.npy", Npy.encode(held))]
                    let negatives = held.isEmpty ? [] : sampleNegatives(
                        count: negativesPerUser, items: manifest.items, excluding: Set(train.items).union(held.items).union(cold),
                        user: user, seed: seed)
                    if !negatives.isEmpty { files.append(("neg.npy", Npy.encode(int32s: negatives))) }
                    let shown = carveImpressions(record.impressions, rate: impressionRate, held: held.count)
                    files += ctrMembers(features: record.features, impressions: shown)
                    impressionsTrain += shown.train.count
                    impressionsHeld += shown.held.count
                    if !record.features.isEmpty { usersWithFeatures += 1 }
                    let meta = ShardLayout.userMeta(user: user, id: record.id, client: Int(record.client), files: files)
                    let key = ShardLayout.key(user: user)
                    try writer.add(name: key + ".json", bytes: Array(meta.canonicalText.utf8))
                    for (suffix, bytes) in files { try writer.add(name: key + "." + suffix, bytes: bytes) }
                    shardTrain += train.count
                    shardHeld += held.count
                }
                try writer.commit()
                shards.append(.init(file: entry.file, clients: clients, users: records.count, train: shardTrain, test: shardHeld))
                trainTotal += shardTrain
                heldTotal += shardHeld
            }
            guard trainTotal > 0 else { throw FedRecError(.emptyInput, file: source, "no training interactions") }
            for name in ["items.tsv", "users.tsv"] + (itemFeatures.map { [$0] } ?? []) {
                let bytes = try MappedFile(path: source + "/" + name).withBytes { Array($0) }
                try writeAtomically(bytes, to: temporary + "/" + name, durable: false)
            }
            var details = manifest.details
            details["split"] = split.json
            details["seed"] = .number(Double(seed))
            details["validation_of"] = ["dataset_id": .string(manifest.datasetId), "split": manifest.details["split"] ?? .null]
            if split == .leaveLastOut { details["held_per_user"] = .number(Double(last)) }
            if impressionRate > 0 {
                details["impressions_stored"] = ["train": .number(Double(impressionsTrain)), "test": .number(Double(impressionsHeld))]
            }
            if details["users_with_features"] != nil { details["users_with_features"] = .number(Double(usersWithFeatures)) }
            if !cold.isEmpty {
                details["cold_interactions"] = .number(0)
                details["cold_users"] = .number(0)
            }
            let result = DatasetManifest(
                datasetId: datasetId, users: manifest.users, items: manifest.items, clients: manifest.clients,
                train: trainTotal, test: heldTotal, feedback: manifest.feedback, ratingMin: manifest.ratingMin,
                ratingMax: manifest.ratingMax, shards: shards, details: details)
            try writeAtomically(result.json.prettyText, to: temporary + "/dataset.json", durable: false)
            return result
        }
    }

    /// A CTR user's training impressions divided as its events were: round(rate × held)
    /// of them (at most all) become the validation period's impressions, the rest stay in
    /// training, so both parts keep the source's impressions per event. The source drew
    /// them in a seeded random order, so its first ones are as random a choice as any; the
    /// source's test-period impressions are never read.
    static func carveImpressions(_ impressions: [Int32], rate: Double, held: Int) -> (train: [Int32], held: [Int32]) {
        guard rate > 0, !impressions.isEmpty else { return (impressions, []) }
        let count = min(impressions.count, Int((rate * Double(held)).rounded()))
        return (Array(impressions.dropFirst(count)), Array(impressions.prefix(count)))
    }

    /// The user's feature and impression members, as `fl-partition` names them.
    static func ctrMembers(features: [String], impressions: (train: [Int32], held: [Int32])) -> [(String, [UInt8])] {
        var files: [(String, [UInt8])] = []
        if !features.isEmpty { files.append((ShardLayout.featuresMember, Array(features.joined(separator: "\n").utf8))) }
        if !impressions.train.isEmpty { files.append((ShardLayout.impressionsMember, Npy.encode(int32s: impressions.train))) }
        if !impressions.held.isEmpty { files.append((ShardLayout.testImpressionsMember, Npy.encode(int32s: impressions.held))) }
        return files
    }

    /// `count` distinct items below `items` outside `excluding`, seeded by the user.
    static func sampleNegatives(count: Int, items: Int, excluding: Set<Int32>, user: Int, seed: UInt64) -> [Int32] {
        var seen = excluding
        let wanted = min(count, max(0, items - seen.count))
        var generator = SeededGenerator(seed: seed, stream: UInt64(user) &+ 0x5EED_0007)
        var chosen: [Int32] = []
        while chosen.count < wanted {
            let candidate = Int32(generator.nextIndex(below: items))
            if seen.insert(candidate).inserted { chosen.append(candidate) }
        }
        return chosen
    }
}
