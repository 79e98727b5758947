import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecSupport

/// The inode number of a file (to tell a rename from a copy).
func inode(_ path: String) -> UInt64? {
    var info = stat()
    return stat(path, &info) == 0 ? UInt64(info.st_ino) : nil
}

@Suite("AtomicOutput: a temporary file beside the destination, renamed into place")
struct AtomicOutputTests {
    /// More than the 64 KiB buffer, so bytes reach the temporary file before commit.
    static let payload = [UInt8]((0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })

    @Test("before commit only a hidden temporary beside the destination holds the bytes; commit renames it")
    func renameOnCommit() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/out.bin"
        try writeAtomically("old\n", to: path)
        let output = try AtomicOutput(path: path)
        try output.write(contentsOf: Self.payload)
        let listing = try dir.listing()
        #expect(listing.count == 2 && listing.contains("out.bin"))
        let temporary = try #require(listing.first { $0 != "out.bin" })
        #expect(temporary.hasPrefix(".out.bin.\(getpid()).") && temporary.hasSuffix(".tmp"), "\(temporary)")
        #expect(try readBytes(path) == Array("old\n".utf8))  // the destination is untouched so far
        let temporaryInode = inode(dir.path + "/" + temporary)
        try output.commit()
        #expect(try dir.listing() == ["out.bin"])
        #expect(try readBytes(path) == Self.payload)
        #expect(temporaryInode != nil && inode(path) == temporaryInode)  // renamed, not copied
    }

    @Test("an output dropped or abandoned before commit leaves the original as it was and no temporary")
    func failureLeavesOriginal() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/model.safetensors"
        try writeAtomically("original", to: path)
        do {
            let output = try AtomicOutput(path: path)
            try output.write(contentsOf: Self.payload)
            #expect(try dir.listing().count == 2)
        }  // dropped: an error thrown half way does this
        #expect(try dir.listing() == ["model.safetensors"])
        let output = try AtomicOutput(path: path)
        try output.write(contentsOf: Self.payload)
        output.abandon()
        output.abandon()  // twice is harmless
        #expect(try dir.listing() == ["model.safetensors"])
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "original")
        // A new file that is never committed never appears at all.
        do { _ = try AtomicOutput(path: dir.path + "/new") }
        #expect(try dir.listing() == ["model.safetensors"])
    }

    @Test("a rename that fails (a directory in the way) is cannotCreate: the directory kept, no temporary")
    func failedRename() throws {
        let dir = try TemporaryDirectory()
        try makeDirectories(dir.path + "/taken")
        try writeAtomically("keep", to: dir.path + "/taken/inside")
        let output = try AtomicOutput(path: dir.path + "/taken")
        try output.write("bytes")
        let error = #expect(throws: FedRecError.self) { try output.commit() }
        #expect(error?.failure == .cannotCreate && error?.file == dir.path + "/taken")
        #expect(try dir.listing() == ["taken"])
        #expect(try String(contentsOfFile: dir.path + "/taken/inside", encoding: .utf8) == "keep")
    }

    @Test("a device or FIFO is written as a stream, never replaced: /dev/null stays a device, /dev/full is an I/O error, a FIFO gets the bytes")
    func streams() throws {
        func isCharacterDevice(_ path: String) -> Bool {
            var info = stat()
            return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFCHR
        }
        try writeAtomically("discarded", to: "/dev/null")
        #expect(isCharacterDevice("/dev/null"))
        let full = #expect(throws: FedRecError.self) { try writeAtomically(Self.payload, to: "/dev/full") }
        #expect(full?.failure == .io && full?.file == "/dev/full")
        #expect(isCharacterDevice("/dev/full"))
        let dir = try TemporaryDirectory()
        let fifo = dir.path + "/pipe"
        #expect(mkfifo(fifo, 0o600) == 0)
        final class Box: @unchecked Sendable { var bytes: [UInt8] = [] }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        Thread {
            let fd = open(fifo, O_RDONLY)
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = read(fd, &chunk, chunk.count)
                if n <= 0 { break }
                box.bytes += chunk[0..<n]
            }
            close(fd)
            done.signal()
        }.start()
        try writeAtomically(Self.payload, to: fifo)
        done.wait()
        #expect(box.bytes == Self.payload)
        #expect(try dir.listing() == ["pipe"])
    }

    @Test("an output in a missing directory is cannotCreate at once, naming the output")
    func missingDirectory() throws {
        let dir = try TemporaryDirectory()
        let error = #expect(throws: FedRecError.self) { try AtomicOutput(path: dir.path + "/no/such/out") }
        #expect(error?.failure == .cannotCreate && error?.file == dir.path + "/no/such/out")
        #expect(try dir.listing() == [])
    }

    /// Run in a child process (an exit test): it reuses a descriptor number on purpose,
    /// which other tests running in parallel threads must never see.
    @Test("abandon after commit does not close a descriptor that now belongs to another file")
    func abandonAfterCommit() async {
        await #expect(processExitsWith: .success) {
            let dir = try TemporaryDirectory()
            let output = try AtomicOutput(path: dir.path + "/a")
            try output.write("a")
            // The output's descriptor: the /proc/self/fd link to its temporary file.
            var number: Int32?
            for entry in try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
                let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + entry)
                if let target, target.hasSuffix(".tmp"), target.contains("/.a.") { number = Int32(entry) }
            }
            guard let number else { exit(2) }
            try output.commit()
            // Another file takes the number the commit freed.
            let other = open(dir.path + "/b", O_WRONLY | O_CREAT, 0o644)
            guard other >= 0 else { exit(3) }
            if other != number {
                guard dup2(other, number) == number else { exit(4) }
                close(other)
            }
            output.abandon()
            guard fcntl(number, F_GETFD) != -1 else { exit(5) }
        }
    }
}
