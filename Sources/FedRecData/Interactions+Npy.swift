import FedRecFormats
import FedRecSupport

/// Shards store a user's interactions as a numpy structured array (`NpyDType.interactions`).
extension Npy {
    /// Encodes interactions as a 1-D structured array of 16-byte records.
    public static func encode(_ interactions: Interactions) -> [UInt8] {
        var body = [UInt8](repeating: 0, count: interactions.count * 16)
        body.withUnsafeMutableBytes { raw in
            for i in 0..<interactions.count {
                raw.storeBytes(of: interactions.items[i].littleEndian, toByteOffset: 16 * i, as: Int32.self)
                raw.storeBytes(of: interactions.ratings[i].bitPattern.littleEndian, toByteOffset: 16 * i + 4, as: UInt32.self)
                raw.storeBytes(of: interactions.times[i].littleEndian, toByteOffset: 16 * i + 8, as: Int64.self)
            }
        }
        return body.withUnsafeBytes { encode(dtype: .interactions, shape: [interactions.count], body: $0) }
    }

    /// The columns of a 1-D structured interactions array.
    /// - Throws: `FedRecError(.badData)` for another dtype or more than one dimension.
    public static func interactions(_ array: NpyArray, file: String) throws -> Interactions {
        guard array.dtype == .interactions else {
            throw FedRecError(.badData, file: file, "expected an interactions array \(NpyDType.interactions.descr), found \(array.dtype.descr)")
        }
        guard array.shape.count == 1 else {
            throw FedRecError(.badData, file: file, "expected a 1-D interactions array, found shape \(array.shape)")
        }
        let n = array.count
        var items = [Int32](), ratings = [Float](), times = [Int64]()
        items.reserveCapacity(n)
        ratings.reserveCapacity(n)
        times.reserveCapacity(n)
        array.body.withUnsafeBytes { raw in
            for i in 0..<n {
                items.append(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 16 * i, as: Int32.self)))
                ratings.append(Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 16 * i + 4, as: UInt32.self))))
                times.append(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 16 * i + 8, as: Int64.self)))
            }
        }
        return Interactions(items: items, ratings: ratings, times: times)
    }
}
