import Foundation
import Testing
import FedRecTestSupport
@testable import FedRecData
import FedRecSupport
import FedRecFormats

@Suite("fl-partition --validation-from: a validation split from each client's training events")
struct ValidationSplitTests {
    /// user,item,rating,time by hand: user a's events at times 1…5 (test: i5 at 5), b's
    /// at 3, 3, 2 and 9 (a tie at time 3: the larger item index, i4, is the later one),
    /// c with two events (one left to train on after the test), d with one.
    static let ratings = """
        user,item,rating,time
        a,i1,4,1
        a,i2,3,2
        a,i3,5,3
        a,i4,2,4
        a,i5,1,5
        b,i2,5,3
        b,i4,4,3
        b,i1,3,2
        b,i6,2,9
        c,i3,4,7
        c,i1,5,8
        d,i2,3,1

        """

    func partitioned(_ dir: TemporaryDirectory, split: SplitMethod = .leaveLastOut) throws -> String {
        try writeAtomically(Self.ratings, to: dir.path + "/r.csv")
        var options = PartitionOptions(ratings: dir.path + "/r.csv")
        options.split = split
        options.negatives = 2
        options.shards = 2
        _ = try Partitioner.run(options, output: dir.path + "/ds")
        return dir.path + "/ds"
    }

    @Test("leave-last-out holds out each user's latest training event, never a test event")
    func leaveLastOut() throws {
        let dir = try TemporaryDirectory()
        let source = try partitioned(dir)
        let valid = try ValidationSplit.run(source: source, output: dir.path + "/valid", split: .leaveLastOut, seed: 0)
        let items = try itemIds(dir.path + "/valid")
        func names(_ i: Interactions) -> [String] { i.items.map { items[Int($0)] } }
        let before = Dictionary(uniqueKeysWithValues: try readUsers(source).map { ($0.id, $0) })
        let after = Dictionary(uniqueKeysWithValues: try readUsers(dir.path + "/valid").map { ($0.id, $0) })
        // By hand: a's test is i5, so its latest training event is i4 (time 4); b's test
        // is i6 (time 9), its latest training event the tie at time 3's larger item, i4;
        // c trains on i3 alone (one event: nothing held out); d has no test and one event.
        // So 3 + 2 + 1 + 1 = 7 training events and 2 held out.
        #expect(names(try #require(before["a"]).test) == ["i5"])
        #expect(names(try #require(after["a"]).test) == ["i4"])
        #expect(names(try #require(after["a"]).train) == ["i1", "i2", "i3"])
        #expect(names(try #require(after["b"]).test) == ["i4"])
        #expect(names(try #require(after["b"]).train) == ["i1", "i2"])
        #expect(try #require(after["c"]).test.isEmpty && names(try #require(after["c"]).train) == ["i3"])
        #expect(try #require(after["d"]).test.isEmpty && names(try #require(after["d"]).train) == ["i2"])
        for (id, user) in after {
            let old = try #require(before[id])
            // Never a test event; only training events, every one of them once.
            #expect(Set(user.test.items).isDisjoint(with: old.test.items))
            #expect((user.train.items + user.test.items).sorted() == old.train.items.sorted())
            #expect(user.client == old.client && user.user == old.user)
            // Negatives are items the user did not train on in the validation split.
            #expect(Set(user.negatives).isDisjoint(with: user.train.items + user.test.items))
            #expect(user.negatives.count == (user.test.isEmpty ? 0 : 2))
        }
        #expect(valid.train == 7 && valid.test == 2 && valid.users == 4 && valid.items == 6)
        let sourceManifest = try DatasetManifest.load(source)
        #expect(valid.datasetId != sourceManifest.datasetId)
        #expect(valid.details["validation_of"]?["dataset_id"]?.stringValue == sourceManifest.datasetId)
        #expect(valid.shards.map(\.file) == sourceManifest.shards.map(\.file))
    }

    @Test("ratio holds out a seeded fraction of training events; same seed, same bytes")
    func ratio() throws {
        let dir = try TemporaryDirectory()
        let source = try partitioned(dir, split: .ratio(0.2))
        let a = try ValidationSplit.run(source: source, output: dir.path + "/v1", split: .ratio(0.5), seed: 3)
        _ = try ValidationSplit.run(source: source, output: dir.path + "/v2", split: .ratio(0.5), seed: 3)
        for shard in a.shards {
            #expect(try readBytes(dir.path + "/v1/" + shard.file) == readBytes(dir.path + "/v2/" + shard.file))
        }
        let before = Dictionary(uniqueKeysWithValues: try readUsers(source).map { ($0.id, $0) })
        for user in try readUsers(dir.path + "/v1") {
            let old = try #require(before[user.id])
            #expect((user.train.items + user.test.items).sorted() == old.train.items.sorted())
            #expect(Set(user.test.items).isDisjoint(with: old.test.items))
            // round(0.5 n) held out, at least one event left to train on.
            let n = old.train.count
            #expect(user.test.count == min(Int((0.5 * Double(n)).rounded()), n - 1))
        }
    }

    @Test("a carve by hand: ties by item index, fewer than two events held out of nothing")
    func carve() throws {
        let events = Interactions(items: [7, 2, 5], ratings: [1, 1, 1], times: [10, 30, 30])
        let (train, held) = try ValidationSplit.carve(events, split: .leaveLastOut, user: 0, seed: 0)
        #expect(held.items == [5] && train.items == [7, 2])
        let one = Interactions(items: [4], ratings: [1], times: [1])
        let (kept, none) = try ValidationSplit.carve(one, split: .leaveLastOut, user: 0, seed: 0)
        #expect(kept.items == [4] && none.isEmpty)
    }

    @Test("leave-last-out of N events: a's last three training events, b's all but one")
    func lastEvents() throws {
        let dir = try TemporaryDirectory()
        let source = try partitioned(dir)
        _ = try ValidationSplit.run(source: source, output: dir.path + "/v3", split: .leaveLastOut, seed: 0, last: 3)
        let items = try itemIds(dir.path + "/v3")
        let after = Dictionary(uniqueKeysWithValues: try readUsers(dir.path + "/v3").map { ($0.id, $0) })
        func names(_ i: Interactions) -> [String] { i.items.map { items[Int($0)] } }
        // a trains on i1…i4 (times 1…4): i2, i3, i4 held out; b on i1 (2), i2 and i4 (3):
        // three events, so two held out (i2, i4), i1 kept.
        #expect(try names(#require(after["a"]).test) == ["i2", "i3", "i4"] && names(try #require(after["a"]).train) == ["i1"])
        #expect(try names(#require(after["b"]).test) == ["i2", "i4"] && names(try #require(after["b"]).train) == ["i1"])
        #expect(throws: FedRecError.self) {
            _ = try ValidationSplit.carve(Interactions(), split: .leaveLastOut, user: 0, seed: 0, last: 0)
        }
    }

    @Test("a CTR dataset by time: each user's latest training events held out, features kept, impressions divided as the events")
    func ctrByTime() throws {
        let dir = try TemporaryDirectory()
        // Users with 8, 5, 4 and 6 events at distinct times over 19 items, so every user
        // has impressions to draw; three users' features by hand.
        var rows = ["user,item,rating,time"]
        for (user, count) in [("a", 8), ("b", 5), ("c", 4)] {
            for e in 0..<count { rows.append("\(user),i\(10 + e * 2 + (user == "b" ? 1 : 0)),\(e % 2 == 0 ? 5 : 2),\(100 + e)") }
        }
        for e in 34..<40 { rows.append("x,i\(e),3,\(e)") }
        try writeAtomically(rows.joined(separator: "\n") + "\n", to: dir.path + "/r.csv")
        try writeAtomically("id,age,gender\na,25,F\nb,40,M\nc,18,F\n", to: dir.path + "/users.csv")
        try writeAtomically("id,kind\n" + (10..<40).map { "i\($0),k\($0 % 3)" }.joined(separator: "\n") + "\n", to: dir.path + "/items.csv")
        var options = PartitionOptions(ratings: dir.path + "/r.csv")
        options.split = .time(0.25)
        options.impressions = 1
        options.userFeatures = dir.path + "/users.csv"
        options.itemFeatures = dir.path + "/items.csv"
        options.shards = 2
        _ = try Partitioner.run(options, output: dir.path + "/ds")
        let valid = try ValidationSplit.run(source: dir.path + "/ds", output: dir.path + "/valid", split: .time(0.5), seed: 0)
        let before = Dictionary(uniqueKeysWithValues: try readUsers(dir.path + "/ds").map { ($0.id, $0) })
        var trainImpressions = 0, heldImpressions = 0
        for user in try readUsers(dir.path + "/valid") {
            let old = try #require(before[user.id])
            // The latest half of the training events by time (round(0.5 n), one at least kept).
            let order = old.train.times.indices.sorted { old.train.times[$0] < old.train.times[$1] }
            let n = old.train.count, held = min(Int((0.5 * Double(n)).rounded()), n - 1)
            #expect(user.test.items == order.suffix(held).map { old.train.items[$0] }, "\(user.id)")
            #expect(user.train.items == order.prefix(n - held).map { old.train.items[$0] }, "\(user.id)")
            // One impression an event in both parts, all of them the source's training ones.
            #expect(user.testImpressions.count == user.test.count && user.impressions.count == user.train.count, "\(user.id)")
            #expect(user.testImpressions + user.impressions == old.impressions, "\(user.id)")
            #expect(Set(user.testImpressions + user.impressions).isDisjoint(with: old.testImpressions))
            #expect(user.features == old.features)
            trainImpressions += user.impressions.count
            heldImpressions += user.testImpressions.count
        }
        #expect(try #require(before["a"]).features.sorted() == ["age=25", "gender=F"])
        #expect(valid.details["impressions_stored"]?["train"]?.intValue == trainImpressions)
        #expect(valid.details["impressions_stored"]?["test"]?.intValue == heldImpressions && heldImpressions > 0)
        #expect(try readBytes(dir.path + "/valid/item_features.tsv") == readBytes(dir.path + "/ds/item_features.tsv"))
        let table = try ItemFeatureTable.read(directory: dir.path + "/valid", manifest: DatasetManifest.load(dir.path + "/valid"))
        #expect(table.count == valid.items && table.contains { $0.contains("kind=k1") })
    }

    @Test("an existing output is refused, the source is not an output")
    func refusals() throws {
        let dir = try TemporaryDirectory()
        let source = try partitioned(dir)
        #expect(throws: FedRecError.self) {
            _ = try ValidationSplit.run(source: source, output: source, split: .leaveLastOut, seed: 0)
        }
        #expect(throws: FedRecError.self) {
            _ = try ValidationSplit.run(source: dir.path + "/missing", output: dir.path + "/v", split: .leaveLastOut, seed: 0)
        }
    }
}
