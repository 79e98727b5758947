import Testing
import FedRecCore
@testable import FedRecAggregation
@testable import FedRecData
@testable import FedRecEvaluation
@testable import FedRecFormats
@testable import FedRecMechanisms
@testable import FedRecModel
@testable import FedRecPrivacy
@testable import FedRecSupport
@testable import FedRecTraining
@testable import FedRecWire

@Suite("ratings files in MovieLens and named-column formats")
struct RatingsReaderTests {
    func read(_ text: String, columns: RatingsColumns = .init()) throws -> (RatingsLog, RatingsFormat) {
        var log = RatingsLog()
        var copy = text
        let format = try copy.withUTF8 { try RatingsReader.read(bytes: UnsafeRawBufferPointer($0), path: "r", columns: columns, into: &log) }
        return (log, format)
    }

    @Test("u.data: tab-separated, no header")
    func movieLens100K() throws {
        let (log, format) = try read("196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
        #expect(format.delimiter == .tab && !format.header)
        #expect(log.users.ids == ["196", "186"] && log.items.ids == ["242", "302"])
        #expect(log.rating == [3, 3] && log.time == [881_250_949, 891_717_742])
    }

    @Test("ratings.dat: '::'-separated")
    func movieLens1M() throws {
        let (log, format) = try read("1::1193::5::978300760\n1::661::3::978302109\n")
        #expect(format.delimiter == .doubleColon)
        #expect(log.items.ids == ["1193", "661"] && log.rating == [5, 3])
    }

    @Test("ratings.csv with header, CRLF and a byte-order mark")
    func movieLensCSV() throws {
        let (log, format) = try read("\u{FEFF}userId,movieId,rating,timestamp\r\n1,1,4.0,964982703\r\n1,3,4.5,964981247\r\n")
        #expect(format.header && format.delimiter == .comma)
        #expect(log.rating == [4, 4.5] && log.users.ids == ["1"])
    }

    @Test("named columns in any order; no rating column means implicit")
    func namedColumns() throws {
        let (log, _) = try read("when;who;what\n5;alice;x\n7;bob;y\n", columns: RatingsColumns(user: "who", item: "what", time: "when"))
        #expect(log.users.ids == ["alice", "bob"] && log.items.ids == ["x", "y"])
        #expect(log.time == [5, 7] && log.rating == [1, 1] && !log.hasRatings)
    }

    @Test("a line that does not parse is reported with its line number")
    func badLine() throws {
        let error = #expect(throws: FedRecError.self) { try read("1\t2\t3\t4\n1\t3\tfive\t5\n") }
        #expect(error?.failure == .badData)
        #expect(error?.description == "r: line 2: rating \"five\" is not a number")
        let short = #expect(throws: FedRecError.self) { try read("1\t2\t3\t4\n1\t3\n") }
        #expect(short?.description.hasPrefix("r: line 2: expected 4") == true)
        let missing = #expect(throws: FedRecError.self) { try read("a,b\n1,2\n", columns: RatingsColumns(user: "u", item: "b")) }
        #expect(missing?.description.contains("no column named u") == true)
    }

    @Test("empty input and header-only input are refused as empty")
    func empty() throws {
        #expect((#expect(throws: FedRecError.self) { try read("") })?.failure == .emptyInput)
        #expect((#expect(throws: FedRecError.self) { try read("\n  \n") })?.failure == .emptyInput)
        #expect((#expect(throws: FedRecError.self) { try read("userId,movieId,rating\n") })?.failure == .emptyInput)
    }

    @Test("CSV quotes and Latin-1 titles in item files")
    func catalogue() throws {
        let dir = try TemporaryDirectory()
        try writeAtomically("movieId,title,genres\n1,\"Heat, The (1995)\",Action|Crime\n2,Blank (2000),(no genres listed)\n", to: dir.path + "/movies.csv")
        let csv = try ItemCatalogReader.read(path: dir.path + "/movies.csv")
        #expect(csv["1"] == ItemInfo(title: "Heat, The (1995)", genres: ["Action", "Crime"]))
        #expect(csv["2"]?.genres == [])
        // u.item: Latin-1 title, 19 genre flags.
        var line = Array("543|Mis".utf8) + [0xE9] + Array("rables, Les (1995)|01-Jan-1995||http://x|".utf8)
        line += Array("0|0|0|0|0|0|0|0|1|0|0|0|0|0|1|0|0|0|0\n".utf8)
        try writeAtomically(line, to: dir.path + "/u.item")
        let item = try ItemCatalogReader.read(path: dir.path + "/u.item")
        #expect(item["543"] == ItemInfo(title: "Misérables, Les (1995)", genres: ["Drama", "Romance"]))
    }
}
