import Foundation
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

/// A directory under the system's temporary folder, removed when the value is dropped.
final class TemporaryDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "fedrec-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Names of the files in the directory, sorted.
    func listing() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: path).sorted()
    }
}

func readBytes(_ path: String) throws -> [UInt8] {
    Array(try Data(contentsOf: URL(fileURLWithPath: path)))
}

extension String {
    var trimmingTrailingSpaces: String {
        var s = self
        while s.last == " " { s.removeLast() }
        return s
    }
}

/// The shared data folder beside the repository (`../shared/data`), or nil when absent.
func sharedDataPath(_ relative: String) -> String? {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let path = root.appendingPathComponent("shared/data/" + relative).path
    return FileManager.default.fileExists(atPath: path) ? path : nil
}

/// A file in the shared folder beside the repository (`../shared/<relative>`), or nil when
/// absent (tests that need it are disabled with `.enabled(if:)`, so they show as skipped).
func sharedPath(_ relative: String) -> String? {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let path = root.appendingPathComponent("shared/" + relative).path
    return FileManager.default.fileExists(atPath: path) ? path : nil
}
