#if canImport(Glibc)
import Glibc
#endif

/// One client's private user parameters: an embedding and a bias per user.
public struct ClientUsers: Sendable {
    public var embedding: [Float]
    public var bias: [Float]
}

/// Trains one client at a time by local SGD or Adam from the global model and returns its
/// contribution: the change of every item row it touched and of the global bias. Scratch
/// buffers are reused across clients; indexing the catalogue uses lazily zeroed pages, so
/// a client's cost grows with its own data, not with the number of items.
final class SGDClientTrainer {
    let model: ModelView
    let options: TrainingOptions
    let objective: Objective
    let d: Int
    /// Parameters per item or user row: d embedding values and a bias.
    let w: Int
    private let slotOf: UnsafeMutablePointer<Int32>  // local slot + 1
    private let mark: UnsafeMutablePointer<UInt32>  // user stamp, for "already interacted"
    private var stamp: UInt32 = 0
    private(set) var slotItems: [Int32] = []
    private(set) var itemParams: [Float] = []
    private var itemGrad: [Float] = []
    private var itemM: [Float] = []
    private var itemV: [Float] = []
    private var itemInBatch: [Bool] = []

    init(model: ModelView, options: TrainingOptions) {
        self.model = model
        self.options = options
        objective = model.config.objective
        d = model.config.dim
        w = d + 1
        slotOf = calloc(model.config.items, MemoryLayout<Int32>.stride)!.assumingMemoryBound(to: Int32.self)
        mark = calloc(model.config.items, MemoryLayout<UInt32>.stride)!.assumingMemoryBound(to: UInt32.self)
    }

    deinit {
        free(slotOf)
        free(mark)
    }

    /// The local slot of `item`, created from the global row on first use.
    private func slot(_ item: Int32) -> Int {
        let existing = Int(slotOf[Int(item)])
        if existing > 0 { return existing - 1 }
        let s = slotItems.count
        slotItems.append(item)
        let base = Int(item) * d
        for k in 0..<d { itemParams.append(model.itemEmbedding[base + k]) }
        itemParams.append(model.itemBias[Int(item)])
        itemGrad.append(contentsOf: repeatElement(0, count: w))
        itemM.append(contentsOf: repeatElement(0, count: w))
        itemV.append(contentsOf: repeatElement(0, count: w))
        itemInBatch.append(false)
        slotOf[Int(item)] = Int32(s + 1)
        return s
    }

    private func resetSlots() {
        for item in slotItems { slotOf[Int(item)] = 0 }
        slotItems.removeAll(keepingCapacity: true)
        itemParams.removeAll(keepingCapacity: true)
        itemGrad.removeAll(keepingCapacity: true)
        itemM.removeAll(keepingCapacity: true)
        itemV.removeAll(keepingCapacity: true)
        itemInBatch.removeAll(keepingCapacity: true)
    }

    /// Trains the client whose users are `users` (with their starting private parameters)
    /// and calls `emit(item, deltaRow)` for every touched item row (d + 1 values: the
    /// embedding's then the bias's change), after clipping.
    /// - Returns: the users' trained parameters, the global-bias change and whether the
    ///   contribution was clipped.
    func train(users: [UserRecord], start: ClientUsers, generator: inout SeededGenerator,
               emit: (Int32, UnsafeBufferPointer<Float>) -> Void) -> (users: ClientUsers, globalBiasDelta: Float, clipped: Bool) {
        resetSlots()
        var userParams = [Float](repeating: 0, count: users.count * w)
        for u in 0..<users.count {
            for k in 0..<d { userParams[u * w + k] = start.embedding[u * d + k] }
            userParams[u * w + d] = start.bias[u]
        }
        // Examples: (local user, item, rating).
        var exUser: [Int32] = [], exItem: [Int32] = [], exRating: [Float] = []
        for (u, record) in users.enumerated() {
            for e in 0..<record.train.count {
                exUser.append(Int32(u))
                exItem.append(record.train.items[e])
                exRating.append(record.train.ratings[e])
            }
        }
        var mu = model.globalBias
        let negativesPerPositive = objective == .bpr ? 1 : (objective == .bce ? options.negatives : 0)
        let reconstructBySGD = options.userParameters == .reconstruct && (objective == .bpr || objective == .bce)
        let passes = (reconstructBySGD ? options.reconstructionEpochs : 0) + options.epochs
        var order = Array(0..<exUser.count)
        var negatives = [Int32](repeating: 0, count: exUser.count * negativesPerPositive)
        var userGrad = [Float](repeating: 0, count: userParams.count)
        var userM = userGrad, userV = userGrad
        var userInBatch = [Bool](repeating: false, count: users.count)
        var muState = (grad: Float(0), m: Float(0), v: Float(0))
        var step = 0
        for e in 0..<exItem.count { _ = slot(exItem[e]) }
        for pass in 0..<passes {
            let trainItems = pass >= passes - options.epochs
            order.shuffle(using: &generator)
            if negativesPerPositive > 0 {
                // Negatives: items the user has not interacted with, drawn uniformly.
                var position = 0
                for (u, record) in users.enumerated() {
                    stamp &+= 1
                    for item in record.train.items { mark[Int(item)] = stamp }
                    let available = model.config.items - Set(record.train.items).count
                    for _ in 0..<(record.train.count * negativesPerPositive) {
                        var candidate: Int32
                        repeat {
                            candidate = Int32(generator.nextIndex(below: model.config.items))
                        } while mark[Int(candidate)] == stamp && available > 0
                        negatives[position] = candidate
                        position += 1
                    }
                    _ = u
                }
                for item in negatives { _ = slot(item) }
            }
            // The negatives of example e start at negativeStart[user] + offset within user.
            var firstExample = [Int](repeating: 0, count: users.count + 1)
            for (u, record) in users.enumerated() { firstExample[u + 1] = firstExample[u] + record.train.count }
            let batch = max(1, options.batchSize)
            var cursor = 0
            while cursor < order.count {
                let end = min(order.count, cursor + batch)
                var batchSlots: [Int] = []
                var batchUsers: [Int] = []
                itemParams.withUnsafeMutableBufferPointer { q in
                    itemGrad.withUnsafeMutableBufferPointer { gq in
                        userParams.withUnsafeMutableBufferPointer { p in
                            userGrad.withUnsafeMutableBufferPointer { gp in
                                for position in cursor..<end {
                                    let e = order[position]
                                    let u = Int(exUser[e])
                                    if !userInBatch[u] { userInBatch[u] = true; batchUsers.append(u) }
                                    let pi = u * w
                                    let si = Int(slotOf[Int(exItem[e])]) - 1
                                    let qi = si * w
                                    if trainItems && !itemInBatch[si] { itemInBatch[si] = true; batchSlots.append(si) }
                                    switch objective {
                                    case .mse, .wals:
                                        var dot: Float = 0
                                        for k in 0..<d { dot += p[pi + k] * q[qi + k] }
                                        let error = exRating[e] - (mu + p[pi + d] + q[qi + d] + dot)
                                        for k in 0..<d {
                                            gp[pi + k] -= error * q[qi + k]
                                            if trainItems { gq[qi + k] -= error * p[pi + k] }
                                        }
                                        gp[pi + d] -= error
                                        if trainItems { gq[qi + d] -= error; muState.grad -= error }
                                    case .bpr:
                                        let n = Int(negatives[e])
                                        let sj = Int(slotOf[n]) - 1
                                        let qj = sj * w
                                        if trainItems && !itemInBatch[sj] { itemInBatch[sj] = true; batchSlots.append(sj) }
                                        var x = q[qi + d] - q[qj + d]
                                        for k in 0..<d { x += p[pi + k] * (q[qi + k] - q[qj + k]) }
                                        let g = 1 / (1 + expf(x))  // σ(−x): gradient of −log σ(x)
                                        for k in 0..<d {
                                            gp[pi + k] -= g * (q[qi + k] - q[qj + k])
                                            if trainItems {
                                                gq[qi + k] -= g * p[pi + k]
                                                gq[qj + k] += g * p[pi + k]
                                            }
                                        }
                                        if trainItems { gq[qi + d] -= g; gq[qj + d] += g }
                                    case .bce:
                                        let base = e * negativesPerPositive
                                        for j in -1..<negativesPerPositive {
                                            let target: Float = j < 0 ? 1 : 0
                                            let s = j < 0 ? si : Int(slotOf[Int(negatives[base + j])]) - 1
                                            let qs = s * w
                                            if trainItems && !itemInBatch[s] { itemInBatch[s] = true; batchSlots.append(s) }
                                            var logit = mu + p[pi + d] + q[qs + d]
                                            for k in 0..<d { logit += p[pi + k] * q[qs + k] }
                                            let g = 1 / (1 + expf(-logit)) - target
                                            for k in 0..<d {
                                                gp[pi + k] += g * q[qs + k]
                                                if trainItems { gq[qs + k] += g * p[pi + k] }
                                            }
                                            gp[pi + d] += g
                                            if trainItems { gq[qs + d] += g; muState.grad += g }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                // Apply: L2 (and FedProx toward the global row) then the local optimiser.
                step += 1
                let lr = options.learningRate
                for u in batchUsers {
                    userInBatch[u] = false
                    for k in 0..<w {
                        let i = u * w + k
                        let g = userGrad[i] + options.l2 * userParams[i]
                        userParams[i] -= update(g, &userM[i], &userV[i], step: step, lr: lr)
                        userGrad[i] = 0
                    }
                }
                for s in batchSlots {
                    itemInBatch[s] = false
                    let item = Int(slotItems[s])
                    for k in 0..<w {
                        let i = s * w + k
                        let global = k < d ? model.itemEmbedding[item * d + k] : model.itemBias[item]
                        let g = itemGrad[i] + options.l2 * itemParams[i] + options.proxMu * (itemParams[i] - global)
                        itemParams[i] -= update(g, &itemM[i], &itemV[i], step: step, lr: lr)
                        itemGrad[i] = 0
                    }
                }
                if trainItems && objective != .bpr {
                    mu -= update(muState.grad + options.proxMu * (mu - model.globalBias), &muState.m, &muState.v, step: step, lr: lr)
                }
                muState.grad = 0
                cursor = end
            }
        }
        // Delta, clipped as a whole (every tensor the client contributes, flattened).
        var delta = [Float](repeating: 0, count: slotItems.count * w)
        var squared: Double = 0
        for (s, item) in slotItems.enumerated() {
            for k in 0..<w {
                let global = k < d ? model.itemEmbedding[Int(item) * d + k] : model.itemBias[Int(item)]
                let change = itemParams[s * w + k] - global
                delta[s * w + k] = change
                squared += Double(change) * Double(change)
            }
        }
        var muDelta = mu - model.globalBias
        squared += Double(muDelta) * Double(muDelta)
        var clipped = false
        if options.clip > 0, squared.squareRoot() > options.clip {
            let factor = Float(options.clip / squared.squareRoot())
            for i in delta.indices { delta[i] *= factor }
            muDelta *= factor
            clipped = true
        }
        delta.withUnsafeBufferPointer { all in
            for (s, item) in slotItems.enumerated() {
                emit(item, UnsafeBufferPointer(rebasing: all[(s * w)..<((s + 1) * w)]))
            }
        }
        var result = ClientUsers(embedding: [Float](repeating: 0, count: users.count * d), bias: [Float](repeating: 0, count: users.count))
        for u in 0..<users.count {
            for k in 0..<d { result.embedding[u * d + k] = userParams[u * w + k] }
            result.bias[u] = userParams[u * w + d]
        }
        return (result, muDelta, clipped)
    }

    /// The step to subtract for gradient `g` under the local optimiser.
    @inline(__always)
    private func update(_ g: Float, _ m: inout Float, _ v: inout Float, step: Int, lr: Float) -> Float {
        switch options.optimizer {
        case .sgd:
            return lr * g
        case .adam:
            // Kingma & Ba 2015, with bias correction.
            let beta1: Float = 0.9, beta2: Float = 0.999
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
            let mHat = m / (1 - powf(beta1, Float(step)))
            let vHat = v / (1 - powf(beta2, Float(step)))
            return lr * mHat / (vHat.squareRoot() + 1e-8)
        }
    }
}
