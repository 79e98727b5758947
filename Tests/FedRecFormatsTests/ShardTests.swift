import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecFormats
import FedRecSupport

/// Runs a program; returns its exit status and stdout.
@discardableResult
func run(_ program: String, _ arguments: [String], in directory: String? = nil) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [program] + arguments
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

func toolAvailable(_ name: String) -> Bool {
    (try? run("sh", ["-c", "command -v \(name)"]).status) == 0
}

let tarAvailable = toolAvailable("tar")

func readShard(_ path: String) throws -> [ShardEntry] {
    let reader = try ShardReader(path: path)
    var entries = [ShardEntry]()
    while let entry = try reader.next() { entries.append(entry) }
    return entries
}

func shardError(_ path: String) -> FedRecError? {
    #expect(throws: FedRecError.self) { try readShard(path) }
}

@Suite("tar shards through libarchive")
struct ShardTests {
    static let entries: [(String, [UInt8])] = [
        ("client-0.npy", Npy.encode(int32s: [1, 2, 3])),
        ("nested/client-1.npy", Npy.encode(NpyTests.sample)),
        ("empty.bin", []),
    ]

    static func writeShard(_ path: String, compression: ShardCompression? = nil, entries: [(String, [UInt8])] = entries) throws {
        let writer = try ShardWriter(path: path, compression: compression)
        for (name, bytes) in entries { try writer.add(name: name, bytes: bytes) }
        try writer.commit()
    }

    @Test("compression is chosen from the extension")
    func compressionFromPath() {
        #expect(ShardCompression(path: "a.tar.gz") == .gzip)
        #expect(ShardCompression(path: "a.TGZ") == .gzip)
        #expect(ShardCompression(path: "dir/a.tar.zst") == .zstd)
        #expect(ShardCompression(path: "a.tzst") == .zstd)
        #expect(ShardCompression(path: "a.tar") == .none)
        #expect(ShardCompression(path: "-") == .none)
    }

    @Test("three files round-trip", arguments: ["s.tar", "s.tar.gz", "s.tar.zst"])
    func roundTrip(name: String) throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/" + name
        try Self.writeShard(path)
        #expect(try dir.listing() == [name])  // no temporary file left
        let read = try readShard(path)
        #expect(read.map(\.name) == Self.entries.map(\.0))
        #expect(read.map(\.bytes) == Self.entries.map(\.1))
    }

    @Test("GNU tar lists and extracts the same bytes", .enabled(if: tarAvailable, "GNU tar is not installed"), arguments: ["s.tar", "s.tar.gz"])
    func gnuTar(name: String) throws { try checkWithGNUTar(name) }

    @Test("GNU tar lists and extracts the same bytes of a zstd shard",
          .enabled(if: tarAvailable && toolAvailable("zstd"), "GNU tar or zstd is not installed"))
    func gnuTarZstd() throws { try checkWithGNUTar("s.tar.zst") }

    func checkWithGNUTar(_ name: String) throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/" + name
        try Self.writeShard(path)
        let listing = try run("tar", ["tf", path])
        #expect(listing.status == 0)
        #expect(listing.output == Self.entries.map { $0.0 + "\n" }.joined())
        let out = dir.path + "/x"
        try makeDirectories(out)
        #expect(try run("tar", ["xf", path, "-C", out]).status == 0)
        for (entry, bytes) in Self.entries {
            #expect(try readBytes(out + "/" + entry) == bytes)
        }
        let verbose = try run("tar", ["tvf", path, "--numeric-owner"])
        #expect(verbose.status == 0 && !verbose.output.isEmpty)
        #expect(verbose.output.split(separator: "\n").allSatisfy { $0.hasPrefix("-rw-r--r-- 0/0") && $0.contains("1970-01-01") })
    }

    @Test("the same entries give bit-identical shards", arguments: ["d.tar", "d.tar.gz", "d.tar.zst"])
    func deterministic(name: String) throws {
        let dir1 = try TemporaryDirectory(), dir2 = try TemporaryDirectory()
        let long = String(repeating: "long-directory-name/", count: 8) + "é-client.npy"  // needs a pax header
        let entries = Self.entries + [(long, [9, 9, 9])]
        try Self.writeShard(dir1.path + "/" + name, entries: entries)
        try Self.writeShard(dir2.path + "/" + name, entries: entries)
        let first = try readBytes(dir1.path + "/" + name)
        #expect(first == (try readBytes(dir2.path + "/" + name)))
        #expect(try readShard(dir1.path + "/" + name).last?.name == long)
        if name.hasSuffix(".gz") {
            #expect(Array(first[0..<2]) == [0x1F, 0x8B])
            #expect(Array(first[4..<8]) == [0, 0, 0, 0])  // no mtime in the gzip header
        }
        if name.hasSuffix(".tar") {
            #expect(first.count % 512 == 0)
            #expect(!String(decoding: first, as: UTF8.self).contains("\(getpid())"))
        }
    }

    @Test("GNU tar reads a long non-ASCII name from its pax header", .enabled(if: tarAvailable, "GNU tar is not installed"))
    func gnuTarLongName() throws {
        let dir = try TemporaryDirectory()
        let long = String(repeating: "long-directory-name/", count: 8) + "é-client.npy"
        try Self.writeShard(dir.path + "/d.tar", entries: Self.entries + [(long, [9, 9, 9])])
        let listing = try run("tar", ["tf", dir.path + "/d.tar"])
        #expect(listing.status == 0)
        #expect(listing.output.split(separator: "\n").last.map(String.init) == long)
    }

    @Test("a thousand small entries stream through")
    func manyEntries() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/many.tar.zst"
        let writer = try ShardWriter(path: path)
        for i in 0..<1000 { try writer.add(name: "c\(i).npy", bytes: Npy.encode(int32s: [Int32(i)])) }
        try writer.commit()
        let reader = try ShardReader(path: path)
        var count = 0
        while let entry = try reader.next() {
            #expect(entry.name == "c\(count).npy")
            #expect(try Npy.int32s(decodeNpy(entry.bytes), file: entry.name) == [Int32(count)])
            count += 1
        }
        #expect(count == 1000)
        #expect(try reader.next() == nil)
    }

    @Test("directories in a tar made by GNU tar are skipped", .enabled(if: tarAvailable, "GNU tar is not installed"))
    func skipsDirectories() throws {
        let dir = try TemporaryDirectory()
        try makeDirectories(dir.path + "/in/sub")
        try writeAtomically([1, 2], to: dir.path + "/in/sub/a.bin")
        #expect(try run("tar", ["czf", "../g.tgz", "."], in: dir.path + "/in").status == 0)
        let read = try readShard(dir.path + "/g.tgz")
        #expect(read.map(\.name) == ["./sub/a.bin"])
        #expect(read.first?.bytes == [1, 2])
    }

    @Test("truncated, random and empty inputs are refused by class", arguments: ["t.tar", "t.tar.gz", "t.tar.zst"])
    func badInputs(name: String) throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/" + name
        let big = [UInt8]((0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 7) })
        try Self.writeShard(path, entries: [("a.bin", big), ("b.bin", big)])
        let whole = try readBytes(path)
        try writeAtomically(Array(whole.prefix(whole.count * 2 / 3)), to: path)
        let truncated = shardError(path)
        #expect(truncated?.failure == .corrupt)
        #expect(truncated?.file == path)
        #expect(truncated?.message.lowercased().contains("truncated") == true)  // libarchive's words

        try writeAtomically((0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 7919 &+ 13) }, to: path)
        let random = shardError(path)
        #expect(random?.failure == .corrupt)
        #expect(random?.message.contains("Unrecognized archive format") == true)

        try writeAtomically([], to: path)
        #expect(shardError(path)?.failure == .emptyInput)
    }

    @Test("missing inputs and directories are no-input errors")
    func missingInputs() throws {
        let dir = try TemporaryDirectory()
        #expect(shardError(dir.path + "/absent.tar")?.failure == .noInput)
        #expect(shardError(dir.path)?.failure == .noInput)
    }

    @Test("an uncreatable output is cannotCreate; a dropped writer leaves nothing")
    func writeFailures() throws {
        let dir = try TemporaryDirectory()
        let error = #expect(throws: FedRecError.self) { try ShardWriter(path: dir.path + "/missing/s.tar.gz") }
        #expect(error?.failure == .cannotCreate)
        #expect(try dir.listing() == [])

        do {
            let writer = try ShardWriter(path: dir.path + "/dropped.tar.zst")
            try writer.add(name: "a", bytes: [1, 2, 3])
            #expect(try dir.listing().count == 1)  // the hidden temporary file
        }
        #expect(try dir.listing() == [])

        let writer = try ShardWriter(path: dir.path + "/bad.tar")
        #expect(throws: FedRecError.self) { try writer.add(name: "", bytes: []) }
        #expect(throws: FedRecError.self) { try writer.add(name: "/etc/passwd", bytes: []) }
        try writer.commit()
        #expect(throws: FedRecError.self) { try writer.add(name: "late", bytes: []) }
        #expect(try readShard(dir.path + "/bad.tar").isEmpty)
    }

    @Test("an explicit compression overrides the extension")
    func explicitCompression() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/plain-name.bin"
        try Self.writeShard(path, compression: .gzip)
        #expect(Array(try readBytes(path).prefix(2)) == [0x1F, 0x8B])
        #expect(try readShard(path).count == 3)
    }

    @Test("`-` reads stdin; an empty stdin is an empty-input error")
    func readsStdin() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/in.tar.gz"
        try Self.writeShard(path)
        func withStdin<T>(from file: String, _ body: () throws -> T) throws -> T {
            let saved = dup(STDIN_FILENO)
            let fd = open(file, O_RDONLY)
            dup2(fd, STDIN_FILENO)
            close(fd)
            defer {
                dup2(saved, STDIN_FILENO)
                close(saved)
            }
            return try body()
        }
        let read = try withStdin(from: path) { try readShard("-") }
        #expect(read.map(\.bytes) == Self.entries.map(\.1))
        let error = try withStdin(from: "/dev/null") { shardError("-") }
        #expect(error?.failure == .emptyInput)
        #expect(error?.file == "-")
    }
}
