import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecFormats
import FedRecSupport

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

    @Test("CSV quoting (RFC 4180): a quoted delimiter, a doubled quote, spaces around quotes")
    func quotedDelimiter() throws {
        let text = #"""
            user,item,rating
            "Smith, John",42,4
            "say ""hi""", "x,y" ,5
            plain;id,"7",2

            """#
        let (log, format) = try read(text)
        #expect(format.delimiter == .comma && format.header)
        #expect(log.users.ids == ["Smith, John", "say \"hi\"", "plain;id"])
        #expect(log.items.ids == ["42", "x,y", "7"])
        #expect(log.rating == [4, 5, 2])
        // Semicolon files quote the same way.
        let (semi, _) = try read("user;item\n\"a;b\";1\n")
        #expect(semi.users.ids == ["a;b"] && semi.items.ids == ["1"])
    }

    @Test("CSV quoting: a line break inside quotes stays in the field; later lines keep their numbers")
    func quotedNewline() throws {
        let (log, _) = try read("user,item,rating\r\n\"two\nlines\",1,3\r\n\"crlf\r\nkept\",2,4\r\n8,9,2\r\n")
        #expect(log.users.ids == ["two\nlines", "crlf\r\nkept", "8"])
        #expect(log.items.ids == ["1", "2", "9"] && log.rating == [3, 4, 2])
        // Physical lines: 1 header, 2–3 the first record, 4 the next, 5 the bad one.
        let error = #expect(throws: FedRecError.self) { try read("user,item,rating\n\"a\nb\",1,3\n2,2,4\n3,3,x\n") }
        #expect(error?.description == "r: line 5: rating \"x\" is not a number")
    }

    @Test("CSV quoting that breaks RFC 4180 is refused with the file and the record's first line")
    func badQuotes() throws {
        let cases: [(text: String, says: String)] = [
            ("user,item\n1,2\n\"open,3\n4,5\n", "r: line 3: a quoted field that never closes"),
            ("user,item\n1,2\n\"a\"b,3\n", "r: line 3: text after a closing quote"),
            ("user,item\n1,2\nab\"c,3\n", "r: line 3: a '\"' inside an unquoted field"),
            ("\"user,item\n1,2\n", "r: line 1: a quoted field that never closes"),
        ]
        for c in cases {
            let error = #expect(throws: FedRecError.self, "\(c.text)") { try read(c.text) }
            #expect(error?.failure == .badData)
            #expect(error?.description.hasPrefix(c.says) == true, "\(String(describing: error))")
        }
    }

    @Test("in tab, '|' and '::' files a quote is an ordinary character")
    func quotesInTabFiles() throws {
        let (tab, _) = try read("\"a\t\"b\t3\t1\n")
        #expect(tab.users.ids == ["\"a"] && tab.items.ids == ["\"b"])
        let (dat, _) = try read("1::\"x::5::9\n")
        #expect(dat.items.ids == ["\"x"])
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
