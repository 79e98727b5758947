import Foundation
import Testing
import FedRecTestSupport
import FedRecCore
import FedRecSupport

/// Counts a PNG's pixels (8-bit RGB or RGBA, not interlaced): how many are not white and
/// how many are the report's first series colour (#0072B2), printed as "NONWHITE BLUE
/// TOTAL". Decoded with Python's zlib, independently of anything fedrec or the browser does.
private let pngPixels = #"""
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, header = 8, b"", None
while pos < len(data):
    length, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + length]
    if kind == b"IHDR": header = struct.unpack(">IIBBBBB", body)
    if kind == b"IDAT": idat += body
    pos += 12 + length
width, height, depth, colour, _, _, interlace = header
assert depth == 8 and colour in (2, 6) and interlace == 0, header
bpp = 3 if colour == 2 else 4
raw, stride, prev, rows, i = zlib.decompress(idat), width * bpp, bytearray(width * bpp), [], 0
for _ in range(height):
    kind, line = raw[i], bytearray(raw[i + 1:i + 1 + stride]); i += 1 + stride
    for x in range(stride):
        a = line[x - bpp] if x >= bpp else 0
        b = prev[x]; c = prev[x - bpp] if x >= bpp else 0
        if kind == 1: line[x] = (line[x] + a) & 255
        elif kind == 2: line[x] = (line[x] + b) & 255
        elif kind == 3: line[x] = (line[x] + (a + b) // 2) & 255
        elif kind == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(line); prev = line
nonwhite = blue = 0
for line in rows:
    for x in range(0, stride, bpp):
        r, g, b = line[x], line[x + 1], line[x + 2]
        if (r, g, b) != (255, 255, 255): nonwhite += 1
        if abs(r - 0) < 24 and abs(g - 114) < 24 and abs(b - 178) < 24: blue += 1
print(nonwhite, blue, width * height)
"""#

@Suite("fl-report and the round records fl-rounds keeps", .enabled(if: onPath("flock") && onPath("bash"), "needs bash and flock (util-linux)"))
struct ReportCommandTests {
    static let base = ["--dim", "4", "--partition", "--split ratio --test-ratio 0.2 --shards 2",
                       "--train", "--algorithm sgd --epochs 1 --reconstruct"]

    /// A three-round explicit run of fl-rounds on the tiny ratings file.
    static func run(in dir: TemporaryDirectory) throws -> String {
        let ratings = try tinyRatings(in: dir.path)
        let run = dir.path + "/run"
        let r = try Tool.run(roundsScript, ["--bin", CommandRunner.directory.path, "--data", ratings, "--run", run, "--rounds", "3"] + base)
        #expect(r.status == 0, "\(r.stderr)")
        return run
    }

    @Test("rounds.jsonl: the clients are the dataset's users and the bytes those of the updates fl-train-local writes; the report is written")
    func roundRecords() throws {
        let dir = try TemporaryDirectory()
        let run = try Self.run(in: dir)
        let lines = try JSONLines.read(path: run + "/rounds.jsonl")
        #expect(lines.map { $0["round"]?.intValue } == [1, 2, 3])
        let users = try Tool.run("fl-inspect", [run + "/dataset", "--field", "users"]).stdout
        #expect(lines.allSatisfy { $0["clients"]?.intValue == Int(users.trimmingCharacters(in: .whitespacesAndNewlines)) })
        #expect(lines.allSatisfy { ($0["seconds"]?.doubleValue ?? -1) > 0 })
        // Round 1's uploads again, by hand: the two shards' updates from model 0.
        var bytes = 0
        for shard in ["shard-00000", "shard-00001"] {
            let out = dir.path + "/\(shard).safetensors"
            let r = try Tool.run("fl-train-local", ["--model", run + "/model-0000.safetensors", "--shard", run + "/dataset/shards/\(shard).tar",
                                                    "-o", out, "--quiet", "--algorithm", "sgd", "--epochs", "1", "--reconstruct"])
            #expect(r.status == 0, "\(r.stderr)")
            bytes += try FileManager.default.attributesOfItem(atPath: out)[.size] as? Int ?? -1
        }
        #expect(lines[0]["upload_bytes"]?.intValue == bytes)
        let page = try String(contentsOfFile: run + "/report.html", encoding: .utf8)
        #expect(page.contains("<h1>fedrec run run</h1>") && page.contains("rmse (lower is better)"))
        // No popularity baseline for explicit ratings.
        #expect(!FileManager.default.fileExists(atPath: run + "/popularity.jsonl"))
    }

    @Test("--text and --json show the logged metrics; bad inputs get one line and their exit code")
    func views() throws {
        let dir = try TemporaryDirectory()
        let run = try Self.run(in: dir)
        let metrics = try JSONLines.read(path: run + "/metrics.jsonl")
        let json = try Tool.run("fl-report", [run, "--json"])
        #expect(json.status == 0, "\(json.stderr)")
        let rows = try json.stdoutLines.map { try JSONValue.parse($0) }
        #expect(rows.map { $0["round"]?.intValue } == [1, 2, 3])
        #expect(rows.map { $0["rmse"] } == metrics.map { $0["rmse"] })
        #expect(rows.allSatisfy { $0["run"]?.stringValue == "run" && $0["clients"] != nil && $0["epsilon"] == nil })
        let text = try Tool.run("fl-report", [run, "--text"])
        #expect(text.status == 0)
        let table = text.stdoutLines.filter { $0.hasPrefix("1 ") || $0.hasPrefix("2 ") || $0.hasPrefix("3 ") }
        #expect(table.count == 3)
        #expect(text.stdout.contains("rmse ") && text.stdout.contains("lower is better"))

        let missing = try Tool.run("fl-report", [dir.path + "/nothing"])
        #expect(missing.status == 66 && missing.stderrLines == ["fl-report: \(dir.path)/nothing: is not a run directory (fl-rounds --run)"])
        let before = try readBytes(run + "/metrics.jsonl")
        let clobber = try Tool.run("fl-report", [run, "-o", run + "/metrics.jsonl"])
        #expect(clobber.status == 64 && clobber.stderrLines.count == 1, "\(clobber.stderr)")
        #expect(try readBytes(run + "/metrics.jsonl") == before)
        let full = try Tool.run("fl-report", [run, "-o", "/dev/full"])
        #expect(full.status == 74 && full.stderrLines == ["fl-report: /dev/full: write failed: No space left on device"], "\(full.stderr)")
    }

    @Test("the page loads in a real headless browser without console errors and draws its charts",
          .enabled(if: onPath("chromium") && onPath("python3"), "needs Debian's chromium and python3 (make test installs them)"))
    func browser() throws {
        let dir = try TemporaryDirectory()
        let run = try Self.run(in: dir)
        let profile = dir.path + "/profile", shot = dir.path + "/shot.png"
        let flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=" + profile,
                     "--enable-logging=stderr", "--v=0", "--hide-scrollbars", "--window-size=1200,1400"]
        let page = "file://" + run + "/report.html"
        let chromium = try #require(pathOf("chromium"))
        let dom = try Tool.run(chromium, flags + ["--dump-dom", page])
        #expect(dom.status == 0, "\(dom.stderr)")
        // rmse, mae; clients, MB, seconds: five charts, each an SVG in the parsed page.
        #expect(dom.stdout.components(separatedBy: "<svg ").count - 1 == 5)
        let consoleLines = dom.stderrLines.filter { $0.contains(":CONSOLE") }
        #expect(consoleLines.isEmpty, "\(consoleLines)")
        let screenshot = try Tool.run(chromium, flags + ["--screenshot=" + shot, page])
        #expect(screenshot.status == 0, "\(screenshot.stderr)")
        #expect(!screenshot.stderrLines.contains { $0.contains(":CONSOLE") })
        let script = dir.path + "/pixels.py"
        try pngPixels.write(toFile: script, atomically: true, encoding: .utf8)
        let pixels = try Tool.run(try #require(pathOf("python3")), [script, shot])
        #expect(pixels.status == 0, "\(pixels.stderr)")
        let counts = pixels.stdout.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        try #require(counts.count == 3)
        // Not blank: text, frames and grid cover a few per cent of the page, and the run's
        // lines and points are drawn in its colour.
        #expect(Double(counts[0]) / Double(counts[2]) > 0.02, "\(counts)")
        #expect(counts[1] > 500, "\(counts)")
    }
}
