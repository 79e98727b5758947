#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The files one command reads and writes, checked before it starts so that no output
/// overwrites or deletes an input.
///
/// Two names are the same file when they resolve to the same path (`realpath` of the
/// file, or of its directory plus its name when it does not exist yet) or, when both exist,
/// to the same device and inode (hard links). An existing file inside an input directory
/// (a dataset) counts as an input; a directory output (fl-partition's, replaced whole) must
/// not hold any input. `-` (stdin, stdout) and nil are skipped. Every command lists its
/// files here and calls `check()` first; a conflict is a usage error (exit 64).
public struct FileRoles: Sendable {
    /// Files the command only reads (files or directories).
    public var inputs: [String]
    /// Files the command writes (atomically replaced or appended to).
    public var outputs: [String]
    /// Files read and rewritten on purpose (a shard's state file, a privacy ledger): each
    /// may be itself, but no other input or output.
    public var updatedInPlace: [String]
    /// Directories the command replaces whole (fl-partition --force).
    public var directoryOutputs: [String]

    public init(inputs: [String?], outputs: [String?], updatedInPlace: [String?] = [], directoryOutputs: [String?] = []) {
        func named(_ paths: [String?]) -> [String] { paths.compactMap { $0 }.filter { $0 != "-" && !$0.isEmpty } }
        self.inputs = named(inputs)
        self.outputs = named(outputs)
        self.updatedInPlace = named(updatedInPlace)
        self.directoryOutputs = named(directoryOutputs)
    }

    /// - Throws: `FedRecError(.usage)` naming the output and the input it would destroy.
    public func check() throws {
        enum Role { case input, output, inPlace }
        let entries = inputs.map { ($0, Role.input) } + outputs.map { ($0, Role.output) } + updatedInPlace.map { ($0, Role.inPlace) }
        let resolved = entries.map { ResolvedPath($0.0) }
        for i in entries.indices {
            for j in entries.indices where j > i {
                let (a, roleA) = entries[i], (b, roleB) = entries[j]
                if roleA == .input && roleB == .input { continue }
                guard resolved[i].isSameFile(as: resolved[j]) else { continue }
                // Report the written one as the culprit.
                let (written, other) = roleA == .input ? (b, a) : (a, b)
                let what = roleA == .input || roleB == .input ? "an input" : "another output"
                throw FedRecError(.usage, file: written, "is also \(what) (\(other)): refusing to overwrite it")
            }
        }
        // An existing file inside an input directory is an input too.
        for (i, entry) in entries.enumerated() where entry.1 != .input && resolved[i].exists && !resolved[i].isDirectory {
            for (j, input) in entries.enumerated() where input.1 == .input && resolved[j].isDirectory {
                let prefix = resolved[j].path == "/" ? "/" : resolved[j].path + "/"
                guard resolved[i].path.hasPrefix(prefix) else { continue }
                throw FedRecError(.usage, file: entry.0, "is a file of the input \(input.0): refusing to overwrite it")
            }
        }
        for directory in directoryOutputs {
            let target = ResolvedPath(directory)
            let prefix = target.path == "/" ? "/" : target.path + "/"
            for (k, entry) in entries.enumerated() {
                let path = resolved[k]
                if path.isSameFile(as: target) || path.path.hasPrefix(prefix) {
                    throw FedRecError(.usage, file: directory, "holds the input \(entry.0): refusing to replace it")
                }
            }
        }
    }
}

/// A path made absolute with symbolic links resolved, and the file's identity if it exists.
struct ResolvedPath {
    let path: String
    let device: UInt64?
    let inode: UInt64?
    let isDirectory: Bool
    var exists: Bool { inode != nil }

    init(_ name: String) {
        var info = stat()
        if stat(name, &info) == 0 {
            device = UInt64(info.st_dev)
            inode = UInt64(info.st_ino)
            isDirectory = (info.st_mode & S_IFMT) == S_IFDIR
        } else {
            device = nil
            inode = nil
            isDirectory = false
        }
        if let full = Self.realPath(name) {
            path = full
        } else if let directory = Self.realPath(directoryName(of: name)) {
            path = (directory == "/" ? "" : directory) + "/" + baseName(name)
        } else {
            path = name
        }
    }

    func isSameFile(as other: ResolvedPath) -> Bool {
        if path == other.path { return true }
        guard let inode, let device, let otherInode = other.inode, let otherDevice = other.device else { return false }
        return inode == otherInode && device == otherDevice
    }

    static func realPath(_ name: String) -> String? {
        guard let resolved = realpath(name, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
