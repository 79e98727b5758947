import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecData
import FedRecSupport
import FedRecFormats

@Suite("fl-partition: cleaning, splits, clients and shards")
struct PartitionerTests {
    /// 3 users; user 10 has a duplicate of item 5 (the later one rated 2) and a
    /// timestamp tie between items 7 and 9 at the end.
    let ratings = """
        user,item,rating,time
        10,5,4,100
        10,7,3,200
        10,9,5,300
        10,8,1,300
        10,5,2,150
        20,5,3,50
        20,7,4,60
        30,9,1,10
        """

    func partition(_ configure: (inout PartitionOptions) -> Void = { _ in }) throws -> (TemporaryDirectory, DatasetManifest, [UserRecord]) {
        let dir = try TemporaryDirectory()
        try writeAtomically(ratings, to: dir.path + "/r.csv")
        var options = PartitionOptions(ratings: dir.path + "/r.csv")
        options.negatives = 2
        configure(&options)
        let manifest = try Partitioner.run(options, output: dir.path + "/ds")
        return (dir, manifest, try readUsers(dir.path + "/ds"))
    }

    @Test("duplicates keep the latest event; leave-last-out breaks time ties by the larger item")
    func leaveLastOut() throws {
        let (_, manifest, users) = try partition()
        #expect(manifest.users == 3 && manifest.items == 4)
        #expect(manifest.details["duplicates_removed"] == 1)
        let user10 = try #require(users.first { $0.id == "10" })
        // Items get indices in raw-id order: 5→0, 7→1, 8→2, 9→3. Last by (time, item) is
        // item 9 (index 3), which ties with item 8 at time 300.
        #expect(user10.test.items == [3])
        #expect(user10.train.items == [0, 1, 2])
        #expect(user10.train.ratings == [2, 3, 1])  // item 5's later rating, 2
        #expect(user10.negatives.isEmpty)  // no item left that user 10 has not seen
        let user30 = try #require(users.first { $0.id == "30" })
        #expect(user30.test.isEmpty && user30.train.items == [3])  // one event stays in training
        let user20 = try #require(users.first { $0.id == "20" })
        #expect(Set(user20.negatives) == [2, 3])
    }

    @Test("the same inputs and seed give bit-identical shards; another seed does not")
    func deterministic() throws {
        func shardBytes(_ seed: UInt64) throws -> [[UInt8]] {
            let (dir, manifest, _) = try partition { $0.split = .ratio(0.5); $0.seed = seed }
            return try manifest.shards.map { try readBytes(dir.path + "/ds/" + $0.file) }
        }
        #expect(try shardBytes(1) == shardBytes(1))
        #expect(try shardBytes(1) != shardBytes(2))
    }

    @Test("feedback: told from the data unless given; implicit makes every event count 1")
    func feedback() throws {
        let (_, detected, detectedUsers) = try partition()
        #expect(detected.feedback == "explicit" && detected.details["feedback"] == nil)
        #expect(detectedUsers.flatMap(\.train.ratings).contains(3))
        let (_, implicit, users) = try partition { $0.feedback = .implicit }
        #expect(implicit.feedback == "implicit" && implicit.details["feedback"]?.stringValue == "implicit")
        #expect(users.allSatisfy { ($0.train.ratings + $0.test.ratings).allSatisfy { $0 == 1 } })
        #expect(implicit.ratingMin == 1 && implicit.ratingMax == 1)
        // The same events, another partition: models of the one do not fit the other.
        #expect(implicit.datasetId != detected.datasetId)
        #expect(users.map(\.train.items) == detectedUsers.map(\.train.items))
        // Explicit feedback needs ratings.
        let dir = try TemporaryDirectory()
        try writeAtomically("user,item,time\n1,2,3\n1,3,4\n", to: dir.path + "/clicks.csv")
        var options = PartitionOptions(ratings: dir.path + "/clicks.csv")
        #expect(try Partitioner.run(options, output: dir.path + "/a").feedback == "implicit")
        options.feedback = .explicit
        let error = #expect(throws: FedRecError.self) { try Partitioner.run(options, output: dir.path + "/b") }
        #expect(error?.failure == .usage && error?.file == dir.path + "/clicks.csv")
    }

    @Test("k-core drops users and items below k, iteratively")
    func kCore() throws {
        let (_, manifest, _) = try partition { $0.kCore = 2 }
        // Items 8 (once) and user 30 (once) go; then item 9 has one event left and goes too.
        #expect(manifest.items == 2 && manifest.users == 2)
    }

    @Test("a given test file becomes the test set")
    func testFile() throws {
        let dir = try TemporaryDirectory()
        try writeAtomically("1\t1\t5\t1\n1\t2\t3\t2\n2\t1\t4\t3\n", to: dir.path + "/a.base")
        try writeAtomically("1\t3\t2\t9\n", to: dir.path + "/a.test")
        var options = PartitionOptions(ratings: dir.path + "/a.base")
        options.split = .testFile(dir.path + "/a.test")
        let manifest = try Partitioner.run(options, output: dir.path + "/ds")
        #expect(manifest.train == 3 && manifest.test == 1 && manifest.items == 3)
        let users = try readUsers(dir.path + "/ds")
        #expect(users[0].test.items == [2] && users[0].test.ratings == [2])
    }

    @Test("IID clients group users; every user lands in exactly one client")
    func iidClients() throws {
        let (_, manifest, users) = try partition { $0.scheme = .iid(clients: 2); $0.shards = 1 }
        #expect(manifest.clients == 2)
        #expect(Set(users.map(\.client)).isSubset(of: [0, 1]) && users.count == 3)
        // Users of one client are adjacent in the shard.
        let clients = users.map(\.client)
        #expect(clients == clients.sorted())
    }

    @Test("catalogue items nobody interacted with get indices only when asked")
    func catalogueItems() throws {
        let dir = try TemporaryDirectory()
        try writeAtomically("movieId,title,genres\n5,A,Drama\n7,B,Comedy\n8,C,Drama\n9,D,Drama\n11,Cold,Horror\n", to: dir.path + "/movies.csv")
        let (_, plain, _) = try partition { $0.itemsFile = dir.path + "/movies.csv" }
        #expect(plain.items == 4)
        let (out, all, _) = try partition { $0.itemsFile = dir.path + "/movies.csv"; $0.includeCatalogue = true }
        #expect(all.items == 5)
        let table = try DatasetTables(directory: out.path + "/ds", manifest: all)
        #expect(table.items.map(\.id) == ["5", "7", "8", "9", "11"] && table.items[4].title == "Cold")
    }

    @Test("Dirichlet grouping needs genres")
    func dirichletNeedsGenres() throws {
        let error = #expect(throws: FedRecError.self) { try partition { $0.scheme = .dirichlet(clients: 2, alpha: 0.5) } }
        #expect(error?.failure == .usage)
    }

    @Test("pseudonymised ids are HMAC-SHA256 of the raw id under the key")
    func pseudonyms() throws {
        let dir = try TemporaryDirectory()
        try writeAtomically(Array(repeating: UInt8(7), count: 32), to: dir.path + "/key")
        let (out, manifest, users) = try partition { $0.pseudonymKeyFile = dir.path + "/key" }
        // HMAC-SHA256 under the 32-byte key 0x07…07 of the raw ids "10", "20", "30", from
        // Python's hmac module (an implementation independent of swift-crypto):
        //   python3 -c "import hmac,hashlib; print([hmac.new(bytes([7])*32, u, hashlib.sha256).hexdigest() for u in (b'10', b'20', b'30')])"
        let expected = [
            "1321b4f81f8ee4360eb2f72f38df8231fe8760c6e8f9983c9465c13d59abd7da",
            "0cea31b8a25b7595fd3592ef70a44ece6b66a6bae265e8a997385b6c420f0bc1",
            "f373e01e81d9a9415c8fdd9dd3e56cf8eea0f616aad919f931353943c8c2b921",
        ]
        // Dense user indices follow the raw ids' numeric order: 10, 20, 30.
        #expect(users.sorted { $0.user < $1.user }.map(\.id) == expected)
        let tables = try DatasetTables(directory: out.path + "/ds", manifest: manifest)
        #expect(Set(tables.users.keys) == Set(expected))
        let short = try TemporaryDirectory()
        try writeAtomically([UInt8](repeating: 1, count: 4), to: short.path + "/key")
        #expect((#expect(throws: FedRecError.self) { try partition { $0.pseudonymKeyFile = short.path + "/key" } })?.failure == .badData)
    }

    @Test("a failure leaves no output directory and no temporary files")
    func failureLeavesNothing() throws {
        let dir = try TemporaryDirectory()
        try writeAtomically("user,item,rating\n1,2,3\n1,x\n", to: dir.path + "/bad.csv")
        let error = #expect(throws: FedRecError.self) { try Partitioner.run(PartitionOptions(ratings: dir.path + "/bad.csv"), output: dir.path + "/out") }
        #expect(error?.failure == .badData)
        #expect(try dir.listing() == ["bad.csv"])
    }

    @Test("an existing non-empty output is kept unless replacing is asked for")
    func existingOutput() throws {
        let (dir, _, _) = try partition()
        var options = PartitionOptions(ratings: dir.path + "/r.csv")
        options.seed = 9
        let error = #expect(throws: FedRecError.self) { try Partitioner.run(options, output: dir.path + "/ds") }
        #expect(error?.failure == .cannotCreate)
        let replaced = try Partitioner.run(options, output: dir.path + "/ds", replace: true)
        #expect(try DatasetManifest.load(dir.path + "/ds").datasetId == replaced.datasetId)
        #expect(try dir.listing() == ["ds", "r.csv"])
    }
}

@Suite("shard reading")
struct ShardUserReaderTests {
    @Test("a shard cut at a tar block boundary is reported as truncated")
    func truncatedAtBlockBoundary() throws {
        let data = try SyntheticDataset(users: 10, items: 20, perUser: 5, shards: 1)
        let bytes = try readBytes(data.shards[0])
        // Keep the header entry and the first user's files only: whole 512-byte blocks.
        let reader = try ShardUserReader(path: data.shards[0])
        _ = try reader.next()
        let cut = data.directory.path + "/cut.tar"
        try writeAtomically(Array(bytes.prefix(512 * 12)), to: cut)
        let error = #expect(throws: FedRecError.self) {
            let r = try ShardUserReader(path: cut)
            while try r.next() != nil {}
        }
        #expect(error?.failure == .corrupt)
    }

    @Test("a member's key is its name up to the first dot after the last slash", arguments: [
        ("u000017.train.npy", "u000017"), ("shard/u3.json", "shard/u3"), ("a.b/c.d.e", "a.b/c"), ("noext", "noext"),
        ("dir/", "dir/"), ("x/.hidden", "x/"), ("é/ü.json", "é/ü"),
        // A dot a combining mark follows is part of another character, not a dot.
        ("u1.\u{301}x.json", "u1.\u{301}x"),
    ])
    func memberKeys(name: String, key: String) {
        #expect(ShardUserReader.key(of: name) == key)
    }
}

/// Moments of a symmetric Dirichlet(α, …, α) on n components, from its moment formula
/// E[Π X_i^k_i] = Γ(nα)/Γ(nα + Σk) · Π Γ(α + k_i)/Γ(α) (each marginal is Beta(α, (n−1)α)).
struct SymmetricDirichletMoments {
    let n: Int
    let alpha: Double

    /// E[X_1^k].
    func raw(_ k: Int) -> Double {
        let a = Double(n) * alpha
        return (0..<k).reduce(1.0) { $0 * (alpha + Double($1)) / (a + Double($1)) }
    }

    var mean: Double { raw(1) }
    var variance: Double { raw(2) - mean * mean }
    /// E[(X − μ)⁴], for the standard error of a sample variance.
    var fourthCentral: Double {
        let m = mean
        return raw(4) - 4 * m * raw(3) + 6 * m * m * raw(2) - 3 * m * m * m * m
    }

    /// H = Σ_c X_c², the concentration of one draw: E[H] = 1/n + (1 − 1/n)/(nα + 1).
    var concentration: Double { Double(n) * raw(2) }
    /// Var(H) = n E[X⁴] + n(n−1) E[X_1² X_2²] − E[H]².
    var concentrationVariance: Double {
        let a = Double(n) * alpha
        let mixed = (alpha * (alpha + 1)) * (alpha * (alpha + 1)) / (a * (a + 1) * (a + 2) * (a + 3))
        return Double(n) * raw(4) + Double(n * (n - 1)) * mixed - concentration * concentration
    }
}

@Suite("Dirichlet client split: the proportions the concentration implies")
struct DirichletSplitTests {
    /// Each statistic below is compared with its exact expectation within zOneInAMillion
    /// standard errors (CLT), so a correct sampler fails with probability ≈ 1e-6; the test
    /// seeds are fixed, so the outcome is reproducible.
    @Test("shares: each marginal has the Beta(α, (n−1)α) mean and variance; they sum to 1", arguments: [0.1, 0.5, 5.0])
    func shares(alpha: Double) {
        let n = 5, draws = 20_000
        let exact = SymmetricDirichletMoments(n: n, alpha: alpha)
        var generator = SeededGenerator(seed: 42, stream: 7)  // test seed
        var first = [Double]()
        for _ in 0..<draws {
            let shares = Dirichlet.sample(count: n, alpha: alpha, using: &generator)
            #expect(shares.count == n && shares.allSatisfy { $0 >= 0 } && abs(shares.reduce(0, +) - 1) < 1e-12)
            first.append(shares[0])
        }
        let mean = first.reduce(0, +) / Double(draws)
        let variance = first.reduce(0) { $0 + ($1 - exact.mean) * ($1 - exact.mean) } / Double(draws)
        #expect(abs(mean - exact.mean) <= zOneInAMillion * (exact.variance / Double(draws)).squareRoot(), "α=\(alpha): mean \(mean)")
        // Σ(x − μ)²/N around the true mean: standard error √((μ₄ − σ⁴)/N).
        let varianceSE = ((exact.fourthCentral - exact.variance * exact.variance) / Double(draws)).squareRoot()
        #expect(abs(variance - exact.variance) <= zOneInAMillion * varianceSE, "α=\(alpha): variance \(variance), exact \(exact.variance)")
    }

    /// 200 labels (dominant genres) of 100 users each, split over 4 clients. Per label, the
    /// fractions of its users in each client are one Dirichlet draw rounded to whole users
    /// (each fraction off by at most 1/m), so the label's concentration Σ_c f_c² is within
    /// 2/m + n/m² of the draw's. Its mean over labels must match E[H] within
    /// zOneInAMillion·√(Var(H)/labels) plus that rounding.
    @Test("per label, the clients' shares of its users are as concentrated as Dirichlet(α) implies", arguments: [0.3, 10.0])
    func labelProportions(alpha: Double) throws {
        let labels = 200, perLabel = 100, n = 4
        // Item g has genre "g"; user u rates item u / perLabel only, so that is its label.
        let itemInfo: [ItemInfo?] = (0..<labels).map { ItemInfo(title: "t\($0)", genres: ["genre-\($0)"]) }
        let train = (0..<(labels * perLabel)).map { Interactions(items: [Int32($0 / perLabel)], ratings: [1], times: [0]) }
        var options = PartitionOptions(ratings: "r.csv")
        options.scheme = .dirichlet(clients: n, alpha: alpha)
        options.seed = 11  // test seed
        let clientOf = try Partitioner.assignClients(options, userCount: train.count, train: train, itemInfo: itemInfo)
        #expect(clientOf.allSatisfy { (0..<Int32(n)).contains($0) })
        var concentrations: [Double] = []
        for label in 0..<labels {
            var counts = [Int](repeating: 0, count: n)
            for u in (label * perLabel)..<((label + 1) * perLabel) { counts[Int(clientOf[u])] += 1 }
            concentrations.append(counts.reduce(0.0) { $0 + Double($1 * $1) } / Double(perLabel * perLabel))
        }
        let exact = SymmetricDirichletMoments(n: n, alpha: alpha)
        let observed = concentrations.reduce(0, +) / Double(labels)
        let m = Double(perLabel)
        let tolerance = zOneInAMillion * (exact.concentrationVariance / Double(labels)).squareRoot() + 2 / m + Double(n) / (m * m)
        #expect(abs(observed - exact.concentration) <= tolerance,
                "α=\(alpha): mean Σf² \(observed), Dirichlet implies \(exact.concentration) ± \(tolerance)")
    }
}
