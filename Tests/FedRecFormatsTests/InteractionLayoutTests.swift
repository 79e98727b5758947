import Testing
import FedRecTestSupport
@testable import FedRecFormats
import FedRecSupport

@Suite("one-user-per-line lists and Jester's matrix")
struct InteractionLayoutTests {
    func read(_ text: String, layout: InteractionLayout, scale: RatingScale = .init(), into log: inout RatingsLog) throws -> RatingsFormat {
        var copy = text
        return try copy.withUTF8 {
            try RatingsReader.read(bytes: UnsafeRawBufferPointer($0), path: "r", columns: .init(), scale: scale, layout: layout, into: &log)
        }
    }

    @Test("lists: every item an event of rating 1, its time its position on the user's lines")
    func lists() throws {
        var log = RatingsLog()
        // Runs of spaces, a trailing space, a user with no item, CRLF, the same user on
        // two lines: positions continue.
        let format = try read("7 3 1  2 \r\n9\n8 1\n7 5\n", layout: .lists, into: &log)
        #expect(format.layout == .lists && format.delimiter == .space)
        #expect(log.users.ids == ["7", "9", "8"])
        #expect(log.user == [0, 0, 0, 2, 0])
        #expect(log.items.ids == ["3", "1", "2", "5"])
        #expect(log.item == [0, 1, 2, 1, 3])
        #expect(log.time == [0, 1, 2, 0, 3])
        #expect(log.rating == [1, 1, 1, 1, 1] && !log.hasRatings && log.hasTimes)
        // A second file (a test split) continues each user's positions.
        _ = try read("8 4\n", layout: .lists, into: &log)
        #expect(log.time.last == 1)
    }

    @Test("lists: a tab or a control byte is refused with its line; no item at all is empty input")
    func listErrors() throws {
        var log = RatingsLog()
        let tab = #expect(throws: FedRecError.self) { try read("1 2\n3\t4\n", layout: .lists, into: &log) }
        #expect(tab?.failure == .badData)
        #expect(tab?.description.hasPrefix("r: line 2: holds a tab") == true)
        var other = RatingsLog()
        let control = #expect(throws: FedRecError.self) { try read("1 2\u{1}\n", layout: .lists, into: &other) }
        #expect(control?.description == "r: line 1: holds the control byte 0x1")
        var empty = RatingsLog()
        let none = #expect(throws: FedRecError.self) { try read("1\n2\n\n", layout: .lists, into: &empty) }
        #expect(none?.failure == .emptyInput)
    }

    @Test("Jester: 99 is not rated, the line is the user and the column the joke")
    func jester() throws {
        var log = RatingsLog()
        let format = try read("2,-7.82,99,8.79\n3,1.5,-10,10\n\n1,99,99,0\n", layout: .jester, into: &log)
        #expect(format.layout == .jester)
        #expect(log.users.ids == ["1", "2", "3"])
        #expect(log.user == [0, 0, 1, 1, 1, 2])
        #expect(log.item.map { log.items.ids[Int($0)] } == ["1", "3", "1", "2", "3", "3"])
        #expect(log.rating == [-7.82, 8.79, 1.5, -10, 10, 0])
        #expect(log.hasRatings && !log.hasTimes)
    }

    @Test("Jester: a wrong count, width or rating is refused with its line", arguments: [
        ("3,1,2,99\n", "r: line 1: says 3 jokes rated but rates 2"),
        ("1,1,99\n1,1\n", "r: line 2: has 2 fields where the first line has 3"),
        ("1,10.5,99\n", "r: line 1: joke 1: rating 10.5 is outside the scale [-10.0, 10.0] (99 marks a joke not rated)"),
        ("1,x,99\n", "r: line 1: joke 1: rating \"x\" is not a number"),
        ("-1,99,99\n", "r: line 1: the number of jokes rated, \"-1\", is not a count"),
    ])
    func jesterErrors(text: String, message: String) throws {
        var log = RatingsLog()
        let error = #expect(throws: FedRecError.self) { try read(text, layout: .jester, into: &log) }
        #expect(error?.failure == .badData)
        #expect(error?.description == message)
    }
}

/// `printf 'u1 a b c\nu2 b\n' | gzip -9n | xxd -i`, and the same through `zstd -19`,
/// `xz -9` and `bzip2 -9` (the reference compressors, not libarchive's writers).
let compressedListText = "u1 a b c\nu2 b\n"
let compressedListVectors: [(InputCompression, [UInt8])] = [
    (.gzip, [0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0x2b, 0x35, 0x54, 0x48, 0x54, 0x48, 0x52, 0x48, 0xe6, 0x2a,
             0x35, 0x52, 0x48, 0xe2, 0x02, 0x00, 0xb1, 0x46, 0xcb, 0xd7, 0x0e, 0x00, 0x00, 0x00]),
    (.zstd, [0x28, 0xb5, 0x2f, 0xfd, 0x24, 0x0e, 0x71, 0x00, 0x00, 0x75, 0x31, 0x20, 0x61, 0x20, 0x62, 0x20, 0x63, 0x0a, 0x75, 0x32,
             0x20, 0x62, 0x0a, 0x54, 0x06, 0x44, 0xe6]),
    (.xz, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0x00, 0x04, 0xe6, 0xd6, 0xb4, 0x46, 0x02, 0x00, 0x21, 0x01, 0x1c, 0x00, 0x00, 0x00,
           0x10, 0xcf, 0x58, 0xcc, 0x01, 0x00, 0x0d, 0x75, 0x31, 0x20, 0x61, 0x20, 0x62, 0x20, 0x63, 0x0a, 0x75, 0x32, 0x20, 0x62,
           0x0a, 0x00, 0x00, 0x00, 0x69, 0x67, 0xd2, 0xef, 0x07, 0xcc, 0xe7, 0xd7, 0x00, 0x01, 0x26, 0x0e, 0x08, 0x1b, 0xe0, 0x04,
           0x1f, 0xb6, 0xf3, 0x7d, 0x01, 0x00, 0x00, 0x00, 0x00, 0x04, 0x59, 0x5a]),
    (.bzip2, [0x42, 0x5a, 0x68, 0x39, 0x31, 0x41, 0x59, 0x26, 0x53, 0x59, 0x05, 0x42, 0xd2, 0xa5, 0x00, 0x00, 0x06, 0x59, 0x80, 0x00,
              0x10, 0x40, 0x00, 0x30, 0x00, 0x38, 0x00, 0x02, 0x00, 0x20, 0x00, 0x31, 0x0c, 0x08, 0x12, 0x83, 0x26, 0x8f, 0x93, 0xe5,
              0x08, 0x10, 0xf1, 0x77, 0x24, 0x53, 0x85, 0x09, 0x00, 0x54, 0x2d, 0x2a, 0x50]),
]

@Suite("compressed text inputs, told by their magic numbers")
struct CompressedInputTests {
    func write(_ bytes: [UInt8], in dir: TemporaryDirectory, name: String) throws -> String {
        let path = dir.path + "/" + name
        try writeAtomically(bytes, to: path)
        return path
    }

    @Test("gzip, zstd, xz and bzip2 streams decompress to the reference text", arguments: 0..<4)
    func decompresses(index: Int) throws {
        let (compression, bytes) = compressedListVectors[index]
        let dir = try TemporaryDirectory()
        let path = try write(bytes, in: dir, name: "lists.txt.any")
        let (file, found) = try CompressedInput.open(path: path)
        #expect(found == compression)
        #expect(file.withBytes { String(decoding: $0, as: UTF8.self) } == compressedListText)
    }

    @Test("CRC-32's check value (ISO 3309): \"123456789\" → 0xCBF43926")
    func crcCheckValue() {
        var text = "123456789"
        #expect(text.withUTF8 { CRC32.checksum(UnsafeRawBufferPointer($0)) } == 0xCBF4_3926)
    }

    @Test("a gzip file of two members (cat a.gz b.gz) reads as both")
    func twoMembers() throws {
        let dir = try TemporaryDirectory()
        let gzip = compressedListVectors[0].1
        let path = try write(gzip + gzip, in: dir, name: "two.gz")
        let (file, _) = try CompressedInput.open(path: path)
        #expect(file.withBytes { String(decoding: $0, as: UTF8.self) } == compressedListText + compressedListText)
    }

    @Test("plain bytes are mapped as they are")
    func plain() throws {
        let dir = try TemporaryDirectory()
        let path = try write(Array(compressedListText.utf8), in: dir, name: "lists.txt")
        let (file, found) = try CompressedInput.open(path: path)
        #expect(found == nil && file.withBytes { Array($0) } == Array(compressedListText.utf8))
    }

    @Test("a truncated or damaged stream is corrupt, naming the file; expanding past the limit is refused")
    func damaged() throws {
        let dir = try TemporaryDirectory()
        let zstd = compressedListVectors[1].1
        let truncated = try write(Array(zstd.prefix(zstd.count - 6)), in: dir, name: "cut.zst")
        let cut = #expect(throws: FedRecError.self) { _ = try CompressedInput.open(path: truncated) }
        #expect(cut?.failure == .corrupt)
        #expect(cut?.description.hasPrefix(truncated + ": zstd stream") == true)
        var flipped = compressedListVectors[0].1
        flipped[flipped.count - 5] ^= 0xFF  // the gzip CRC-32
        let crc = try write(flipped, in: dir, name: "crc.gz")
        let crcError = #expect(throws: FedRecError.self) { _ = try CompressedInput.open(path: crc) }
        #expect(crcError?.description == crc + ": gzip stream is damaged: its CRC-32 does not match the decompressed bytes")
        let whole = try write(zstd, in: dir, name: "whole.zst")
        let bomb = #expect(throws: FedRecError.self) { _ = try CompressedInput.open(path: whole, limit: 4) }
        #expect(bomb?.failure == .badData)
    }
}
