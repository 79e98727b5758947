#if canImport(Glibc)
import Glibc
#endif
import FedRecData
import FedRecModel
import FedRecSupport

/// One client's private user parameters: an embedding and a bias per user.
public struct ClientUsers: Sendable {
    public var embedding: [Float]
    public var bias: [Float]

    public init(embedding: [Float], bias: [Float]) {
        self.embedding = embedding
        self.bias = bias
    }
}

/// Trains one client at a time by local SGD or Adam from the global model and returns its
/// contribution: the change of every item row it touched and of the global bias. Scratch
/// buffers are reused across clients; indexing the catalogue uses lazily zeroed pages, so
/// a client's cost grows with its own data, not with the number of items.
public final class SGDClientTrainer {
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
    /// The global model's value of each slot's row (d + 1 wide): the delta's reference
    /// and FedProx's anchor.
    private var itemGlobal: [Float] = []
    private var itemGrad: [Float] = []
    private var itemM: [Float] = []
    private var itemV: [Float] = []
    private var itemInBatch: [Bool] = []

    public init(model: ModelView, options: TrainingOptions) {
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

    /// Gives every item of `items` without a local slot one (in order of first
    /// appearance), its row copied from the global model. The buffers are swapped out of
    /// the class for the loop, so no item pays the dynamic exclusivity checks of
    /// class-property accesses.
    private func addSlots(_ items: [Int32]) {
        var slots: [Int32] = [], global: [Float] = [], params: [Float] = []
        swap(&slots, &slotItems); swap(&global, &itemGlobal); swap(&params, &itemParams)
        for item in items where slotOf[Int(item)] == 0 {
            let s = slots.count
            slots.append(item)
            global.append(contentsOf: model.items.embeddingRow(Int(item)))
            global.append(model.items.bias(Int(item)))
            params.append(contentsOf: global[(s * w)...])
            slotOf[Int(item)] = Int32(s + 1)
        }
        swap(&slots, &slotItems); swap(&global, &itemGlobal); swap(&params, &itemParams)
    }

    /// Gives every slot created since the last call its zeroed gradient, optimiser moments
    /// and batch flag, in one append per buffer rather than one per slot.
    private func growSlotBuffers() {
        let missing = slotItems.count * w - itemGrad.count
        guard missing > 0 else { return }
        itemGrad.append(contentsOf: repeatElement(0, count: missing))
        itemM.append(contentsOf: repeatElement(0, count: missing))
        itemV.append(contentsOf: repeatElement(0, count: missing))
        itemInBatch.append(contentsOf: repeatElement(false, count: missing / w))
    }

    private func resetSlots() {
        for item in slotItems { slotOf[Int(item)] = 0 }
        slotItems.removeAll(keepingCapacity: true)
        itemParams.removeAll(keepingCapacity: true)
        itemGlobal.removeAll(keepingCapacity: true)
        itemGrad.removeAll(keepingCapacity: true)
        itemM.removeAll(keepingCapacity: true)
        itemV.removeAll(keepingCapacity: true)
        itemInBatch.removeAll(keepingCapacity: true)
    }

    /// Trains the client whose users are `users` (with their starting private parameters)
    /// and calls `emit(items, deltaRows)` once with the touched items (distinct, in order
    /// of first use) and their rows' changes after clipping, row i at `i * (d + 1)`: d + 1
    /// values each, the embedding's then the bias's change.
    /// - Returns: the users' trained parameters, the global-bias change and whether the
    ///   contribution was clipped.
    public func train(users: [UserRecord], start: ClientUsers, generator: inout SeededGenerator,
               emit: (_ items: [Int32], _ deltaRows: UnsafeBufferPointer<Float>) -> Void) -> (users: ClientUsers, globalBiasDelta: Float, clipped: Bool) {
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
        var muState = MomentState()
        var step = 0
        addSlots(exItem)
        for pass in 0..<passes {
            let trainItems = pass >= passes - options.epochs
            order.shuffle(using: &generator)
            if negativesPerPositive > 0 {
                // Negatives: items the user has not interacted with, drawn uniformly.
                var position = 0
                drawNegatives(users: users, perPositive: negativesPerPositive, items: model.config.items, mark: mark, stamp: &stamp,
                              generator: &generator) { _, item in
                    negatives[position] = item
                    position += 1
                }
                addSlots(negatives)
            }
            growSlotBuffers()
            // The hot loop runs over plain buffers: arrays are swapped out of the class so
            // no access to a class property (with its dynamic exclusivity check) is inside it.
            var q: [Float] = [], gq: [Float] = [], mq: [Float] = [], vq: [Float] = [], inBatch: [Bool] = []
            swap(&q, &itemParams); swap(&gq, &itemGrad); swap(&mq, &itemM); swap(&vq, &itemV); swap(&inBatch, &itemInBatch)
            let pass = Pass(d: d, objective: objective, optimizer: options.optimizer, learningRate: options.learningRate,
                            l2: options.l2, proxMu: options.proxMu, batch: max(1, options.batchSize), trainItems: trainItems,
                            negativesPerPositive: negativesPerPositive, globalBias: model.globalBias)
            q.withUnsafeMutableBufferPointer { q in
            gq.withUnsafeMutableBufferPointer { gq in
            mq.withUnsafeMutableBufferPointer { mq in
            vq.withUnsafeMutableBufferPointer { vq in
            inBatch.withUnsafeMutableBufferPointer { inBatch in
            userParams.withUnsafeMutableBufferPointer { p in
            userGrad.withUnsafeMutableBufferPointer { gp in
            userM.withUnsafeMutableBufferPointer { mp in
            userV.withUnsafeMutableBufferPointer { vp in
            userInBatch.withUnsafeMutableBufferPointer { userInBatch in
            itemGlobal.withUnsafeBufferPointer { global in
                let items = Items(params: q, grad: gq, m: mq, v: vq, inBatch: inBatch, slotOf: slotOf,
                                  global: global)
                let users = Users(params: p, grad: gp, m: mp, v: vp, inBatch: userInBatch)
                pass.run(order: order, exUser: exUser, exItem: exItem, exRating: exRating, negatives: negatives,
                         items: items, users: users, mu: &mu, muState: &muState, step: &step)
            }}}}}}}}}}}
            swap(&q, &itemParams); swap(&gq, &itemGrad); swap(&mq, &itemM); swap(&vq, &itemV); swap(&inBatch, &itemInBatch)
        }
        // Delta, clipped as a whole (every tensor the client contributes, flattened).
        // Local copies (no copy of the storage): read without per-element exclusivity checks.
        let touched = slotItems, trained = itemParams, reference = itemGlobal
        var delta = [Float](repeating: 0, count: touched.count * w)
        var squared: Double = 0
        for s in touched.indices {
            for k in 0..<w {
                let change = trained[s * w + k] - reference[s * w + k]
                delta[s * w + k] = change
                squared += Double(change) * Double(change)
            }
        }
        var muDelta = mu - model.globalBias
        squared += Double(muDelta) * Double(muDelta)
        var clipped = false
        if let factor = ClientClipping.factor(squaredNorm: squared, clip: options.clip) {
            for i in delta.indices { delta[i] *= factor }
            muDelta *= factor
            clipped = true
        }
        delta.withUnsafeBufferPointer { emit(touched, $0) }
        var result = ClientUsers(embedding: [Float](repeating: 0, count: users.count * d), bias: [Float](repeating: 0, count: users.count))
        for u in 0..<users.count {
            for k in 0..<d { result.embedding[u * d + k] = userParams[u * w + k] }
            result.bias[u] = userParams[u * w + d]
        }
        return (result, muDelta, clipped)
    }
}

/// Optimiser state of one scalar parameter.
struct MomentState {
    var grad: Float = 0
    var m: Float = 0
    var v: Float = 0
}

/// Item-side buffers of one client: local copies of the touched rows (d + 1 wide).
struct Items {
    let params, grad, m, v: UnsafeMutableBufferPointer<Float>
    let inBatch: UnsafeMutableBufferPointer<Bool>
    let slotOf: UnsafeMutablePointer<Int32>
    /// The global value of each slot's row (d + 1 wide).
    let global: UnsafeBufferPointer<Float>
}

/// User-side buffers of one client (d + 1 wide rows).
struct Users {
    let params, grad, m, v: UnsafeMutableBufferPointer<Float>
    let inBatch: UnsafeMutableBufferPointer<Bool>
}

/// One pass over a client's examples: minibatches of per-example gradients, then L2,
/// FedProx and the local optimiser on the rows the batch touched.
struct Pass {
    let d: Int
    let objective: Objective
    let optimizer: TrainingOptions.Optimizer
    let learningRate, l2, proxMu: Float
    let batch: Int
    let trainItems: Bool
    let negativesPerPositive: Int
    let globalBias: Float

    func run(order: [Int], exUser: [Int32], exItem: [Int32], exRating: [Float], negatives: [Int32],
             items: Items, users: Users, mu: inout Float, muState: inout MomentState, step: inout Int) {
        // Rows are addressed through pointers to their first value: no overflow check per
        // element, so the compiler can vectorise the element-wise loops (each value still
        // takes the same operations in the same order; the dot products stay sequential).
        guard !order.isEmpty, let q = items.params.baseAddress, let gq = items.grad.baseAddress,
              let mq = items.m.baseAddress, let vq = items.v.baseAddress, let global = items.global.baseAddress,
              let p = users.params.baseAddress, let gp = users.grad.baseAddress,
              let mp = users.m.baseAddress, let vp = users.v.baseAddress
        else { return }
        let w = d + 1
        var batchSlots: [Int] = [], batchUsers: [Int] = []
        batchSlots.reserveCapacity(batch * (2 + negativesPerPositive))
        batchUsers.reserveCapacity(batch)
        var cursor = 0
        while cursor < order.count {
            let end = min(order.count, cursor + batch)
            for position in cursor..<end {
                let e = order[position]
                let u = Int(exUser[e])
                if !users.inBatch[u] { users.inBatch[u] = true; batchUsers.append(u) }
                let pu = p + u * w, gpu = gp + u * w
                let si = Int(items.slotOf[Int(exItem[e])]) - 1
                let qi = q + si * w, gqi = gq + si * w
                if trainItems && !items.inBatch[si] { items.inBatch[si] = true; batchSlots.append(si) }
                switch objective {
                case .mse, .wals:
                    var dot: Float = 0
                    for k in 0..<d { dot += pu[k] * qi[k] }
                    let error = exRating[e] - (mu + pu[d] + qi[d] + dot)
                    for k in 0..<d {
                        gpu[k] -= error * qi[k]
                        if trainItems { gqi[k] -= error * pu[k] }
                    }
                    gpu[d] -= error
                    if trainItems { gqi[d] -= error; muState.grad -= error }
                case .bpr:
                    let sj = Int(items.slotOf[Int(negatives[e])]) - 1
                    let qj = q + sj * w, gqj = gq + sj * w
                    if trainItems && !items.inBatch[sj] { items.inBatch[sj] = true; batchSlots.append(sj) }
                    var x = qi[d] - qj[d]
                    for k in 0..<d { x += pu[k] * (qi[k] - qj[k]) }
                    let g = 1 / (1 + expf(x))  // σ(−x): the gradient scale of −log σ(x)
                    for k in 0..<d {
                        gpu[k] -= g * (qi[k] - qj[k])
                        if trainItems {
                            gqi[k] -= g * pu[k]
                            gqj[k] += g * pu[k]
                        }
                    }
                    if trainItems { gqi[d] -= g; gqj[d] += g }
                case .bce:
                    let base = e * negativesPerPositive
                    for j in -1..<negativesPerPositive {
                        let target: Float = j < 0 ? 1 : 0
                        let s = j < 0 ? si : Int(items.slotOf[Int(negatives[base + j])]) - 1
                        let qs = q + s * w, gqs = gq + s * w
                        if trainItems && !items.inBatch[s] { items.inBatch[s] = true; batchSlots.append(s) }
                        var logit = mu + pu[d] + qs[d]
                        for k in 0..<d { logit += pu[k] * qs[k] }
                        let g = 1 / (1 + expf(-logit)) - target
                        for k in 0..<d {
                            gpu[k] += g * qs[k]
                            if trainItems { gqs[k] += g * pu[k] }
                        }
                        gpu[d] += g
                        if trainItems { gqs[d] += g; muState.grad += g }
                    }
                case .filter:
                    preconditionFailure("a gfcf model is not trained by SGD")
                }
            }
            // Apply: L2 (and FedProx toward the global row) then the local optimiser.
            step += 1
            for u in batchUsers {
                users.inBatch[u] = false
                let row = u * w
                let pr = p + row, gr = gp + row, mr = mp + row, vr = vp + row
                for k in 0..<w {
                    let g = gr[k] + l2 * pr[k]
                    pr[k] -= update(g, &mr[k], &vr[k], step: step)
                    gr[k] = 0
                }
            }
            for s in batchSlots {
                items.inBatch[s] = false
                let row = s * w
                let qr = q + row, gr = gq + row, mr = mq + row, vr = vq + row, globalRow = global + row
                for k in 0..<w {
                    let g = gr[k] + l2 * qr[k] + proxMu * (qr[k] - globalRow[k])
                    qr[k] -= update(g, &mr[k], &vr[k], step: step)
                    gr[k] = 0
                }
            }
            if trainItems && objective != .bpr {
                mu -= update(muState.grad + proxMu * (mu - globalBias), &muState.m, &muState.v, step: step)
            }
            muState.grad = 0
            batchSlots.removeAll(keepingCapacity: true)
            batchUsers.removeAll(keepingCapacity: true)
            cursor = end
        }
    }

    /// The step to subtract for gradient `g` under the local optimiser.
    @inline(__always)
    func update(_ g: Float, _ m: inout Float, _ v: inout Float, step: Int) -> Float {
        switch optimizer {
        case .sgd:
            return learningRate * g
        case .adam:
            // Kingma & Ba 2015, with bias correction.
            let beta1: Float = 0.9, beta2: Float = 0.999
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
            let mHat = m / (1 - powf(beta1, Float(step)))
            let vHat = v / (1 - powf(beta2, Float(step)))
            return learningRate * mHat / (vHat.squareRoot() + 1e-8)
        case .adagrad:
            // Duchi, Hazan & Singer 2011: v accumulates g² over the client's steps.
            v += g * g
            return learningRate * g / (v.squareRoot() + 1e-8)
        }
    }
}
