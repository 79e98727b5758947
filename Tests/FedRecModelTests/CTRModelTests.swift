import Foundation
import Testing
import FedRecCore
import FedRecTestSupport
import FedRecSupport
import FedRecFormats
@testable import FedRecModel

@Suite("CTR models: hashing, the FM's pairwise term, checkpoints")
struct CTRModelTests {
    @Test("FNV-1a 32-bit matches the published test vectors")
    func fnvVectors() {
        // From the FNV reference (Landon Curt Noll's test suite): "", "a", "foobar".
        #expect(FeatureHash.fnv1a("") == 0x811C_9DC5)
        #expect(FeatureHash.fnv1a("a") == 0xE40C_292C)
        #expect(FeatureHash.fnv1a("foobar") == 0xBF9C_F968)
        #expect(FeatureHash.userBucket("age=24", buckets: 1 << 10) == Int32(FeatureHash.fnv1a("u:age=24") & 1023))
        #expect(FeatureHash.userBucket("age=24", buckets: 1 << 20) != FeatureHash.itemBucket("age=24", buckets: 1 << 20))
    }

    @Test("the O(kn) pairwise term equals the naive double sum, repeated buckets included")
    func pairwise() {
        var generator = SeededGenerator(seed: 5)
        let rank = 6, buckets = 50
        let factor = (0..<(buckets * rank)).map { _ in Float(generator.nextGaussian()) }
        let weight = (0..<buckets).map { _ in Float(generator.nextGaussian()) }
        for trial in 0..<20 {
            let active = (0..<(2 + trial % 7)).map { _ in Int32(generator.nextIndex(below: trial < 10 ? buckets : 4)) }
            var sums = [Float](repeating: 0, count: rank)
            let z = active.withUnsafeBufferPointer { a in
                weight.withUnsafeBufferPointer { w in
                    factor.withUnsafeBufferPointer { v in
                        sums.withUnsafeMutableBufferPointer { s in CTRKernels.logit(bias: 0.25, active: a, weight: w, factor: v, rank: rank, sums: s) }
                    }
                }
            }
            let linear = 0.25 + active.reduce(0.0) { $0 + Double(weight[Int($1)]) }
            let naive = linear + CTRKernels.naivePairwise(active: active, factor: factor, rank: rank)
            #expect(abs(Double(z) - naive) < 1e-4 * max(1, abs(naive)), "trial \(trial): \(z) against \(naive)")
        }
    }

    @Test("gradients match central differences of the loss")
    func gradientsAgainstFiniteDifferences() {
        var generator = SeededGenerator(seed: 9)
        let rank = 3, buckets = 8
        var factor = (0..<(buckets * rank)).map { _ in 0.5 * generator.nextGaussian() }
        var weight = (0..<buckets).map { _ in 0.5 * generator.nextGaussian() }
        let active: [Int32] = [1, 4, 6, 4]  // bucket 4 twice
        let l2 = 0.1, bias = -0.3
        for y in [0.0, 1.0] {
            // The loss in Double, by the naive definition.
            func loss() -> Double {
                var z = bias
                for j in active { z += weight[Int(j)] }
                for a in active.indices {
                    for b in active.indices where b > a {
                        for f in 0..<rank { z += factor[Int(active[a]) * rank + f] * factor[Int(active[b]) * rank + f] }
                    }
                }
                let p = 1 / (1 + exp(-z))
                var total = -(y * log(p) + (1 - y) * log(1 - p))
                for j in active {
                    total += l2 / 2 * weight[Int(j)] * weight[Int(j)]
                    for f in 0..<rank { total += l2 / 2 * factor[Int(j) * rank + f] * factor[Int(j) * rank + f] }
                }
                return total
            }
            let w32 = weight.map(Float.init), v32 = factor.map(Float.init)
            var sums = [Float](repeating: 0, count: rank)
            var out = [Float](repeating: 0, count: active.count * (rank + 1))
            active.withUnsafeBufferPointer { a in
                w32.withUnsafeBufferPointer { w in
                    v32.withUnsafeBufferPointer { v in
                        sums.withUnsafeMutableBufferPointer { s in
                            let z = CTRKernels.logit(bias: Float(bias), active: a, weight: w, factor: v, rank: rank, sums: s)
                            let g = CTRKernels.sigmoid(z) - Float(y)
                            out.withUnsafeMutableBufferPointer { o in
                                CTRKernels.gradients(g: g, active: a, weight: w, factor: v, rank: rank, sums: UnsafeBufferPointer(s), l2: Float(l2), into: o)
                            }
                        }
                    }
                }
            }
            let h = 1e-5
            for bucket in Set(active) {
                let occurrences = active.indices.filter { active[$0] == bucket }
                let analytic = occurrences.reduce(0.0) { $0 + Double(out[$1 * (rank + 1)]) }
                let saved = weight[Int(bucket)]
                weight[Int(bucket)] = saved + h; let up = loss()
                weight[Int(bucket)] = saved - h; let down = loss()
                weight[Int(bucket)] = saved
                #expect(abs(analytic - (up - down) / (2 * h)) < 1e-4, "w[\(bucket)], y = \(y)")
                for f in 0..<rank {
                    let analyticV = occurrences.reduce(0.0) { $0 + Double(out[$1 * (rank + 1) + 1 + f]) }
                    let i = Int(bucket) * rank + f, savedV = factor[i]
                    factor[i] = savedV + h; let upV = loss()
                    factor[i] = savedV - h; let downV = loss()
                    factor[i] = savedV
                    #expect(abs(analyticV - (upV - downV) / (2 * h)) < 1e-4, "v[\(bucket), \(f)], y = \(y)")
                }
            }
        }
    }

    @Test("a CTR checkpoint reads back with its item feature tables; broken tables are refused")
    func checkpoint() throws {
        let dir = try TemporaryDirectory()
        let features = [["genre=Comedy", "year=1995"], [], ["genre=Drama"]]
        let model = CTRModel.initial(family: .fm, datasetId: "d", itemFeatures: features, hashBits: 6, rank: 2, scale: 0.1, seed: 1,
                                     clickThreshold: 4, userIdFeature: true)
        try model.write(to: dir.path + "/m")
        let (read, _) = try CTRModel.open(dir.path + "/m")
        #expect(read.buckets == 64 && read.rank == 2 && read.catalogueItems == 3 && read.clickThreshold == 4 && read.userIdFeature)
        #expect(Array(read.itemBuckets(0)) == ["iid=0", "genre=Comedy", "year=1995"].map { FeatureHash.itemBucket($0, buckets: 64) })
        #expect(Array(read.itemBuckets(1)) == [FeatureHash.itemBucket("iid=1", buckets: 64)])
        #expect(read.userBuckets(id: "7", features: ["age=24"]) == ["uid=7", "age=24"].map { FeatureHash.userBucket($0, buckets: 64) })

        var broken = model
        broken.indexTables["item_feature_bucket"] = [0, 1, 99, 3, 4, 5]  // 99 is past the 64 buckets
        try broken.write(to: dir.path + "/b")
        #expect { try CTRModel.open(dir.path + "/b") } throws: { ($0 as? FedRecError)?.failure == .corrupt }
        var wrongRank = model
        wrongRank.settings["rank"] = "3"
        try wrongRank.write(to: dir.path + "/r")
        #expect { try CTRModel.open(dir.path + "/r") } throws: { ($0 as? FedRecError)?.failure == .shape }
    }
}
