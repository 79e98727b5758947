import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
@testable import FedRecSupport

@Suite("temporary files: names, and the stale ones of dead processes")
struct TemporaryFilesTests {
    /// The PID of a process that has exited (and been reaped).
    static func deadPID() throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "exit 0"]
        try process.run()
        process.waitUntilExit()
        return process.processIdentifier
    }

    @Test("a temporary name is hidden, beside its target, with our PID; parse reads it back and refuses other names")
    func names() throws {
        let path = TemporaryFiles.path(beside: "runs/a b/model-0001.safetensors")
        #expect(path.hasPrefix("runs/a b/.model-0001.safetensors.\(getpid())."))
        let name = String(path.split(separator: "/").last!)
        let parsed = try #require(TemporaryFiles.parse(name))
        #expect(parsed.target == "model-0001.safetensors" && parsed.pid == getpid() && !parsed.aside)
        #expect(TemporaryFiles.path(beside: "ds/").hasPrefix("./.ds.") && TemporaryFiles.path(beside: "/x").hasPrefix("/.x."))
        let aside = try #require(TemporaryFiles.parse(".ds.v2.12.k3.tmp.old"))
        #expect(aside.target == "ds.v2" && aside.pid == 12 && aside.aside)
        for other in ["model.safetensors", ".hidden", ".m.12.ABC.tmp", ".m.x1.abc.tmp", ".12.abc.tmp", "m.12.abc.tmp",
                      ".m.12..tmp", ".m.99999999999.abc.tmp", ".m.0.abc.tmp", ".m.12.abc.tmpx"] {
            #expect(TemporaryFiles.parse(other) == nil, "\(other)")
        }
    }

    @Test("removeStale removes our pattern of dead PIDs only (files and directories), keeps live ones and other names, restores a lone moved-aside directory")
    func stale() throws {
        let dir = try TemporaryDirectory()
        let dead = try Self.deadPID()
        let manager = FileManager.default
        func touch(_ name: String) throws {
            guard manager.createFile(atPath: dir.path + "/" + name, contents: Data("x".utf8)) else { throw FedRecError(.io, "cannot create \(name)") }
        }
        let deadFile = ".m.safetensors.\(dead).abc.tmp"
        let liveFile = ".m.safetensors.1.abc.tmp"  // init: alive
        let mineFile = ".m.safetensors.\(getpid()).zz.tmp"  // this process: alive
        let others = [".hidden", "m.safetensors", ".m.safetensors.\(dead).ABC.tmp", ".m.\(dead).tmp"]
        for name in [deadFile, liveFile, mineFile] + others { try touch(name) }
        // A dead partitioner's temporary dataset directory, with content.
        let deadDirectory = ".ds.\(dead).k1.tmp"
        try manager.createDirectory(atPath: dir.path + "/" + deadDirectory + "/shards", withIntermediateDirectories: true)
        try touch(deadDirectory + "/shards/shard-00000.tar")
        // Moved aside for a replacement that exists (garbage), and for one that does not (the only copy).
        try manager.createDirectory(atPath: dir.path + "/old", withIntermediateDirectories: true)
        try manager.createDirectory(atPath: dir.path + "/.old.\(dead).k2.tmp.old", withIntermediateDirectories: true)
        try manager.createDirectory(atPath: dir.path + "/.lone.\(dead).k3.tmp.old", withIntermediateDirectories: true)
        try touch(".lone.\(dead).k3.tmp.old/dataset.json")

        let removed = TemporaryFiles.removeStale(in: dir.path)
        #expect(Set(removed) == [deadFile, deadDirectory, ".old.\(dead).k2.tmp.old", ".lone.\(dead).k3.tmp.old"])
        #expect(try dir.listing() == ([liveFile, mineFile, "lone", "old"] + others).sorted())
        #expect(manager.fileExists(atPath: dir.path + "/lone/dataset.json"))
        #expect(TemporaryFiles.removeStale(in: dir.path).isEmpty)
        #expect(TemporaryFiles.removeStale(in: dir.path + "/missing").isEmpty)
    }

    @Test("an AtomicOutput removes the stale temporaries of dead processes in its directory")
    func atomicOutputSweeps() throws {
        let dir = try TemporaryDirectory()
        let dead = try Self.deadPID()
        let stale = ".out.\(dead).q.tmp"
        #expect(FileManager.default.createFile(atPath: dir.path + "/" + stale, contents: Data("half".utf8)))
        try writeAtomically("whole", to: dir.path + "/out", durable: false)
        #expect(try dir.listing() == ["out"])
    }
}
