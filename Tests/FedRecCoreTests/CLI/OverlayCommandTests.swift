import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
import FedRecSupport
import FedRecWire

@Suite("overlay checkpoints through the commands", .serialized)
struct OverlayCommandTests {
    @Test("fl-aggregate --checkpoint overlay, then train, eval, inspect and compact as with the standalone model")
    func overlayRound() throws {
        let round = try CommandLineTests.Round()
        let p = round.path
        for (name, layout) in [("s1.safetensors", "standalone"), ("o1.safetensors", "overlay")] {
            let r = try Tool.run("fl-aggregate", ["u0.safetensors", "u1.safetensors", "--model", "m0.safetensors", "-o", name,
                                                  "--checkpoint", layout, "--json"], in: p)
            #expect(r.status == 0 && r.stderr.isEmpty)
            #expect(try JSONValue.parse(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines))["layout"]?.stringValue == layout)
        }
        // Evaluation and the next round's training read the overlay as the standalone model.
        let evals = try ["s1.safetensors", "o1.safetensors"].map {
            try Tool.run("fl-eval", ["--model", $0, "--dataset", "ds", "--reconstruct", "--json"], in: p)
        }
        #expect(evals[0].status == 0 && evals[0].stdout == evals[1].stdout)
        for model in ["s1", "o1"] {
            let r = try Tool.run("fl-train-local", ["--model", model + ".safetensors", "--shard", "ds/shards/shard-00000.tar", "--reconstruct",
                                                    "-o", model + ".u", "--quiet"], in: p)
            #expect(r.status == 0)
        }
        let fromStandalone = try ModelUpdate.sum(paths: [p + "/s1.u"]), fromOverlay = try ModelUpdate.sum(paths: [p + "/o1.u"])
        #expect(fromStandalone.rows == fromOverlay.rows && fromStandalone.rowTensors == fromOverlay.rowTensors)

        let inspect = try Tool.run("fl-inspect", ["o1.safetensors", "--json"], in: p)
        let described = try JSONValue.parse(inspect.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(described["layout"]?.stringValue == "overlay" && described["checksum"]?.stringValue == "ok")
        #expect((described["overlay_rows"]?.intValue ?? 0) > 0)

        let compact = try Tool.run("fl-compact", ["o1.safetensors", "-o", "c1.safetensors"], in: p)
        #expect(compact.status == 0 && compact.stdout.isEmpty)
        #expect(try readBytes(p + "/c1.safetensors") == (try readBytes(p + "/s1.safetensors")))
        let piped = try Tool.run("fl-compact", ["o1.safetensors", "-o", "-"], in: p)
        #expect(piped.status == 0 && Array(piped.stdout.utf8).count > 0)
    }

    @Test("an overlay whose base is gone: one line naming the overlay, exit 66, no output")
    func missingBase() throws {
        let round = try CommandLineTests.Round()
        let p = round.path
        let r = try Tool.run("fl-aggregate", ["u0.safetensors", "u1.safetensors", "--model", "m0.safetensors", "-o", "o1.safetensors",
                                              "--checkpoint", "overlay"], in: p)
        #expect(r.status == 0)
        try FileManager.default.moveItem(atPath: p + "/m0.safetensors", toPath: p + "/elsewhere.safetensors")
        let before = try round.dir.listing()
        for (tool, args) in [
            ("fl-compact", ["o1.safetensors", "-o", "c1.safetensors"]),
            ("fl-eval", ["--model", "o1.safetensors", "--dataset", "ds", "--reconstruct"]),
            ("fl-train-local", ["--model", "o1.safetensors", "--shard", "ds/shards/shard-00000.tar", "--reconstruct", "-o", "u.safetensors"]),
        ] {
            let failed = try Tool.run(tool, args, in: p)
            #expect(failed.status == 66)
            #expect(failed.stderrLines.count == 1)
            #expect(failed.stderr.hasPrefix("\(tool): o1.safetensors: is an overlay on m0.safetensors, which is missing"))
        }
        #expect(try round.dir.listing() == before)
        // Asking for an overlay on stdout is a usage error.
        try FileManager.default.moveItem(atPath: p + "/elsewhere.safetensors", toPath: p + "/m0.safetensors")
        let stdout = try Tool.run("fl-aggregate", ["u0.safetensors", "u1.safetensors", "--model", "m0.safetensors", "-o", "-", "--checkpoint", "overlay"], in: p)
        #expect(stdout.status == 64 && stdout.stdout.isEmpty)
    }
}
