import FedRecData
import FedRecSupport

/// Draws `perPositive` negatives for every training interaction of each of `users`:
/// items the user has not interacted with, uniformly over the catalogue of `items`
/// (any item when the user has them all), calling `put(localUser, item)` in order.
/// `mark` (one stamp per item, zeroed by the caller once) and `stamp` tell the user's
/// own items apart without clearing anything between users.
@inline(__always)
func drawNegatives(users: [UserRecord], perPositive: Int, items: Int, mark: UnsafeMutablePointer<UInt32>, stamp: inout UInt32,
                   generator: inout SeededGenerator, _ put: (Int, Int32) -> Void) {
    for (u, record) in users.enumerated() {
        // Mark the user's items; the marks also count them (duplicates once).
        stamp &+= 1
        var distinct = 0
        for item in record.train.items where mark[Int(item)] != stamp {
            mark[Int(item)] = stamp
            distinct += 1
        }
        let available = items - distinct
        for _ in 0..<(record.train.count * perPositive) {
            var candidate: Int32
            repeat {
                candidate = Int32(generator.nextIndex(below: items))
            } while mark[Int(candidate)] == stamp && available > 0
            put(u, candidate)
        }
    }
}
