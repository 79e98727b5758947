import FedRecFormats
import FedRecSupport

/// What `fl-partition` adds for models over features (CTR): users' private features,
/// items' public features and sampled impressions.
struct FeatureInputs {
    /// Raw user id → the user's tokens (`field=value`).
    var users: [String: [String]] = [:]
    var userFields: [String] = []
    /// Raw item id → the item's tokens, when an item feature file was given.
    var items: [String: [String]]?
    var itemFields: [String] = []

    /// Reads the feature files the options name, adding their checksums to `digests`
    /// (the dataset's identity).
    static func read(_ options: PartitionOptions, digests: inout [JSONValue]) throws -> FeatureInputs {
        var inputs = FeatureInputs()
        if let path = options.userFeatures {
            let file = try CompressedInput.open(path: path).file
            digests.append(.string(file.withBytes { XXHash64.hex($0) }))
            (inputs.users, inputs.userFields) = try FeatureFileReader.read(file: file, path: path, names: options.userFeatureNames)
        } else if !options.userFeatureNames.isEmpty {
            throw FedRecError(.usage, "--user-feature-names names the columns of --user-features: give the file")
        }
        if let path = options.itemFeatures {
            let file = try CompressedInput.open(path: path).file
            digests.append(.string(file.withBytes { XXHash64.hex($0) }))
            let (table, fields) = try FeatureFileReader.read(file: file, path: path)
            inputs.items = table
            inputs.itemFields = fields
        }
        return inputs
    }

    /// Sampled impressions: for each user, round(rate × events) warm items the user never
    /// interacted with, for training and for test alike (so both hold the same share of
    /// non-clicks), drawn without replacement from one pool, seeded per user.
    static func impressions(_ options: PartitionOptions, train: [Interactions], test: [Interactions], cold: [Interactions],
                            itemCount: Int, coldItems: [Int32]) -> (train: [[Int32]], test: [[Int32]]) {
        var trainImpressions = [[Int32]](repeating: [], count: train.count)
        var testImpressions = [[Int32]](repeating: [], count: train.count)
        guard options.impressions > 0 else { return (trainImpressions, testImpressions) }
        for u in train.indices {
            var seen = Set(train[u].items)
            seen.formUnion(test[u].items)
            seen.formUnion(cold[u].items)
            let free = itemCount - coldItems.count - seen.subtracting(coldItems).count
            seen.formUnion(coldItems)
            let wantedTrain = Int((options.impressions * Double(train[u].count)).rounded())
            let wantedTest = Int((options.impressions * Double(test[u].count)).rounded())
            let total = min(free, wantedTrain + wantedTest)
            var generator = SeededGenerator(seed: options.seed, stream: UInt64(u) &+ 0x5EED_0006)
            var chosen: [Int32] = []
            chosen.reserveCapacity(total)
            while chosen.count < total {
                let candidate = Int32(generator.nextIndex(below: itemCount))
                if seen.insert(candidate).inserted { chosen.append(candidate) }
            }
            // Short of items: the test share is kept in proportion.
            let testCount = wantedTrain + wantedTest == 0 ? 0 : total * wantedTest / (wantedTrain + wantedTest)
            testImpressions[u] = Array(chosen.prefix(testCount))
            trainImpressions[u] = Array(chosen.dropFirst(testCount))
        }
        return (trainImpressions, testImpressions)
    }

    /// The options that change the shards, for the dataset's identity.
    func record(_ options: PartitionOptions, in details: inout [String: JSONValue]) {
        if options.impressions > 0 { details["impressions"] = .number(options.impressions) }
        if options.userFeatures != nil { details["user_feature_fields"] = .array(userFields.map { .string($0) }) }
        if options.itemFeatures != nil { details["item_feature_fields"] = .array(itemFields.map { .string($0) }) }
    }

    /// The user's feature and impression members (each listed and checksummed in `KEY.json`).
    func members(user id: String, impressions: [Int32], testImpressions: [Int32]) -> [(String, [UInt8])] {
        var files: [(String, [UInt8])] = []
        if let tokens = users[id], !tokens.isEmpty {
            files.append((ShardLayout.featuresMember, Array(tokens.joined(separator: "\n").utf8)))
        }
        if !impressions.isEmpty { files.append((ShardLayout.impressionsMember, Npy.encode(int32s: impressions))) }
        if !testImpressions.isEmpty { files.append((ShardLayout.testImpressionsMember, Npy.encode(int32s: testImpressions))) }
        return files
    }

    /// Writes `item_features.tsv` (`index` and the item's tokens joined by `|`) when there
    /// are item features (the file's, else the catalogue's genres and years), and records
    /// it and its checksum in the dataset's details.
    func writeItemFeatures(items ids: [String], info: [ItemInfo?], directory: String, details: inout [String: JSONValue]) throws {
        guard items != nil || info.contains(where: { $0 != nil }) else { return }
        var text = "index\tfeatures\n"
        for (dense, id) in ids.enumerated() {
            let tokens = items.map { $0[id] ?? [] } ?? info[dense].map(FeatureFileReader.catalogueTokens) ?? []
            text += "\(dense)\t\(tokens.joined(separator: "|"))\n"
        }
        try writeAtomically(text, to: directory + "/" + ItemFeatureTable.fileName, durable: false)
        var files = details["files"]?.objectValue ?? [:]
        files["item_features"] = .string(ItemFeatureTable.fileName)
        details["files"] = .object(files)
        details["item_features_checksum"] = .string(JSONSeal.prefix + Array(text.utf8).withUnsafeBytes { XXHash64.hex($0) })
    }

    /// Counts of what was written, for `dataset.json`.
    func count(users ids: [String], impressions: (train: [[Int32]], test: [[Int32]]), details: inout [String: JSONValue]) {
        if !users.isEmpty { details["users_with_features"] = .number(Double(ids.filter { users[$0]?.isEmpty == false }.count)) }
        let trainCount = impressions.train.reduce(0) { $0 + $1.count }, testCount = impressions.test.reduce(0) { $0 + $1.count }
        if trainCount + testCount > 0 {
            details["impressions_stored"] = ["train": .number(Double(trainCount)), "test": .number(Double(testCount))]
        }
    }
}

extension ShardLayout {
    /// A user's own features (`field=value` tokens, one a line, UTF-8): private.
    public static let featuresMember = "features.txt"
    /// Items shown to the user in training and not interacted with (I32 npy).
    public static let impressionsMember = "imp.npy"
    /// The same for the test period.
    public static let testImpressionsMember = "testimp.npy"
}

/// A dataset's public item features (`item_features.tsv`, written by `fl-partition`).
public enum ItemFeatureTable {
    public static let fileName = "item_features.tsv"

    /// Reads the table of the dataset in `directory`, checked against the checksum its
    /// manifest records: each dense item's tokens (none for every item when the dataset
    /// has no table: the items are known by their index alone).
    /// - Throws: `.checksum` when it does not match; `.corrupt` for a row out of order or a
    ///   count other than the dataset's items.
    public static func read(directory: String, manifest: DatasetManifest) throws -> [[String]] {
        guard let name = manifest.details["files"]?["item_features"]?.stringValue else {
            return [[String]](repeating: [], count: manifest.items)
        }
        let path = directory + "/" + name
        let file = try MappedFile(path: path)
        defer { withExtendedLifetime(file) {} }
        let bytes = file.withBytes { Array($0) }
        guard manifest.details["item_features_checksum"]?.stringValue == JSONSeal.prefix + bytes.withUnsafeBytes({ XXHash64.hex($0) }) else {
            throw FedRecError(.checksum, file: path, "does not match the checksum in dataset.json: the dataset is corrupt")
        }
        let text = String(decoding: bytes, as: UTF8.self)
        var rows: [[String]] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where number > 0 && !line.isEmpty {
            let parts = line.split(separator: "\t", maxSplits: 1, omittingEmptySubsequences: false)
            guard let index = Int(parts[0]), index == rows.count else {
                throw FedRecError(.corrupt, file: path, "line \(number + 1): expected item index \(rows.count)")
            }
            rows.append(parts.count > 1 ? parts[1].split(separator: "|").map(String.init) : [])
        }
        guard rows.count == manifest.items else {
            throw FedRecError(.corrupt, file: path, "holds \(rows.count) items, the dataset has \(manifest.items)")
        }
        return rows
    }
}
