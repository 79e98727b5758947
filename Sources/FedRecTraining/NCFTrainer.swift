#if canImport(Glibc)
import Glibc
#endif
#if arch(x86_64)
import _Builtin_intrinsics.intel
#endif
import FedRecData
import FedRecModel
import FedRecSupport

/// Trains one client of a neural CF model (GMF, MLP, NeuMF; He et al. 2017) by local SGD
/// or Adam, federated as in FedNCF (Perifanis & Efraimidis 2022): the client's user
/// vectors stay private; it returns the change of every item row it touched and of the
/// whole tower and prediction layer.
///
/// Implicit feedback (`bce`): every training interaction is a positive, and each pass
/// draws `negatives` items the user has not interacted with per positive (the paper's
/// pointwise log loss with sampled negatives, §3.1.1). Ratings (`mse`): squared error on
/// the ratings. Minibatches average the examples' gradients, then add L2 (λ · θ) on the
/// parameters the batch touched and take one step. A minibatch's examples go through the
/// network together (`NCFNetwork.forward(count:…)`: each tower layer one matrix product),
/// summed example by example in the order one-example passes would. Buffers are reused
/// across clients; the catalogue's index uses lazily zeroed pages, so a client costs what
/// its own data costs.
public final class NCFClientTrainer {
    let model: NCFModel
    let options: TrainingOptions
    let network: NCFNetwork
    let width: Int
    private let slotOf: UnsafeMutablePointer<Int32>  // local slot + 1
    private let mark: UnsafeMutablePointer<UInt32>  // user stamp, for "already interacted"
    private var stamp: UInt32 = 0
    private var slotItems: [Int32] = []
    private var itemParams: [Float] = [], itemGlobal: [Float] = [], itemGrad: [Float] = [], itemM: [Float] = [], itemV: [Float] = []
    private var itemInBatch: [Bool] = []
    private var denseParams: [Float], denseGrad: [Float], denseM: [Float], denseV: [Float]
    private var workspace: NCFNetwork.Workspace
    /// Examples the network takes at once (a minibatch goes through in pieces this large).
    private let chunk: Int
    private let chunkUsers: UnsafeMutablePointer<Int>, chunkItems: UnsafeMutablePointer<Int>  // rows of a piece's examples
    private let chunkDeltas: UnsafeMutablePointer<Float>  // their outputs, then ∂loss/∂z

    public convenience init(model: NCFModel, options: TrainingOptions) {
        self.init(model: model, options: options, chunk: 64)
    }

    /// `chunk`: at most this many examples go through the network at once (results do not
    /// depend on it).
    init(model: NCFModel, options: TrainingOptions, chunk: Int) {
        self.model = model
        self.options = options
        network = model.network
        width = network.userWidth
        slotOf = calloc(max(model.config.items, 1), MemoryLayout<Int32>.stride)!.assumingMemoryBound(to: Int32.self)
        mark = calloc(max(model.config.items, 1), MemoryLayout<UInt32>.stride)!.assumingMemoryBound(to: UInt32.self)
        denseParams = model.dense
        denseGrad = [Float](repeating: 0, count: model.dense.count)
        denseM = denseGrad
        denseV = denseGrad
        self.chunk = min(max(options.batchSize, 1), max(chunk, 1))
        workspace = NCFNetwork.Workspace(model.network, capacity: self.chunk)
        chunkUsers = .allocate(capacity: self.chunk)
        chunkItems = .allocate(capacity: self.chunk)
        chunkDeltas = .allocate(capacity: self.chunk)
    }

    deinit {
        free(slotOf)
        free(mark)
        chunkUsers.deallocate()
        chunkItems.deallocate()
        chunkDeltas.deallocate()
    }

    private func slot(_ item: Int32) -> Int {
        let existing = Int(slotOf[Int(item)])
        if existing > 0 { return existing - 1 }
        let s = slotItems.count
        slotItems.append(item)
        itemGlobal.append(contentsOf: model.itemRow(Int(item)))
        slotOf[Int(item)] = Int32(s + 1)
        return s
    }

    private func reset() {
        for item in slotItems { slotOf[Int(item)] = 0 }
        slotItems.removeAll(keepingCapacity: true)
        itemGlobal.removeAll(keepingCapacity: true)
        itemParams.removeAll(keepingCapacity: true)
        itemGrad.removeAll(keepingCapacity: true)
        itemM.removeAll(keepingCapacity: true)
        itemV.removeAll(keepingCapacity: true)
        itemInBatch.removeAll(keepingCapacity: true)
        denseParams.withUnsafeMutableBufferPointer { d in _ = d.update(fromContentsOf: model.dense) }
        denseGrad.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        denseM.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        denseV.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
    }

    /// One client's result: its users' trained vectors and its dense change.
    public struct Result {
        /// users × userWidth.
        public var users: [Float]
        /// `network.denseCount` values: trained minus global (clipped with the rows).
        public var denseDelta: [Float]
        /// Whether the client's update was scaled down to `options.clip`.
        public var clipped = false
    }

    /// Trains the client whose users are `users`, starting from `start` (users ×
    /// userWidth), and calls `emit(item, delta)` for every item row it touched (userWidth
    /// values), in the order the rows were first touched. With `sharedEpochs` 0 only the
    /// users are trained (reconstruction: `userEpochs` passes with the model frozen).
    ///
    /// With `options.clip` C > 0 the client's whole update, every touched item row's
    /// change and the dense change flattened into one vector, is scaled to L2 norm C when
    /// it is longer (`ClientClipping`, as MF's clients do), before `emit` sees a row.
    public func train(users: [UserRecord], start: [Float], generator: inout SeededGenerator, userEpochs: Int, sharedEpochs: Int,
                      emit: (Int32, UnsafeBufferPointer<Float>) -> Void) -> Result {
        precondition(start.count == users.count * width)
        reset()
        let implicit = model.config.objective != .mse
        let negativesPerPositive = implicit ? options.negatives : 0
        var posUser: [Int32] = [], posItem: [Int32] = [], posLabel: [Float] = []
        for (u, record) in users.enumerated() {
            for e in 0..<record.train.count {
                posUser.append(Int32(u))
                posItem.append(record.train.items[e])
                posLabel.append(implicit ? 1 : record.train.ratings[e])
            }
        }
        for item in posItem { _ = slot(item) }
        let positives = posItem.count
        let total = positives * (1 + negativesPerPositive)
        var exUser = [Int32](repeating: 0, count: total), exItem = [Int32](repeating: 0, count: total)
        var exLabel = [Float](repeating: 0, count: total)
        var order = Array(0..<total)
        var userParams = start
        var userGrad = [Float](repeating: 0, count: start.count), userM = userGrad, userV = userGrad
        var userInBatch = [Bool](repeating: false, count: users.count)
        var batchSlots: [Int] = [], batchUsers: [Int] = []
        var step = 0
        let passes = userEpochs + sharedEpochs
        let batch = max(1, options.batchSize)
        let lr = options.learningRate, l2 = options.l2, adam = options.optimizer == .adam
        for pass in 0..<passes {
            let trainShared = pass >= userEpochs
            // This pass's examples: the positives, then freshly drawn negatives.
            for p in 0..<positives {
                exUser[p] = posUser[p]; exItem[p] = posItem[p]; exLabel[p] = posLabel[p]
            }
            if negativesPerPositive > 0 {
                var position = positives
                drawNegatives(users: users, perPositive: negativesPerPositive, items: model.config.items, mark: mark, stamp: &stamp,
                              generator: &generator) { u, item in
                    exUser[position] = Int32(u); exItem[position] = item; exLabel[position] = 0
                    position += 1
                }
                for e in positives..<total { _ = slot(exItem[e]) }
            }
            // Slots created this pass: their local copy, gradient, moments and flag.
            let missing = slotItems.count * width - itemParams.count
            if missing > 0 {
                itemParams.append(contentsOf: itemGlobal[itemParams.count...])
                itemGrad.append(contentsOf: repeatElement(0, count: missing))
                itemM.append(contentsOf: repeatElement(0, count: missing))
                itemV.append(contentsOf: repeatElement(0, count: missing))
                itemInBatch.append(contentsOf: repeatElement(false, count: missing / width))
            }
            order.shuffle(using: &generator)
            let network = self.network
            let w = width
            var cursor = 0
            // Plain buffers in the hot loop: the class's arrays are swapped out of it.
            var q: [Float] = [], gq: [Float] = [], mq: [Float] = [], vq: [Float] = [], qIn: [Bool] = []
            var theta: [Float] = [], gTheta: [Float] = [], mTheta: [Float] = [], vTheta: [Float] = []
            swap(&q, &itemParams); swap(&gq, &itemGrad); swap(&mq, &itemM); swap(&vq, &itemV); swap(&qIn, &itemInBatch)
            swap(&theta, &denseParams); swap(&gTheta, &denseGrad); swap(&mTheta, &denseM); swap(&vTheta, &denseV)
            let slotOf = self.slotOf, chunk = self.chunk
            let chunkUsers = self.chunkUsers, chunkItems = self.chunkItems, chunkDeltas = self.chunkDeltas
            q.withUnsafeMutableBufferPointer { q in
            gq.withUnsafeMutableBufferPointer { gq in
            mq.withUnsafeMutableBufferPointer { mq in
            vq.withUnsafeMutableBufferPointer { vq in
            qIn.withUnsafeMutableBufferPointer { qIn in
            theta.withUnsafeMutableBufferPointer { theta in
            gTheta.withUnsafeMutableBufferPointer { gTheta in
            mTheta.withUnsafeMutableBufferPointer { mTheta in
            vTheta.withUnsafeMutableBufferPointer { vTheta in
            userParams.withUnsafeMutableBufferPointer { p in
            userGrad.withUnsafeMutableBufferPointer { gp in
            userM.withUnsafeMutableBufferPointer { mp in
            userV.withUnsafeMutableBufferPointer { vp in
            userInBatch.withUnsafeMutableBufferPointer { pIn in
                var rule = NCFStepRule(learningRate: lr, l2: l2, adam: adam)
                // With the model frozen only the users' gradients are needed.
                let gradItems = trainShared ? gq.baseAddress : nil, gradDense = trainShared ? gTheta.baseAddress : nil
                while cursor < total {
                    let end = min(cursor + batch, total)
                    var first = cursor
                    while first < end {
                        let count = min(chunk, end - first)
                        for c in 0..<count {
                            let e = order[first + c]
                            let u = Int(exUser[e])
                            let s = Int(slotOf[Int(exItem[e])]) - 1
                            chunkUsers[c] = u
                            chunkItems[c] = s
                            if trainShared && !qIn[s] { qIn[s] = true; batchSlots.append(s) }
                            if !pIn[u] { pIn[u] = true; batchUsers.append(u) }
                        }
                        network.forward(count: count, users: p.baseAddress!, userRows: chunkUsers, items: q.baseAddress!, itemRows: chunkItems,
                                        dense: theta.baseAddress!, z: chunkDeltas, ws: &workspace)
                        for c in 0..<count {
                            let z = chunkDeltas[c], label = exLabel[order[first + c]]
                            // ∂loss/∂z: σ(z) − y for the log loss, z − r for ½(z − r)².
                            chunkDeltas[c] = implicit ? 1 / (1 + expf(-z)) - label : z - label
                        }
                        network.backward(count: count, deltas: chunkDeltas, users: p.baseAddress!, userRows: chunkUsers, items: q.baseAddress!,
                                         itemRows: chunkItems, dense: theta.baseAddress!, gradUsers: gp.baseAddress!, gradItems: gradItems,
                                         gradDense: gradDense, ws: &workspace)
                        first += count
                    }
                    step += 1
                    rule.begin(step: step, examples: end - cursor)
                    for u in batchUsers {
                        rule.apply(p.baseAddress! + u * w, grad: gp.baseAddress! + u * w, m: mp.baseAddress! + u * w, v: vp.baseAddress! + u * w, count: w)
                        pIn[u] = false
                    }
                    for s in batchSlots {
                        rule.apply(q.baseAddress! + s * w, grad: gq.baseAddress! + s * w, m: mq.baseAddress! + s * w, v: vq.baseAddress! + s * w, count: w)
                        qIn[s] = false
                    }
                    if trainShared {
                        rule.apply(theta.baseAddress!, grad: gTheta.baseAddress!, m: mTheta.baseAddress!, v: vTheta.baseAddress!, count: theta.count)
                    }
                    batchSlots.removeAll(keepingCapacity: true)
                    batchUsers.removeAll(keepingCapacity: true)
                    cursor = end
                }
            }}}}}}}}}}}}}}
            swap(&q, &itemParams); swap(&gq, &itemGrad); swap(&mq, &itemM); swap(&vq, &itemV); swap(&qIn, &itemInBatch)
            swap(&theta, &denseParams); swap(&gTheta, &denseGrad); swap(&mTheta, &denseM); swap(&vTheta, &denseV)
        }
        var denseDelta = zip(denseParams, model.dense).map { $0 - $1 }
        var factor: Float?
        if sharedEpochs > 0 {
            // The client's whole update clipped as one vector: its rows' changes and the dense one.
            if options.clip > 0 {
                var squared = 0.0
                let trained = itemParams, global = itemGlobal  // local copies: no exclusivity checks
                for i in 0..<(slotItems.count * width) {
                    let change = Double(trained[i] - global[i])
                    squared += change * change
                }
                for change in denseDelta { squared += Double(change) * Double(change) }
                factor = ClientClipping.factor(squaredNorm: squared, clip: options.clip)
                if let factor { for k in denseDelta.indices { denseDelta[k] *= factor } }
            }
            var delta = [Float](repeating: 0, count: width)
            let w = width, slotItems = slotItems, scale = factor
            itemParams.withUnsafeBufferPointer { trained in
            itemGlobal.withUnsafeBufferPointer { global in
            delta.withUnsafeMutableBufferPointer { d in
                for (s, item) in slotItems.enumerated() {
                    for k in 0..<w { d[k] = trained[s * w + k] - global[s * w + k] }
                    if let scale { for k in 0..<w { d[k] *= scale } }
                    emit(item, UnsafeBufferPointer(d))
                }
            }}}
        }
        return Result(users: userParams, denseDelta: denseDelta, clipped: factor != nil)
    }
}

/// One minibatch step of an NCF client on a run of contiguous parameters: the gradient
/// g = (Σ over the batch) / examples + λ θ, then Adam (Kingma & Ba 2015, bias-corrected)
/// or plain SGD, and the gradient zeroed; 8 values at a time, each as the scalar formula
/// computes it.
struct NCFStepRule {
    let learningRate: Float, l2: Float, adam: Bool
    /// 1 / examples, and Adam's bias corrections 1 − β₁^t, 1 − β₂^t of the current step.
    private var scale: Float = 1, correction1: Float = 1, correction2: Float = 1

    init(learningRate: Float, l2: Float, adam: Bool) {
        self.learningRate = learningRate
        self.l2 = l2
        self.adam = adam
    }

    /// Step `step` (from 1) over a batch of `examples`.
    mutating func begin(step: Int, examples: Int) {
        scale = 1 / Float(examples)
        if adam {
            correction1 = 1 - powf(0.9, Float(step))
            correction2 = 1 - powf(0.999, Float(step))
        }
    }

    @inline(__always)
    func apply(_ x: UnsafeMutablePointer<Float>, grad: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>,
               v: UnsafeMutablePointer<Float>, count: Int) {
        let lr = learningRate, l2 = l2, scale = scale, c1 = correction1, c2 = correction2
        @inline(__always) func load(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> { UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self) }
        @inline(__always) func store(_ value: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
            UnsafeMutableRawPointer(p).storeBytes(of: value, as: SIMD8<Float>.self)
        }
        var k = 0
        if adam {
            while k + 8 <= count {
                let xs = load(x + k)
                let g = load(grad + k) * scale + l2 * xs
                let ms = 0.9 * load(m + k) + 0.1 * g
                let vs = 0.999 * load(v + k) + 0.001 * g * g
                store(ms, m + k)
                store(vs, v + k)
                store(xs - lr * (ms / c1) / (Self.squareRoot(vs / c2) + 1e-8), x + k)
                k += 8
            }
            while k < count {
                let g = grad[k] * scale + l2 * x[k]
                m[k] = 0.9 * m[k] + 0.1 * g
                v[k] = 0.999 * v[k] + 0.001 * g * g
                x[k] -= lr * (m[k] / c1) / ((v[k] / c2).squareRoot() + 1e-8)
                k += 1
            }
        } else {
            while k + 8 <= count {
                let xs = load(x + k)
                store(xs - lr * (load(grad + k) * scale + l2 * xs), x + k)
                k += 8
            }
            while k < count {
                x[k] -= lr * (grad[k] * scale + l2 * x[k])
                k += 1
            }
        }
        grad.update(repeating: 0, count: count)
    }

    /// √ of each value, correctly rounded as `Float.squareRoot()` (SIMD8's own calls the C
    /// library lane by lane; SSE has the instruction).
    @inline(__always)
    static func squareRoot(_ v: SIMD8<Float>) -> SIMD8<Float> {
        #if arch(x86_64)
        SIMD8(lowHalf: _mm_sqrt_ps(v.lowHalf), highHalf: _mm_sqrt_ps(v.highHalf))
        #else
        v.squareRoot()
        #endif
    }
}
