import Foundation
import Testing
import FedRecTestSupport
import FedRecCore
import FedRecSupport

/// Commands stopped by a signal just before their output appears (the test hook
/// `FEDREC_TEST_SIGNAL_BEFORE_COMMIT` stops them there, temporary file written).
@Suite("interrupted commands leave no temporary files")
struct InterruptedCommandTests {
    /// Hidden temporaries of our pattern anywhere under `path`.
    static func temporaries(under path: String) -> [String] {
        let all = FileManager.default.enumerator(atPath: path)?.compactMap { $0 as? String } ?? []
        return all.filter { TemporaryFiles.parse(String($0.split(separator: "/").last ?? "")) != nil }
    }

    @Test("SIGINT, SIGTERM or SIGHUP during fl-partition and fl-init: the temporaries go, the process dies of the signal, no output", arguments: ["INT", "TERM", "HUP"])
    func signals(signal: String) throws {
        let dir = try TemporaryDirectory()
        let number: Int32 = ["INT": SIGINT, "TERM": SIGTERM, "HUP": SIGHUP][signal]!
        let hook = ["FEDREC_TEST_SIGNAL_BEFORE_COMMIT": signal]
        let partition = try Tool.run("fl-partition", [sampleRatings, "-o", "ds", "--shards", "2"], in: dir.path, environment: hook)
        #expect(partition.signaled && partition.status == number, "\(partition.status) \(partition.stderr)")
        #expect(try dir.listing().isEmpty)
        #expect(try Tool.run("fl-partition", [sampleRatings, "-o", "ds", "--shards", "2"], in: dir.path).status == 0)
        let initial = try Tool.run("fl-init", ["--dataset", "ds", "--dim", "4", "-o", "m0.safetensors"], in: dir.path, environment: hook)
        #expect(initial.signaled && initial.status == number)
        #expect(try dir.listing() == ["ds"] && Self.temporaries(under: dir.path).isEmpty)
    }

    @Test("after a SIGKILL the temporary stays; the next run of a command in that directory removes it")
    func kill() throws {
        let dir = try TemporaryDirectory()
        let hook = ["FEDREC_TEST_SIGNAL_BEFORE_COMMIT": "KILL"]
        let partition = try Tool.run("fl-partition", [sampleRatings, "-o", "ds", "--shards", "2"], in: dir.path, environment: hook)
        #expect(partition.signaled && partition.status == SIGKILL)
        let left = try dir.listing()
        #expect(left.count == 1 && TemporaryFiles.parse(left[0])?.target == "ds", "\(left)")
        #expect(try Tool.run("fl-partition", [sampleRatings, "-o", "ds", "--shards", "2"], in: dir.path).status == 0)
        #expect(try dir.listing() == ["ds"])

        let initial = try Tool.run("fl-init", ["--dataset", "ds", "--dim", "4", "-o", "m0.safetensors"], in: dir.path, environment: hook)
        #expect(initial.signaled && initial.status == SIGKILL)
        #expect(try dir.listing().count == 2 && Self.temporaries(under: dir.path).count == 1)
        #expect(try Tool.run("fl-init", ["--dataset", "ds", "--dim", "4", "-o", "m0.safetensors"], in: dir.path).status == 0)
        #expect(try dir.listing() == ["ds", "m0.safetensors"] && Self.temporaries(under: dir.path).isEmpty)
    }
}
