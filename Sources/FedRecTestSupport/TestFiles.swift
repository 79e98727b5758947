import Foundation
import FedRecCore
import FedRecSupport
import FedRecData

/// A directory under the system's temporary folder, removed when the value is dropped.
public final class TemporaryDirectory {
    public let path: String

    public init() throws {
        path = NSTemporaryDirectory() + "fedrec-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Names of the files in the directory, sorted.
    public func listing() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: path).sorted()
    }
}

public func readBytes(_ path: String) throws -> [UInt8] {
    Array(try Data(contentsOf: URL(fileURLWithPath: path)))
}

extension String {
    public var trimmingTrailingSpaces: String {
        var s = self
        while s.last == " " { s.removeLast() }
        return s
    }
}

/// The folder that holds the repository (and `shared/` beside it): this file is
/// `Sources/FedRecTestSupport/TestFiles.swift` in the repository.
let repositoryParent = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

/// The shared data folder beside the repository (`../shared/data`), or nil when absent.
public func sharedDataPath(_ relative: String) -> String? {
    let root = repositoryParent
    let path = root.appendingPathComponent("shared/data/" + relative).path
    return FileManager.default.fileExists(atPath: path) ? path : nil
}

/// A file in the shared folder beside the repository (`../shared/<relative>`), or nil when
/// absent (tests that need it are disabled with `.enabled(if:)`, so they show as skipped).
public func sharedPath(_ relative: String) -> String? {
    let root = repositoryParent
    let path = root.appendingPathComponent("shared/" + relative).path
    return FileManager.default.fileExists(atPath: path) ? path : nil
}

/// Reads every user of every shard of a dataset directory.
public func readUsers(_ directory: String) throws -> [UserRecord] {
    let manifest = try DatasetManifest.load(directory)
    var users: [UserRecord] = []
    for shard in manifest.shards {
        let reader = try ShardUserReader(path: directory + "/" + shard.file, datasetId: manifest.datasetId)
        while let user = try reader.next() { users.append(user) }
    }
    return users
}

/// z for a two-sided normal tail of 1e-6: P(|Z| > 4.892) = 1.0e-6. A statistical check at
/// this z fails by chance with probability ≈ 1e-6 (CLT); the tests' seeds are fixed, so the
/// outcome is reproducible.
public let zOneInAMillion = 4.892
