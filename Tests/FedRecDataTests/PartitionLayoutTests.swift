import Foundation
import Testing
import FedRecTestSupport
@testable import FedRecData
import FedRecSupport
import FedRecFormats

@Suite("fl-partition on list and Jester layouts, plain or compressed")
struct PartitionLayoutTests {
    @Test("lists: several training files are one training set, a list test file the test set")
    func listsWithTestFile() throws {
        let dir = try TemporaryDirectory()
        try writeAtomically("0 0 1 2\n1 1 2\n", to: dir.path + "/train.txt")
        try writeAtomically("0 3\n", to: dir.path + "/valid.txt")
        try writeAtomically("0 4 5\n1 0\n", to: dir.path + "/test.txt")
        var options = PartitionOptions(ratings: dir.path + "/train.txt")
        options.moreRatings = [dir.path + "/valid.txt"]
        options.layout = .lists
        options.split = .testFile(dir.path + "/test.txt")
        options.negatives = 0
        let manifest = try Partitioner.run(options, output: dir.path + "/ds")
        #expect(manifest.users == 2 && manifest.items == 6 && manifest.train == 6 && manifest.test == 3)
        #expect(manifest.feedback == "implicit")
        #expect(manifest.details["layout"] == "lists")
        let users = try readUsers(dir.path + "/ds")
        let items = try itemIds(dir.path + "/ds")
        let zero = try #require(users.first { $0.id == "0" })
        #expect(zero.train.items.map { items[Int($0)] }.sorted() == ["0", "1", "2", "3"])
        #expect(zero.test.items.map { items[Int($0)] }.sorted() == ["4", "5"])
    }

    @Test("lists: leave-last-out holds out the last item of the user's line")
    func listsLeaveLastOut() throws {
        let dir = try TemporaryDirectory()
        // Items out of id order on the line: the line's order, not the ids', decides.
        try writeAtomically("1 9 3 7\n2 4 8\n", to: dir.path + "/seq.txt")
        var options = PartitionOptions(ratings: dir.path + "/seq.txt")
        options.layout = .lists
        options.negatives = 0
        _ = try Partitioner.run(options, output: dir.path + "/ds")
        let users = try readUsers(dir.path + "/ds")
        let items = try itemIds(dir.path + "/ds")
        #expect(users.map { $0.test.items.map { items[Int($0)] } } == [["7"], ["8"]])
    }

    @Test("a zstd-compressed input reads as its text and gives the same dataset id")
    func compressed() throws {
        let dir = try TemporaryDirectory()
        try writeAtomically(compressedListZstd, to: dir.path + "/lists.txt.zst")
        try writeAtomically("u1 a b c\nu2 b\n", to: dir.path + "/lists.txt")
        var options = PartitionOptions(ratings: dir.path + "/lists.txt.zst")
        options.layout = .lists
        options.split = .ratio(0.5)
        let zstd = try Partitioner.run(options, output: dir.path + "/a")
        options.ratings = dir.path + "/lists.txt"
        let plain = try Partitioner.run(options, output: dir.path + "/b")
        #expect(zstd.datasetId == plain.datasetId)
        #expect(zstd.users == 2 && zstd.items == 3 && zstd.train + zstd.test == 4)
        #expect(zstd.details["source"]?["compression"] == .array(["zstd"]))
    }

    @Test("Jester: a ratio split per user over the rated jokes, explicit on −10…10")
    func jester() throws {
        let dir = try TemporaryDirectory()
        var text = ""
        for user in 0..<20 {
            let ratings = (1...10).map { joke in (joke + user) % 3 == 0 ? "99" : String(Float(joke - 5) + 0.25) }
            text += "\(ratings.filter { $0 != "99" }.count)," + ratings.joined(separator: ",") + "\n"
        }
        try writeAtomically(text, to: dir.path + "/jester.csv")
        var options = PartitionOptions(ratings: dir.path + "/jester.csv")
        options.layout = .jester
        options.split = .ratio(0.1)
        let manifest = try Partitioner.run(options, output: dir.path + "/ds")
        let rated = text.split(separator: "\n").map { Int($0.split(separator: ",")[0]) ?? 0 }
        #expect(manifest.users == 20 && manifest.items == 10 && manifest.feedback == "explicit")
        #expect(manifest.train + manifest.test == rated.reduce(0, +))
        // Each user holds out round(0.1 · rated) jokes.
        #expect(manifest.test == rated.map { Int((0.1 * Double($0)).rounded()) }.reduce(0, +))
        #expect(manifest.ratingMin == -3.75 && manifest.ratingMax == 5.25)
    }

    @Test("leave-last-out on Jester, which has no times, is refused")
    func jesterNeedsRatio() throws {
        let dir = try TemporaryDirectory()
        try writeAtomically("2,1,2\n", to: dir.path + "/jester.csv")
        var options = PartitionOptions(ratings: dir.path + "/jester.csv")
        options.layout = .jester
        let error = #expect(throws: FedRecError.self) { _ = try Partitioner.run(options, output: dir.path + "/ds") }
        #expect(error?.failure == .usage)
    }

    /// The Gowalla split's published figures (../shared/data/gowalla/README.md).
    @Test("Gowalla as LightGCN publishes it: 29,858 users, 40,981 items, 810,128 + 217,242 pairs",
          .enabled(if: sharedDataPath("gowalla/train.txt.zst") != nil))
    func gowalla() throws {
        let root = try #require(sharedDataPath("gowalla"))
        let dir = try TemporaryDirectory()
        var options = PartitionOptions(ratings: root + "/train.txt.zst")
        options.moreRatings = [root + "/valid.txt.zst"]
        options.layout = .lists
        options.split = .testFile(root + "/test.txt.zst")
        options.negatives = 0
        let manifest = try Partitioner.run(options, output: dir.path + "/ds")
        #expect(manifest.users == 29_858 && manifest.items == 40_981)
        #expect(manifest.train == 810_128 && manifest.test == 217_242)
        #expect(manifest.details["duplicates_removed"] == 0)
    }
}

/// `printf 'u1 a b c\nu2 b\n' | zstd -19 | xxd -i`.
let compressedListZstd: [UInt8] = [
    0x28, 0xb5, 0x2f, 0xfd, 0x24, 0x0e, 0x71, 0x00, 0x00, 0x75, 0x31, 0x20, 0x61, 0x20, 0x62, 0x20, 0x63, 0x0a, 0x75, 0x32,
    0x20, 0x62, 0x0a, 0x54, 0x06, 0x44, 0xe6,
]

/// The raw item ids of a dataset by dense index, from its items.tsv.
func itemIds(_ directory: String) throws -> [String] {
    let text = try String(contentsOfFile: directory + "/items.tsv", encoding: .utf8)
    return text.split(separator: "\n").dropFirst().map { String($0.split(separator: "\t", omittingEmptySubsequences: false)[1]) }
}
