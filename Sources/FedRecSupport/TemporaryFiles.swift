import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The temporary files and directories fedrec writes beside its outputs, named
/// `.NAME.PID.SUFFIX.tmp` (`AtomicOutput`, the partitioner's dataset directories), and what
/// removes them when the process does not get to.
///
/// - On SIGINT, SIGTERM or SIGHUP (after `removeOnSignals()`, which every command calls),
///   the process removes the temporaries it holds, then dies of the signal as it would have.
/// - SIGKILL cannot be caught: the next output written into the same directory removes the
///   temporaries there whose process is gone (`removeStale(in:)`). Only names of exactly our
///   pattern, owned by the current user, whose PID is not a live process, are touched. A PID
///   that was reused by another live process keeps its file (the safe direction); a directory
///   shared with another machine or PID namespace would see that machine's live processes as
///   dead, so do not point two hosts' runs at one directory.
public enum TemporaryFiles {
    /// The temporary path for `path` (an output file or directory): hidden, beside it, with
    /// this process's PID and a random suffix.
    public static func path(beside path: String) -> String {
        var trimmed = path
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        let slash = trimmed.lastIndex(of: "/")
        let directory = slash.map { String(trimmed[..<$0]) } ?? "."
        let name = slash.map { String(trimmed[trimmed.index(after: $0)...]) } ?? trimmed
        var generator = SystemRandomNumberGenerator()
        let suffix = String(generator.next() as UInt64, radix: 36)
        return "\(directory)/.\(name).\(getpid()).\(suffix).tmp"
    }

    /// The parts of a temporary name of our pattern (`.NAME.PID.SUFFIX.tmp`, or a dataset
    /// directory moved aside, `.NAME.PID.SUFFIX.tmp.old`), or nil for any other name.
    public static func parse(_ name: String) -> (target: String, pid: Int32, aside: Bool)? {
        var rest = Substring(name)
        guard rest.hasPrefix(".") else { return nil }
        rest = rest.dropFirst()
        var aside = false
        if rest.hasSuffix(".tmp.old") {
            aside = true
            rest = rest.dropLast(4)
        }
        guard rest.hasSuffix(".tmp") else { return nil }
        rest = rest.dropLast(4)
        let parts = rest.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count >= 3 else { return nil }
        let suffix = parts[parts.count - 1], pidText = parts[parts.count - 2]
        guard !suffix.isEmpty, suffix.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x7A).contains($0) }),
            !pidText.isEmpty, pidText.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
            let pid = Int32(pidText), pid > 0
        else { return nil }
        let target = parts[0..<(parts.count - 2)].joined(separator: ".")
        guard !target.isEmpty else { return nil }
        return (target, pid, aside)
    }

    /// Removes the temporaries in `directory` left by processes that no longer run (see the
    /// type's documentation for what is and is not touched). A dataset directory moved aside
    /// (`.tmp.old`) is removed only when the directory it was moved aside for exists again;
    /// otherwise it is the only copy and is renamed back to that name.
    /// Errors are ignored: this is housekeeping, never a reason for a command to fail.
    /// - Returns: the names removed (or restored).
    @discardableResult
    public static func removeStale(in directory: String) -> [String] {
        let listing: [String]
        do { listing = try FileManager.default.contentsOfDirectory(atPath: directory) } catch { return [] }
        var removed: [String] = []
        let uid = getuid()
        for name in listing {
            guard let parsed = parse(name), parsed.pid != getpid(), !isAlive(parsed.pid) else { continue }
            let full = (directory.hasSuffix("/") ? directory : directory + "/") + name
            var info = stat()
            guard lstat(full, &info) == 0, info.st_uid == uid else { continue }
            let isDirectory = (info.st_mode & S_IFMT) == S_IFDIR
            let isFile = (info.st_mode & S_IFMT) == S_IFREG
            guard isDirectory || isFile else { continue }
            if parsed.aside {
                // A directory moved aside for its replacement: garbage once the replacement
                // is in place; the only copy otherwise, which goes back to its name.
                let target = (directory.hasSuffix("/") ? directory : directory + "/") + parsed.target
                if !fileExists(target) {
                    if rename(full, target) == 0 { removed.append(name) }
                    continue
                }
            }
            if isFile {
                if unlink(full) == 0 { removed.append(name) }
            } else if (try? FileManager.default.removeItem(atPath: full)) != nil {
                removed.append(name)
            }
        }
        return removed
    }

    /// `removeStale(in:)` for the directory of `path`, once per directory and process.
    public static func removeStale(beside path: String) {
        var trimmed = path
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        let directory = trimmed.lastIndex(of: "/").map { String(trimmed[..<$0]) } ?? "."
        let key = directory.isEmpty ? "/" : directory
        guard registry.firstVisit(key) else { return }
        removeStale(in: key)
    }

    /// Whether a process with this PID runs (EPERM: it does, owned by someone else). A
    /// zombie (dead, not yet reaped: the children of a killed process wait for init) does not.
    static func isAlive(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        return !isZombie(pid)
    }

    /// Linux: the state in `/proc/PID/stat` (after the parenthesised command name) is `Z`.
    static func isZombie(_ pid: Int32) -> Bool {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/stat"),
            let close = data.lastIndex(of: UInt8(ascii: ")")), close + 2 < data.count
        else { return false }
        return data[close + 2] == UInt8(ascii: "Z")
    }

    /// Records a temporary of this process, to be removed if a signal ends it.
    /// - Returns: the token to `forget` it with once it is renamed or removed.
    public static func register(_ path: String, isDirectory: Bool = false) -> Int {
        registry.add(path, isDirectory: isDirectory)
    }

    /// Stops tracking a temporary (committed or already removed).
    public static func forget(_ token: Int) {
        registry.remove(token)
    }

    /// Installs handlers for SIGINT, SIGTERM and SIGHUP that remove this process's
    /// temporaries and then end the process by the same signal (so the exit status a shell
    /// sees is unchanged). A signal the process inherited as ignored stays ignored (a
    /// background job of a non-interactive shell ignores SIGINT). Safe to call repeatedly.
    ///
    /// The handler itself only writes the signal number to a pipe (async-signal-safe); a
    /// thread reading the pipe does the removal under the registry's lock, so a temporary
    /// is never half registered when it runs.
    public static func removeOnSignals() {
        _ = installation
    }

    /// Test hook, for crash-consistency tests only: with `FEDREC_TEST_SIGNAL_BEFORE_COMMIT`
    /// in the environment, a command stops just before its first output would appear (an
    /// `AtomicOutput` commit, a line appended), its temporary file written. `KILL`: it
    /// SIGKILLs its whole process group, as a crash of the machine would; `INT`, `TERM` or
    /// `HUP`: it sends itself that signal and waits for it to end the process, so the
    /// cleanup of signals is exercised at a known point. Never set it otherwise.
    public static func crashPointForTests() {
        guard let signal = testSignal else { return }
        if signal == SIGKILL {
            kill(0, SIGKILL)
        } else {
            kill(getpid(), signal)
        }
        // The signal ends the process; should it not (blocked, ignored), do not hang a test.
        for _ in 0..<30 { sleep(1) }
        _exit(70)
    }

    private static let testSignal: Int32? = {
        guard let value = getenv("FEDREC_TEST_SIGNAL_BEFORE_COMMIT").map({ String(cString: $0) }) else { return nil }
        switch value {
        case "KILL": return SIGKILL
        case "INT": return SIGINT
        case "TERM": return SIGTERM
        case "HUP": return SIGHUP
        default: return nil
        }
    }()

    private static let registry = Registry()

    private static let installation: Void = {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        signalPipe = fds[1]
        // A parent may have spawned us with these blocked (posix_spawn from a thread that
        // blocks them, as Dispatch's workers do): unblock them, threads made later inherit it.
        var handled = sigset_t()
        sigemptyset(&handled)
        for signal in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&handled, signal) }
        pthread_sigmask(SIG_UNBLOCK, &handled, nil)
        let readEnd = fds[0]
        let watcher = Thread {
            var byte: UInt8 = 0
            while true {
                let n = read(readEnd, &byte, 1)
                if n == 1 { break }
                if n < 0 && errno == EINTR { continue }
                return
            }
            registry.removeAllAndHold()
            let signal = Int32(byte)
            Glibc.signal(signal, SIG_DFL)
            kill(getpid(), signal)
            _exit(128 + signal)
        }
        watcher.start()
        for signal in [SIGINT, SIGTERM, SIGHUP] {
            var old = sigaction()
            guard sigaction(signal, nil, &old) == 0 else { continue }
            if unsafeBitCast(old.__sigaction_handler.sa_handler, to: Int.self) == unsafeBitCast(SIG_IGN, to: Int.self) { continue }
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { signal in
                var byte = UInt8(truncatingIfNeeded: signal)
                _ = write(signalPipe, &byte, 1)
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            sigaction(signal, &action, nil)
        }
    }()
}

/// The write end of the signal pipe, set once before any handler is installed.
nonisolated(unsafe) private var signalPipe: Int32 = -1

/// The live temporaries of this process, and the directories already swept for stale ones.
private final class Registry: @unchecked Sendable {
    private let lock = NSLock()
    private var next = 0
    private var live: [Int: (path: String, isDirectory: Bool)] = [:]
    private var visited: Set<String> = []

    func add(_ path: String, isDirectory: Bool) -> Int {
        lock.lock()
        defer { lock.unlock() }
        next += 1
        live[next] = (path, isDirectory)
        return next
    }

    func remove(_ token: Int) {
        lock.lock()
        defer { lock.unlock() }
        live[token] = nil
    }

    func firstVisit(_ directory: String) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return visited.insert(directory).inserted
    }

    /// Removes every live temporary and keeps the lock, so none is created or committed
    /// until the process ends.
    func removeAllAndHold() {
        lock.lock()
        for (_, entry) in live {
            if entry.isDirectory {
                try? FileManager.default.removeItem(atPath: entry.path)
            } else {
                unlink(entry.path)
            }
        }
        live = [:]
    }
}
