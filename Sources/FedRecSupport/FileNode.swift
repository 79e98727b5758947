#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file as the file system knows it: device and inode. Two paths with the same node are
/// one file, whatever their spelling (`./u`, `../d/u`) and however many hard links it has.
public struct FileNode: Hashable, Sendable {
    public let device: UInt64
    public let inode: UInt64

    /// The node of the file `path` names (following symbolic links), nil for `-` or a path
    /// that cannot be stat'ed (opening it reports why).
    public init?(path: String) {
        guard path != "-" else { return nil }
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        device = UInt64(truncatingIfNeeded: info.st_dev)
        inode = UInt64(truncatingIfNeeded: info.st_ino)
    }
}
