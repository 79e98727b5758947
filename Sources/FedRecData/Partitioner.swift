import Crypto
import Foundation
import FedRecFormats
import FedRecSupport

/// Everything `fl-partition` can be asked to do.
public struct PartitionOptions: Sendable {
    /// The ratings file (`-` for stdin).
    public var ratings: String
    /// Further ratings files read as training data after `ratings`, in the same layout
    /// (e.g. LightGCN's `train.txt` and `valid.txt` trained on together).
    public var moreRatings: [String] = []
    /// How the events are laid out in the ratings (and test) files.
    public var layout: InteractionLayout = .events
    public var columns = RatingsColumns()
    /// The declared rating scale: ratings outside it are refused (with their line), and
    /// the dataset records it as its scale. Undeclared bounds come from the training data.
    public var ratingScale = RatingScale()
    /// Item metadata (titles, genres); nil looks for MovieLens's file beside the ratings.
    public var itemsFile: String?
    public var split: SplitMethod = .leaveLastOut
    public var scheme: ClientScheme = .perUser
    /// Number of shard files; nil chooses about one per 1000 clients, at least two.
    public var shards: Int?
    public var compression: ShardCompression = .none
    /// Drop users and items with fewer interactions (0 or 1: no filter).
    public var kCore = 0
    public var removeDuplicates = true
    public var seed: UInt64 = 0
    /// Sampled negatives stored per user with a test set, for the sampled ranking protocol.
    public var negatives = 99
    /// A key file: user ids in the output become HMAC-SHA256(key, id).
    public var pseudonymKeyFile: String?
    /// Give every item of the item file an index, also those nobody interacted with
    /// (cold items, a catalogue larger than the interactions).
    public var includeCatalogue = false
    /// Fraction of items held out of training entirely (cold-start evaluation), chosen
    /// with `seed`: every interaction with a cold item goes to the user's `KEY.cold.npy`,
    /// never to train or test. 0: none.
    public var coldItems = 0.0
    /// What the events are; nil tells from the data: explicit when the input has a rating
    /// column with more than one value. `.implicit` makes every event count 1 (a click or
    /// a view, whatever its rating), so a dataset meant for implicit models says so.
    public var feedback: Feedback?
    /// A query log to attach to the users' shards (`QueryLog`), nil for none.
    public var queries: QueryLogOptions?
    /// Users' own categorical features (`FeatureFileReader`), written to each user's
    /// `KEY.features.txt` in the shards: private, they stay with the client.
    public var userFeatures: String?
    /// The user feature file's column names when it has no header (`-` skips a column).
    public var userFeatureNames: [String] = []
    /// Items' public categorical features (`FeatureFileReader`), written to
    /// `item_features.tsv`; nil derives them from the item catalogue (genres, year).
    public var itemFeatures: String?
    /// Sampled non-interactions stored per event as impressions that were not clicked
    /// (`KEY.imp.npy` for training, `KEY.testimp.npy` for test, at the same rate): the
    /// CTR models' negatives. 0: none.
    public var impressions = 0.0

    public init(ratings: String) { self.ratings = ratings }
}

/// Whether a dataset's events are ratings on a scale or interactions that count 1.
public enum Feedback: String, Sendable, CaseIterable {
    case explicit, implicit
}

/// Turns a ratings file into a dataset directory: `dataset.json`, `items.tsv`,
/// `users.tsv` and `shards/shard-NNNNN.tar[.gz|.zst]`, one WebDataset-style group of
/// files per user, the users of one client adjacent.
public enum Partitioner {
    /// Partitions and writes the dataset directory `output`. The directory is built under
    /// a temporary name and renamed into place, so a failure leaves nothing behind; an
    /// existing non-empty `output` is replaced only with `replace`.
    public static func run(_ options: PartitionOptions, output: String, replace: Bool = false) throws -> DatasetManifest {
        try checkOutput(output, replace: replace)
        // The output directory is replaced whole: it must hold none of the inputs.
        var testPath: String?
        if case .testFile(let path) = options.split { testPath = path }
        try FileRoles(inputs: [options.ratings] + options.moreRatings + [testPath, options.itemsFile ?? ItemCatalogReader.movieLensSibling(of: options.ratings),
                               options.pseudonymKeyFile, options.queries?.path, options.userFeatures, options.itemFeatures], outputs: [], directoryOutputs: [output]).check()
        // Read.
        // Compressed inputs are read decompressed, and identified by their decompressed
        // bytes (the same data gives the same dataset id however it was shipped).
        var log = RatingsLog()
        var inputDigests: [JSONValue] = []
        var compressions: [String] = []
        func read(_ path: String) throws -> RatingsFormat {
            let (file, compression) = try CompressedInput.open(path: path)
            if let compression { compressions.append(compression.rawValue) }
            return try file.withBytes { bytes in
                inputDigests.append(.string(XXHash64.hex(bytes)))
                return try RatingsReader.read(bytes: bytes, path: path, columns: options.columns, scale: options.ratingScale,
                                              layout: options.layout, into: &log)
            }
        }
        let format = try read(options.ratings)
        for path in options.moreRatings { _ = try read(path) }
        var isTest = [Bool](repeating: false, count: log.count)
        if case .testFile(let testPath) = options.split {
            _ = try read(testPath)
            isTest += [Bool](repeating: true, count: log.count - isTest.count)
        }
        switch options.feedback {
        case .implicit?: log.rating = [Float](repeating: 1, count: log.count)
        case .explicit? where !log.hasRatings:
            throw FedRecError(.usage, file: options.ratings, "has no rating column, so its feedback cannot be explicit")
        default: break
        }
        if case .leaveLastOut = options.split, !log.hasTimes {
            throw FedRecError(.usage, file: options.ratings, "has no \(options.layout == .events ? "timestamp column" : "times"), so leave-last-out cannot order it; use --split ratio or --test")
        }
        if case .ratio(let r) = options.split, !(r > 0 && r < 1) {
            throw FedRecError(.usage, "--test-ratio must be between 0 and 1, got \(r)")
        }
        if case .time(let r) = options.split {
            guard r > 0 && r < 1 else { throw FedRecError(.usage, "--test-ratio must be between 0 and 1, got \(r)") }
            guard log.hasTimes else { throw FedRecError(.usage, file: options.ratings, "has no timestamps, so a time split cannot order it") }
        }
        guard options.impressions >= 0 && options.impressions <= 100 else {
            throw FedRecError(.usage, "--impressions must be between 0 and 100 per event, got \(options.impressions)")
        }
        let features = try FeatureInputs.read(options, digests: &inputDigests)
        let itemsPath = options.itemsFile ?? ItemCatalogReader.movieLensSibling(of: options.ratings)
        var catalogue: [String: ItemInfo] = [:]
        if let itemsPath, !itemsPath.isEmpty {
            let file = try CompressedInput.open(path: itemsPath).file
            catalogue = try ItemCatalogReader.read(file: file, path: itemsPath)
            inputDigests.append(.string(file.withBytes { XXHash64.hex($0) }))
        }
        var pseudonymKey: SymmetricKey?
        if let keyFile = options.pseudonymKeyFile {
            let key = try MappedFile(path: keyFile).withBytes { Array($0) }
            guard key.count >= 16 else {
                throw FedRecError(.badData, file: keyFile, "pseudonymisation key is \(key.count) bytes; use at least 16 (e.g. head -c 32 /dev/urandom)")
            }
            pseudonymKey = SymmetricKey(data: key)
        }

        // Clean.
        var keep = [Bool](repeating: true, count: log.count)
        let duplicates = options.removeDuplicates ? Preprocessing.removeDuplicates(log, keep: &keep) : 0
        let kCoreRemoved = Preprocessing.kCore(log, k: options.kCore, keep: &keep)
        var userPresent = [Bool](repeating: false, count: log.users.count)
        if options.includeCatalogue {
            guard !catalogue.isEmpty else {
                throw FedRecError(.usage, file: options.ratings, "--catalogue-items needs an item file (--items)")
            }
            for id in catalogue.keys.sorted() { _ = log.items.intern(id) }
        }
        var itemPresent = [Bool](repeating: options.includeCatalogue, count: log.items.count)
        for e in 0..<log.count where keep[e] {
            userPresent[Int(log.user[e])] = true
            itemPresent[Int(log.item[e])] = true
        }
        let userOrder = Preprocessing.sortedOrder(log.users.ids, present: userPresent)
        let itemOrder = Preprocessing.sortedOrder(log.items.ids, present: itemPresent)
        guard !userOrder.isEmpty else { throw FedRecError(.emptyInput, file: options.ratings, "no interactions left after filtering") }
        var userDense = [Int32](repeating: -1, count: log.users.count)
        var itemDense = [Int32](repeating: -1, count: log.items.count)
        for (dense, raw) in userOrder.enumerated() { userDense[raw] = Int32(dense) }
        for (dense, raw) in itemOrder.enumerated() { itemDense[raw] = Int32(dense) }
        let userCount = userOrder.count, itemCount = itemOrder.count
        guard options.coldItems >= 0 && options.coldItems < 1 else {
            throw FedRecError(.usage, "--cold-items must be in [0, 1), got \(options.coldItems)")
        }
        // Cold items: a seeded sample of dense item indices, held out of train and test.
        var isCold = [Bool](repeating: false, count: itemCount)
        var coldItems: [Int32] = []
        if options.coldItems > 0 {
            var generator = SeededGenerator(seed: options.seed, stream: 0x5EED_0005)
            var order = Array(0..<itemCount)
            order.shuffle(using: &generator)
            let count = Int((options.coldItems * Double(itemCount)).rounded())
            for i in order.prefix(count) { isCold[i] = true }
            coldItems = (0..<itemCount).filter { isCold[$0] }.map { Int32($0) }
        }

        // Group events by user, ordered by (time, item).
        var eventsOf = [[Int]](repeating: [], count: userCount)
        for e in 0..<log.count where keep[e] { eventsOf[Int(userDense[Int(log.user[e])])].append(e) }
        var train = [Interactions](repeating: Interactions(), count: userCount)
        var test = [Interactions](repeating: Interactions(), count: userCount)
        var cold = [Interactions](repeating: Interactions(), count: userCount)
        for u in 0..<userCount {
            var events = eventsOf[u]
            events.sort { (log.time[$0], itemDense[Int(log.item[$0])]) < (log.time[$1], itemDense[Int(log.item[$1])]) }
            if !coldItems.isEmpty {
                for e in events where isCold[Int(itemDense[Int(log.item[e])])] {
                    cold[u].append(item: itemDense[Int(log.item[e])], rating: log.rating[e], time: log.time[e])
                }
                events.removeAll { isCold[Int(itemDense[Int(log.item[$0])])] }
            }
            var testMask = [Bool](repeating: false, count: events.count)
            switch options.split {
            case .leaveLastOut:
                if events.count >= 2 { testMask[events.count - 1] = true }
            case .ratio(let fraction):
                var generator = SeededGenerator(seed: options.seed, stream: UInt64(u) &+ 0x5EED_0001)
                var positions = Array(events.indices)
                positions.shuffle(using: &generator)
                let held = min(Int((fraction * Double(events.count)).rounded()), events.count - 1)
                for p in positions.prefix(max(held, 0)) { testMask[p] = true }
            case .testFile:
                for (p, e) in events.enumerated() { testMask[p] = isTest[e] }
            case .time(let fraction):
                let held = min(Int((fraction * Double(events.count)).rounded()), events.count - 1)
                for p in (events.count - max(held, 0))..<events.count { testMask[p] = true }
            }
            for (p, e) in events.enumerated() {
                let item = itemDense[Int(log.item[e])]
                if testMask[p] {
                    test[u].append(item: item, rating: log.rating[e], time: log.time[e])
                } else {
                    train[u].append(item: item, rating: log.rating[e], time: log.time[e])
                }
            }
        }
        let trainTotal = train.reduce(0) { $0 + $1.count }
        let testTotal = test.reduce(0) { $0 + $1.count }
        let coldTotal = cold.reduce(0) { $0 + $1.count }
        guard trainTotal > 0 else { throw FedRecError(.emptyInput, file: options.ratings, "no training interactions") }

        // Sampled negatives: warm items the user never interacted with, seeded per user.
        var negatives = [[Int32]](repeating: [], count: userCount)
        if options.negatives > 0 {
            for u in 0..<userCount where !test[u].isEmpty {
                var seen = Set(train[u].items)
                seen.formUnion(test[u].items)
                let wanted = min(options.negatives, itemCount - coldItems.count - seen.count)
                seen.formUnion(coldItems)
                var generator = SeededGenerator(seed: options.seed, stream: UInt64(u) &+ 0x5EED_0002)
                var chosen: [Int32] = []
                while chosen.count < wanted {
                    let candidate = Int32(generator.nextIndex(below: itemCount))
                    if seen.insert(candidate).inserted { chosen.append(candidate) }
                }
                negatives[u] = chosen
            }
        }

        let impressions = FeatureInputs.impressions(options, train: train, test: test, cold: cold, itemCount: itemCount, coldItems: coldItems)

        // Item genres, for items.tsv and non-IID grouping.
        let itemInfo: [ItemInfo?] = itemOrder.map { catalogue[log.items.ids[$0]] }
        let clientOf = try assignClients(options, userCount: userCount, train: train, itemInfo: itemInfo)
        let clientCount: Int
        switch options.scheme {
        case .perUser: clientCount = userCount
        case .iid(let n), .dirichlet(let n, _): clientCount = n
        }

        // Identity of this partition: inputs and options.
        var optionsJSON: [String: JSONValue] = [
            "split": options.split.json, "partition": options.scheme.json, "seed": .number(Double(options.seed)),
            "k_core": .number(Double(options.kCore)), "remove_duplicates": .bool(options.removeDuplicates),
            "negatives": .number(Double(options.negatives)), "pseudonymised": .bool(pseudonymKey != nil),
            "catalogue_items": .bool(options.includeCatalogue),
        ]
        if options.layout != .events { optionsJSON["layout"] = .string(options.layout.rawValue) }
        if options.coldItems > 0 { optionsJSON["cold_fraction"] = .number(options.coldItems) }
        if let feedback = options.feedback { optionsJSON["feedback"] = .string(feedback.rawValue) }
        features.record(options, in: &optionsJSON)
        if options.ratingScale != RatingScale() {
            optionsJSON["rating_scale_declared"] = .array([options.ratingScale.min, options.ratingScale.max].map { $0.map { .number(Double($0)) } ?? .null })
        }
        let queries = try options.queries.map { try attachQueries($0, log: log, userOrder: userOrder, itemOrder: itemOrder, inputDigests: &inputDigests) }
        if let q = options.queries { optionsJSON["queries"] = q.json }
        let idSource: JSONValue = ["inputs": .array(inputDigests), "options": .object(optionsJSON)]
        let datasetId = hexDigest(SHA256.hash(data: Array(idSource.canonicalText.utf8)))

        // Users in client order; shards cut where the running count of training events
        // passes each shard's equal share.
        let usersInOrder = (0..<userCount).sorted { (clientOf[$0], $0) < (clientOf[$1], $1) }
        let shardCount = max(1, min(options.shards ?? max(2, (clientCount + 999) / 1000), Set(clientOf).count))
        var shardOfUser = [Int](repeating: 0, count: userCount)
        do {
            var running = 0, shard = 0, previousClient: Int32 = -1
            for u in usersInOrder {
                if clientOf[u] != previousClient, shard < shardCount - 1,
                    running >= (shard + 1) * trainTotal / shardCount
                {
                    shard += 1
                }
                previousClient = clientOf[u]
                shardOfUser[u] = shard
                running += train[u].count
            }
        }

        // Write everything under a temporary directory, then rename it into place.
        return try stageDirectory(output) { temporary in
            func userName(_ u: Int) -> String {
                let raw = log.users.ids[userOrder[u]]
                guard let pseudonymKey else { return raw }
                return hexDigest(HMAC<SHA256>.authenticationCode(for: Array(raw.utf8), using: pseudonymKey))
            }
            var shards: [DatasetManifest.Shard] = []
            var cursor = 0
            for shard in 0..<shardCount {
                let file = "shards/shard-" + zeroPadded(shard, 5) + options.compression.fileExtension
                let writer = try ShardWriter(path: temporary + "/" + file, compression: options.compression)
                var members: [Int] = []
                while cursor < usersInOrder.count && shardOfUser[usersInOrder[cursor]] == shard {
                    members.append(usersInOrder[cursor])
                    cursor += 1
                }
                let clients = Array(Set(members.map { clientOf[$0] })).sorted()
                let header = ShardLayout.header(shard: shard, datasetId: datasetId, users: members.count, clients: clients.count)
                try writer.add(name: ShardLayout.headerName, bytes: Array(header.canonicalText.utf8))
                var shardTrain = 0, shardTest = 0
                for u in members {
                    let key = ShardLayout.key(user: u)
                    var files: [(String, [UInt8])] = [("train.npy", Npy.encode(train[u])), ("test.npy", Npy.encode(test[u]))]
                    if !cold[u].isEmpty { files.append(("cold.npy", Npy.encode(cold[u]))) }
                    if !negatives[u].isEmpty { files.append(("neg.npy", Npy.encode(int32s: negatives[u]))) }
                    if let queries, !queries.byUser[u].isEmpty { files.append((QueryLog.memberSuffix, QueryLog.encode(queries.byUser[u]))) }
                    files += features.members(user: log.users.ids[userOrder[u]], impressions: impressions.train[u], testImpressions: impressions.test[u])
                    let meta = ShardLayout.userMeta(user: u, id: userName(u), client: Int(clientOf[u]), files: files)
                    try writer.add(name: key + ".json", bytes: Array(meta.canonicalText.utf8))
                    for (suffix, bytes) in files { try writer.add(name: key + "." + suffix, bytes: bytes) }
                    shardTrain += train[u].count
                    shardTest += test[u].count
                }
                try writer.commit()
                shards.append(.init(file: file, clients: clients.count, users: members.count, train: shardTrain, test: shardTest))
            }

            // items.tsv and users.tsv.
            var items = "index\tid\ttitle\tgenres\n"
            for (dense, raw) in itemOrder.enumerated() {
                let info = itemInfo[dense]
                items += "\(dense)\t\(tsvField(log.items.ids[raw]))\t\(tsvField(info?.title ?? ""))\t\(tsvField(info?.genres.joined(separator: "|") ?? ""))\n"
            }
            try writeAtomically(items, to: temporary + "/items.tsv", durable: false)
            var users = "index\tid\tclient\tshard\n"
            for u in 0..<userCount { users += "\(u)\t\(tsvField(userName(u)))\t\(clientOf[u])\t\(shardOfUser[u])\n" }
            try writeAtomically(users, to: temporary + "/users.tsv", durable: false)

            var ratingValues = Set<Float>()
            var low = Float.infinity, high = -Float.infinity
            for u in 0..<userCount {
                for r in train[u].ratings { low = min(low, r); high = max(high, r); if ratingValues.count < 2 { ratingValues.insert(r) } }
            }
            if let declared = options.ratingScale.min { low = declared }
            if let declared = options.ratingScale.max { high = declared }
            var source: [String: JSONValue] = [
                "ratings": .string(options.ratings == "-" ? "-" : baseName(options.ratings)),
                "layout": .string(format.layout.rawValue), "delimiter": .string(format.delimiter.description), "header": .bool(format.header),
                "columns": .array(format.columns.map { .string($0) }), "items": itemsPath.map { .string(baseName($0)) } ?? .null,
                "events_read": .number(Double(log.count)), "has_timestamps": .bool(log.hasTimes && options.layout == .events),
            ]
            if !options.moreRatings.isEmpty {
                source["more_ratings"] = .array(options.moreRatings.map { .string($0 == "-" ? "-" : baseName($0)) })
            }
            if !compressions.isEmpty { source["compression"] = .array(compressions.map { .string($0) }) }
            optionsJSON["source"] = .object(source)
            optionsJSON["duplicates_removed"] = .number(Double(duplicates))
            optionsJSON["k_core_removed"] = .number(Double(kCoreRemoved))
            optionsJSON["files"] = ["items": "items.tsv", "users": "users.tsv"]
            try features.writeItemFeatures(items: itemOrder.map { log.items.ids[$0] }, info: itemInfo, directory: temporary, details: &optionsJSON)
            features.count(users: (0..<userCount).map { log.users.ids[userOrder[$0]] }, impressions: impressions, details: &optionsJSON)
            if !coldItems.isEmpty {
                optionsJSON["cold_items"] = .array(coldItems.map { .number(Double($0)) })
                optionsJSON["cold_interactions"] = .number(Double(coldTotal))
                optionsJSON["cold_users"] = .number(Double(cold.filter { !$0.isEmpty }.count))
            }
            if let queries, let q = options.queries { optionsJSON["queries"] = queries.json(options: q) }
            optionsJSON["empty_clients"] = .number(Double(clientCount - Set(clientOf).count))
            let manifest = DatasetManifest(
                datasetId: datasetId, users: userCount, items: itemCount, clients: clientCount, train: trainTotal, test: testTotal,
                feedback: options.feedback?.rawValue ?? (log.hasRatings && ratingValues.count > 1 ? "explicit" : "implicit"),
                ratingMin: Double(low), ratingMax: Double(high), shards: shards, details: optionsJSON)
            try writeAtomically(manifest.json.prettyText, to: temporary + "/dataset.json", durable: false)
            return manifest
        }
    }

    /// Assigns each user a client index.
    static func assignClients(_ options: PartitionOptions, userCount: Int, train: [Interactions], itemInfo: [ItemInfo?]) throws -> [Int32] {
        switch options.scheme {
        case .perUser:
            return (0..<userCount).map { Int32($0) }
        case .iid(let n):
            guard n >= 1 else { throw FedRecError(.usage, "--clients must be at least 1") }
            var generator = SeededGenerator(seed: options.seed, stream: 0x5EED_0003)
            var order = Array(0..<userCount)
            order.shuffle(using: &generator)
            var clientOf = [Int32](repeating: 0, count: userCount)
            for (position, u) in order.enumerated() { clientOf[u] = Int32(position % n) }
            return clientOf
        case .dirichlet(let n, let alpha):
            guard n >= 1 else { throw FedRecError(.usage, "--clients must be at least 1") }
            guard alpha > 0 else { throw FedRecError(.usage, "--alpha must be positive") }
            guard itemInfo.contains(where: { !($0?.genres.isEmpty ?? true) }) else {
                throw FedRecError(.usage, file: options.ratings, "Dirichlet partitioning needs item genres: give --items with a genres column")
            }
            // Label each user by the genre most frequent among their training items.
            let genres = Array(Set(itemInfo.flatMap { $0?.genres ?? [] })).sorted()
            let genreIndex = Dictionary(uniqueKeysWithValues: genres.enumerated().map { ($1, $0) })
            var usersOfLabel = [[Int]](repeating: [], count: genres.count + 1)
            for u in 0..<userCount {
                var counts = [Int](repeating: 0, count: genres.count)
                for item in train[u].items {
                    for g in itemInfo[Int(item)]?.genres ?? [] { counts[genreIndex[g]!] += 1 }
                }
                let best = counts.indices.max { (counts[$0], -$0) < (counts[$1], -$1) }
                let label = best.map { counts[$0] > 0 ? $0 : genres.count } ?? genres.count
                usersOfLabel[label].append(u)
            }
            var generator = SeededGenerator(seed: options.seed, stream: 0x5EED_0004)
            var clientOf = [Int32](repeating: 0, count: userCount)
            for var members in usersOfLabel where !members.isEmpty {
                members.shuffle(using: &generator)
                let shares = Dirichlet.sample(count: n, alpha: alpha, using: &generator)
                var cumulative = 0.0
                var start = 0
                for client in 0..<n {
                    cumulative += shares[client]
                    let end = client == n - 1 ? members.count : min(members.count, Int((cumulative * Double(members.count)).rounded()))
                    for u in members[start..<max(start, end)] { clientOf[u] = Int32(client) }
                    start = max(start, end)
                }
            }
            return clientOf
        }
    }

    static func checkOutput(_ output: String, replace: Bool) throws {
        guard output != "-" else { throw FedRecError(.usage, "the output of fl-partition is a directory, not stdout") }
        if let entries = try? FileManager.default.contentsOfDirectory(atPath: output), !entries.isEmpty, !replace {
            throw FedRecError(.cannotCreate, file: output, "exists and is not empty; use --force to replace it")
        }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: output, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw FedRecError(.cannotCreate, file: output, "exists and is not a directory")
        }
    }

    static func temporaryDirectory(beside output: String) -> String {
        TemporaryFiles.path(beside: output)
    }

    /// Writes a dataset directory: `write` fills a temporary directory beside `output` (its
    /// `shards/` made), which is then renamed into place. On any error the temporary
    /// directory is removed; one an earlier, killed process left is removed first. Shared by
    /// fl-partition and its validation split.
    static func stageDirectory<Result>(_ output: String, _ write: (String) throws -> Result) throws -> Result {
        TemporaryFiles.removeStale(beside: output)
        let temporary = temporaryDirectory(beside: output)
        try makeDirectories(temporary + "/shards")
        let token = TemporaryFiles.register(temporary, isDirectory: true)
        defer { TemporaryFiles.forget(token) }
        do {
            let result = try write(temporary)
            try moveIntoPlace(temporary, output)
            return result
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
    }

    /// Renames `temporary` to `output`, replacing an existing directory only after the new
    /// one is complete.
    static func moveIntoPlace(_ temporary: String, _ output: String) throws {
        let manager = FileManager.default
        var old: String?
        if manager.fileExists(atPath: output) {
            let aside = temporaryDirectory(beside: output) + ".old"
            guard rename(output, aside) == 0 else {
                throw FedRecError(.cannotCreate, file: output, "cannot move the old directory aside: \(systemError())")
            }
            old = aside
        }
        guard rename(temporary, output) == 0 else {
            let reason = systemError()
            if let old { _ = rename(old, output) }
            throw FedRecError(.cannotCreate, file: output, "cannot move the dataset into place: \(reason)")
        }
        if let old { try? manager.removeItem(atPath: old) }
    }
}

/// Names inside a shard archive.
public enum ShardLayout {
    /// The shard's own description, first in the archive.
    public static let headerName = "__shard__.json"

    /// The WebDataset key of a user's group of files.
    public static func key(user: Int) -> String { "u" + zeroPadded(user, 7) }

    /// The key of `KEY.json` listing the XXH64 of the user's other members (format version 3).
    public static let filesKey = "files"
    /// The key of a sealed JSON member's own checksum (`JSONSeal`).
    public static let sealKey = "checksum"

    /// `__shard__.json`, sealed: a flipped byte in it is refused on reading.
    public static func header(shard: Int, datasetId: String, users: Int, clients: Int) -> JSONValue {
        JSONSeal.sealed([
            "format": .string(FedRecFormat.name), "format_version": .number(Double(FedRecFormat.version)),
            "kind": "shard", "shard": .number(Double(shard)), "dataset_id": .string(datasetId),
            "users": .number(Double(users)), "clients": .number(Double(clients)),
        ], key: sealKey)
    }

    /// A user's `KEY.json`, sealed, with the XXH64 of each of the user's other members
    /// (`files`: name after the key, e.g. `train.npy`, to `xxh64:` + 16 hex digits).
    public static func userMeta(user: Int, id: String, client: Int, files: [(String, [UInt8])]) -> JSONValue {
        var sums: [String: JSONValue] = [:]
        for (suffix, bytes) in files { sums[suffix] = .string(memberChecksum(bytes)) }
        return JSONSeal.sealed([
            "user": .number(Double(user)), "id": .string(id), "client": .number(Double(client)), filesKey: .object(sums),
        ], key: sealKey)
    }

    /// The checksum of one shard member's bytes: `xxh64:` + XXH64 (seed 0) in hex.
    public static func memberChecksum(_ bytes: [UInt8]) -> String {
        JSONSeal.prefix + bytes.withUnsafeBytes { XXHash64.hex($0) }
    }
}

/// Dirichlet sampling through normalised Gamma draws (Marsaglia & Tsang 2000).
enum Dirichlet {
    static func sample(count: Int, alpha: Double, using generator: inout SeededGenerator) -> [Double] {
        var draws = (0..<count).map { _ in gamma(alpha, using: &generator) }
        let total = draws.reduce(0, +)
        if total <= 0 { return [Double](repeating: 1 / Double(count), count: count) }
        for i in draws.indices { draws[i] /= total }
        return draws
    }

    static func gamma(_ shape: Double, using generator: inout SeededGenerator) -> Double {
        if shape < 1 {
            // Boost: Gamma(a) = Gamma(a + 1) * U^(1/a).
            let u = max(generator.nextUnitDouble(), .leastNonzeroMagnitude)
            return gamma(shape + 1, using: &generator) * pow(u, 1 / shape)
        }
        let d = shape - 1.0 / 3.0
        let c = 1 / (9 * d).squareRoot()
        while true {
            var x = 0.0, v = 0.0
            repeat {
                x = generator.nextGaussian()
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            let u = generator.nextUnitDouble()
            if u < 1 - 0.0331 * x * x * x * x { return d * v }
            if log(max(u, .leastNonzeroMagnitude)) < 0.5 * x * x + d * (1 - v + log(v)) { return d * v }
        }
    }
}

/// `n` in decimal, left-padded with zeros to `width` digits.
func zeroPadded(_ n: Int, _ width: Int) -> String {
    let digits = String(n)
    return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}


extension ShardCompression {
    /// The file name extension fl-partition gives shards of this compression.
    public var fileExtension: String {
        switch self {
        case .none: ".tar"
        case .gzip: ".tar.gz"
        case .zstd: ".tar.zst"
        }
    }
}
