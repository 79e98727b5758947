/// One user's interactions, column-wise (item index, rating, timestamp). Shards store it
/// as a structured npy array with fields `item` <i4, `rating` <f4, `time` <i8.
public struct Interactions: Sendable, Equatable {
    public var items: [Int32]
    public var ratings: [Float]
    public var times: [Int64]

    public init(items: [Int32] = [], ratings: [Float] = [], times: [Int64] = []) {
        precondition(items.count == ratings.count && items.count == times.count)
        self.items = items
        self.ratings = ratings
        self.times = times
    }

    public var count: Int { items.count }

    /// The distinct items, ascending (a user's row of the implicit interaction matrix).
    public var distinctItems: [Int32] { Array(Set(items)).sorted() }
    public var isEmpty: Bool { items.isEmpty }

    mutating func append(item: Int32, rating: Float, time: Int64) {
        items.append(item)
        ratings.append(rating)
        times.append(time)
    }
}
