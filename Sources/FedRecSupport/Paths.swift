import SystemPackage

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
