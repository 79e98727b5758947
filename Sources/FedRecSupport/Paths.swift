import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The last path component (the path itself when it has none, e.g. `/`).
public func baseName(_ path: String) -> String {
    FilePath(path).lastComponent.map { $0.string } ?? path
}

/// The directory part of a path: `.` for a bare name, `/` for a file in the root.
public func directoryName(of path: String) -> String {
    let file = FilePath(path)
    guard file.lastComponent != nil else { return path.isEmpty ? "." : path }
    let parent = file.removingLastComponent()
    return parent.isEmpty ? "." : parent.string
}

/// Where temporary files go when there is no output directory to put them in: `$TMPDIR`,
/// else `/tmp`.
public func temporaryDirectory() -> String {
    if let value = getenv("TMPDIR"), let text = String(validatingCString: value), !text.isEmpty { return text }
    return "/tmp"
}
