import Synchronization

/// Slots that concurrent workers fill, one each, read after they have all finished.
public final class ConcurrentResults<Value: Sendable>: Sendable {
    private let slots: Mutex<[Value?]>

    public init(count: Int) { slots = Mutex([Value?](repeating: nil, count: count)) }

    public subscript(index: Int) -> Value? {
        get { slots.withLock { $0[index] } }
        set { slots.withLock { $0[index] = newValue } }
    }
}
