import FedRecFormats

/// Cleaning steps that run before a split: duplicate removal and k-core filtering.
public enum Preprocessing {
    /// Keeps one event per (user, item): the latest by timestamp, and of equal timestamps
    /// the one read last. `keep` marks survivors.
    /// - Returns: the number of events removed.
    /// - Complexity: O(n log n).
    public static func removeDuplicates(_ log: RatingsLog, keep: inout [Bool]) -> Int {
        var latest: [Int64: Int] = [:]  // (user << 32 | item) -> event index
        latest.reserveCapacity(log.count)
        var removed = 0
        for e in 0..<log.count where keep[e] {
            let key = Int64(log.user[e]) << 32 | Int64(log.item[e])
            if let previous = latest[key] {
                removed += 1
                if log.time[e] >= log.time[previous] {
                    keep[previous] = false
                    latest[key] = e
                } else {
                    keep[e] = false
                }
            } else {
                latest[key] = e
            }
        }
        return removed
    }

    /// Repeatedly drops users and items with fewer than `k` surviving events until none
    /// is left below `k` (the k-core).
    /// - Returns: the number of events removed.
    public static func kCore(_ log: RatingsLog, k: Int, keep: inout [Bool]) -> Int {
        guard k > 1 else { return 0 }
        var removed = 0
        while true {
            var userCount = [Int](repeating: 0, count: log.users.count)
            var itemCount = [Int](repeating: 0, count: log.items.count)
            for e in 0..<log.count where keep[e] {
                userCount[Int(log.user[e])] += 1
                itemCount[Int(log.item[e])] += 1
            }
            var changed = false
            for e in 0..<log.count where keep[e] {
                if userCount[Int(log.user[e])] < k || itemCount[Int(log.item[e])] < k {
                    keep[e] = false
                    removed += 1
                    changed = true
                }
            }
            if !changed { return removed }
        }
    }

    /// The order in which raw ids get dense indices: numeric when every id is an integer,
    /// otherwise by string, so indices do not depend on the order of lines.
    public static func sortedOrder(_ ids: [String], present: [Bool]) -> [Int] {
        let candidates = ids.indices.filter { present[$0] }
        let numeric = candidates.map { Int64(ids[$0]) }
        if numeric.allSatisfy({ $0 != nil }) {
            return zip(candidates, numeric).sorted { ($0.1!, $0.0) < ($1.1!, $1.0) }.map(\.0)
        }
        return candidates.sorted { ids[$0] < ids[$1] }
    }
}
