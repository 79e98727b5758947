import ArgumentParser
import FedRecCore
import FedRecSupport
import FedRecFormats
import FedRecData

extension InteractionLayout: ExpressibleByArgument {}

/// `fl-partition`: ratings file → dataset directory of tar shards.
public struct PartitionCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "fl-partition",
        abstract: "Split a ratings file into per-client tar shards for federated training.",
        discussion: """
            Reads MovieLens u.data / ratings.dat / ratings.csv or any CSV/TSV with named columns, \
            one-user-per-line lists `user item item …` (--format lists: LightGCN, NGCF, S3-Rec) \
            or Jester's matrix (--format jester), from files or -, plain or compressed (gzip, \
            zstd, xz, bzip2: told by their first bytes). Several ratings files are read as one \
            training set. It maps raw ids to dense indices, removes duplicate events (keeping \
            the latest), splits each user's data into train and test, groups users into clients \
            and writes OUTPUT/dataset.json, items.tsv, users.tsv and shards/shard-NNNNN.tar.

            Examples:
              fl-partition u.data -o ml100k          # leave-last-out, one client per user
              fl-partition u1.base --test u1.test -o ml100k-u1    # an official fold as is
              fl-partition ratings.csv --split ratio --test-ratio 0.2 --clients 20 -o silos
              fl-partition ratings.csv --dirichlet 0.3 --clients 20 -o noniid \\
                  --items movies.csv
              zstd -dc ratings.csv.zst | fl-partition - -o mls --pseudonymize-key key.bin
              fl-partition --format lists train.txt.zst valid.txt.zst \\
                  --test test.txt.zst -o gowalla        # a published split
              fl-partition --format lists Beauty.txt.zst -o beauty   # last item: test
              fl-partition --format jester jester-data-1.csv.zst -o jester \\
                  --split ratio --test-ratio 0.1
              fl-partition u.data -o ml100k-cold --cold-items 0.2 --seed 1  # 20 % cold
              fl-partition ratings.csv --queries tags.csv --catalogue-items \\
                  -o mls-search       # tags as search queries, per-user hold-out
              fl-partition u.data -o ml100k-ctr --split time --test-ratio 0.2 \\
                  --impressions 1 --user-features u.user \\
                  --user-feature-names age,gender,occupation,-   # CTR (lr, fm)
              fl-partition --validation-from ml100k -o ml100k-valid  # for tuning

            For CTR models: --user-features puts each user's own features in the shards \
            (KEY.features.txt, private to the client); item features (--item-features, else \
            the catalogue's genres and year) go to item_features.tsv, public; --impressions R \
            stores R sampled non-interactions per event as impressions not clicked, for \
            training and test alike (KEY.imp.npy, KEY.testimp.npy).
            """,
        version: fedrecVersion)

    @Argument(help: "Ratings files (read as one training set), or - for stdin.")
    var ratings: [String] = []

    @Option(help: "Carve a validation dataset from this dataset directory's training events instead (--split leave-last-out, ratio or time; a CTR dataset's user features and impressions are carried); its test events are never read.")
    var validationFrom: String?

    @Option(help: "With --validation-from and leave-last-out: hold out each user's last N training events.")
    var validationEvents: Int = 1

    @Option(name: .customLong("format"), help: "Layout of the ratings: events (one per line), lists (user item item …) or jester.")
    var layout: InteractionLayout = .events

    @Option(name: [.short, .long], help: "Output dataset directory (created; replaced only with --force).")
    var output: String

    @Option(help: "Header name of the user id column.") var userCol: String?
    @Option(help: "Header name of the item id column.") var itemCol: String?
    @Option(help: "Header name of the rating column (absent: every event counts 1).") var ratingCol: String?
    @Option(help: "Header name of the timestamp column.") var timeCol: String?

    @Option(help: "Lowest rating of the scale: a rating below it is refused with its line (default: the data's lowest).")
    var ratingMin: Float?
    @Option(help: "Highest rating of the scale: a rating above it is refused with its line (default: the data's highest).")
    var ratingMax: Float?

    @Option(help: "Item metadata (u.item, movies.dat, movies.csv, or CSV/TSV with id, title, genres); default: MovieLens's file beside the ratings.")
    var items: String?

    @Flag(help: "Do not look for item metadata.") var noItems = false

    @Flag(help: "Index every item of the item file, also those nobody interacted with.")
    var catalogueItems = false

    @Option(help: "Hold this fraction of items (seeded by --seed) out of training entirely; their interactions go to KEY.cold.npy for fl-eval --cold.")
    var coldItems: Double = 0

    @Option(help: "What the events are: explicit ratings, or implicit (every event counts 1) for implicit models (default: explicit when there is a rating column with more than one value).")
    var feedback: Feedback?

    @Option(help: "Users' own features: CSV/TSV/pipe, id then one column a field (a header names them unless --user-feature-names).")
    var userFeatures: String?
    @Option(help: "Comma-separated field names of --user-features's columns after the id when it has no header (- skips one).")
    var userFeatureNames: String?
    @Option(help: "Items' public features: CSV/TSV/pipe with a header, id then one column a field (| separates several values).")
    var itemFeatures: String?
    @Option(help: "Store this many sampled non-interactions per event as impressions not clicked (CTR; 0: none).")
    var impressions: Double = 0

    @Option(help: "Split: leave-last-out (last event by time is the test item), ratio, or time (each user's latest --test-ratio of events).")
    var split: String = "leave-last-out"

    @Option(help: "Fraction of each user's events held out with --split ratio.")
    var testRatio: Double = 0.2

    @Option(help: "Take test events from this file (same format), e.g. MovieLens u1.test.")
    var test: String?

    @Option(help: "Group users into N IID clients (cross-silo) instead of one client per user.")
    var clients: Int?

    @Option(help: "With --clients: non-IID groups by genre with Dirichlet(ALPHA) shares.")
    var dirichlet: Double?

    @Option(help: "Number of shard files (default: about one per 1000 clients, at least 2).")
    var shards: Int?

    @Option(help: "Shard compression: none, gzip or zstd.")
    var compression: String = "none"

    @Option(help: "Keep only users and items with at least K events (iteratively).")
    var kCore: Int = 0

    @Flag(help: "Keep repeated (user, item) events instead of keeping the latest.")
    var keepDuplicates = false

    @Option(help: "Seed for splits, client groups and sampled negatives.")
    var seed: UInt64 = 0

    @Option(help: "Sampled negatives stored per test user (sampled ranking protocol).")
    var negatives: Int = 99

    @Option(help: "Replace user ids by HMAC-SHA256(key, id); the key is this file's bytes (≥ 16).")
    var pseudonymizeKey: String?

    @OptionGroup(title: "Query logs") var queryLog: QueryLogArguments

    @Flag(help: "Replace OUTPUT if it exists and is not empty.")
    var force = false

    @OptionGroup(title: "Output") var format: OutputFormatOptions

    public init() {}

    public func validate() throws {
        if validationFrom != nil { return try validateValidationSplit() }
        guard !ratings.isEmpty else { throw ValidationError("name a ratings file (or - for stdin)") }
        guard validationEvents == 1 else { throw ValidationError("--validation-events needs --validation-from") }
        guard ratings.filter({ $0 == "-" }).count + (test == "-" ? 1 : 0) <= 1 else { throw ValidationError("stdin (-) can be read once") }
        if layout == .jester, userCol != nil || itemCol != nil || ratingCol != nil || timeCol != nil {
            throw ValidationError("--format jester has no named columns")
        }
        if layout == .lists, ratingCol != nil || timeCol != nil || userCol != nil || itemCol != nil {
            throw ValidationError("--format lists has no named columns")
        }
        guard ["leave-last-out", "ratio", "time"].contains(split) else { throw ValidationError("--split is leave-last-out, ratio or time") }
        guard impressions >= 0 && impressions <= 100 else { throw ValidationError("--impressions must be between 0 and 100") }
        guard ["none", "gzip", "zstd"].contains(compression) else { throw ValidationError("--compression is none, gzip or zstd") }
        if let clients, clients < 1 { throw ValidationError("--clients must be at least 1") }
        if dirichlet != nil && clients == nil { throw ValidationError("--dirichlet needs --clients") }
        if let shards, shards < 1 { throw ValidationError("--shards must be at least 1") }
        guard coldItems >= 0 && coldItems < 1 else { throw ValidationError("--cold-items is a fraction in [0, 1)") }
        if let ratingMin, let ratingMax, !(ratingMin < ratingMax) { throw ValidationError("--rating-min must be below --rating-max") }
        if [ratingMin, ratingMax].contains(where: { $0.map { !$0.isFinite } ?? false }) { throw ValidationError("--rating-min and --rating-max must be finite") }
        guard negatives >= 0, kCore >= 0 else { throw ValidationError("--negatives and --k-core must be ≥ 0") }
    }

    public func run() throws {
        if validationFrom != nil { return try runValidationSplit() }
        try reportingErrors("fl-partition") {
            guard let first = ratings.first else { throw FedRecError(.usage, "name a ratings file (or - for stdin)") }
            var options = PartitionOptions(ratings: first)
            options.moreRatings = Array(ratings.dropFirst())
            options.layout = layout
            options.columns = RatingsColumns(user: userCol, item: itemCol, rating: ratingCol, time: timeCol)
            options.ratingScale = RatingScale(min: ratingMin, max: ratingMax)
            options.itemsFile = noItems ? "" : items
            if let test {
                options.split = .testFile(test)
            } else {
                options.split = split == "ratio" ? .ratio(testRatio) : (split == "time" ? .time(testRatio) : .leaveLastOut)
            }
            if let clients {
                options.scheme = dirichlet.map { .dirichlet(clients: clients, alpha: $0) } ?? .iid(clients: clients)
            }
            options.shards = shards
            options.compression = compression == "gzip" ? .gzip : (compression == "zstd" ? .zstd : .none)
            options.kCore = kCore
            options.removeDuplicates = !keepDuplicates
            options.seed = seed
            options.negatives = negatives
            options.pseudonymKeyFile = pseudonymizeKey
            options.includeCatalogue = catalogueItems
            options.coldItems = coldItems
            options.feedback = feedback
            options.queries = queryLog.options
            options.userFeatures = userFeatures
            options.userFeatureNames = userFeatureNames.map { $0.split(separator: ",").map(String.init) } ?? []
            options.itemFeatures = itemFeatures
            options.impressions = impressions
            let manifest = try Partitioner.run(options, output: output, replace: force)
            let summary = manifest.summary(path: output)
            try emit(format.json ? summary.canonicalText : summary.table(aligned: standardOutputIsTerminal))
        }
    }
}
