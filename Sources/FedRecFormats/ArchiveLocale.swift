#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A UTF-8 `LC_CTYPE` locale for libarchive's name conversions, or nil when the C library
/// has none.
///
/// libarchive converts entry names through the C library's current locale. A Swift process
/// runs in the "C" locale, where libarchive 3.6's pax writer cannot convert a non-ASCII
/// name and crashes (NULL dereference in `archive_write_header`). Switching the calling
/// thread's locale with `uselocale` around libarchive calls fixes that without touching the
/// process-wide locale that other threads see.
nonisolated(unsafe) let archiveUTF8Locale: locale_t? = {
    for name in ["C.UTF-8", "C.utf8", "en_US.UTF-8"] {
        if let locale = newlocale(1 << LC_CTYPE, name, nil) { return locale }
    }
    return nil
}()

/// Runs `body` with the calling thread's locale set to UTF-8 (when there is one), then
/// restores it.
func withArchiveUTF8Locale<T>(_ body: () throws -> T) rethrows -> T {
    guard let locale = archiveUTF8Locale else { return try body() }
    let previous = uselocale(locale)
    defer { uselocale(previous) }
    return try body()
}
