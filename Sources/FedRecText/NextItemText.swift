import FedRecData
import FedRecSupport

/// What a text-lora adapter is trained for (`fl-init --task`, recorded as setting `task`).
public enum TextTask: String, Sendable, CaseIterable {
    /// Query → item: each client's query log (`fl-partition --queries`), a query's item its
    /// positive.
    case search
    /// History → next item (recommendation from text): the titles of a user's recent items
    /// are the query, the item that followed them the positive, from the client's own
    /// training interactions (Hou et al. KDD 2022, "UniSRec", learn the same kind of
    /// text-only sequential recommender; here it is the two-tower sampled softmax of
    /// `SampledSoftmaxLoss`). Item embeddings come from text alone, so it also ranks items
    /// nobody has interacted with.
    case nextItem = "next-item"
}

/// The query texts of the next-item task: a user's training history in time order, and
/// the text of the items before a position.
public struct NextItemText: Sendable {
    /// Titles of the catalogue, by item index.
    public let titles: [String]
    /// How many of the most recent items make a query.
    public let historyLength: Int

    /// Between the titles of a query.
    public static let separator = "; "

    public init(titles: [String], historyLength: Int) {
        precondition(historyLength >= 1, "NextItemText: the history holds at least one item")
        self.titles = titles
        self.historyLength = historyLength
    }

    /// A user's training items in time order (ties in the order the shard holds them).
    public static func chronological(_ interactions: Interactions) -> [Int32] {
        interactions.items.indices.sorted { a, b in
            let ta = interactions.times[a], tb = interactions.times[b]
            return ta != tb ? ta < tb : a < b
        }.map { interactions.items[$0] }
    }

    /// The query before `position` of `sequence`: the titles of the up to `historyLength`
    /// items before it, the most recent first (so truncation of a long query keeps the
    /// most recent), joined by `separator`. Empty at position 0.
    public func query(_ sequence: [Int32], before position: Int) -> String {
        let start = max(0, position - historyLength)
        return sequence[start..<position].reversed().map { titles[Int($0)] }.joined(separator: Self.separator)
    }

    /// The positions of `sequence` a client trains on in one epoch: each item after the
    /// first is one example (its history → it); with more than `limit`, `limit` of them
    /// drawn without replacement by `generator`, ascending. `limit` 0: all of them.
    public static func positions(count: Int, limit: Int, generator: inout SeededGenerator) -> [Int] {
        guard count > 1 else { return [] }
        var all = Array(1..<count)
        guard limit > 0, all.count > limit else { return all }
        // A partial Fisher–Yates shuffle: the first `limit` slots are a uniform sample.
        for i in 0..<limit {
            let j = i + generator.nextIndex(below: all.count - i)
            all.swapAt(i, j)
        }
        return all[0..<limit].sorted()
    }
}
