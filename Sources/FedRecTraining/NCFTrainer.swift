#if canImport(Glibc)
import Glibc
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
/// parameters the batch touched and take one step. Buffers are reused across clients;
/// the catalogue's index uses lazily zeroed pages, so a client costs what its own data
/// costs.
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

    public init(model: NCFModel, options: TrainingOptions) {
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
        workspace = NCFNetwork.Workspace(model.network)
    }

    deinit {
        free(slotOf)
        free(mark)
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
        for k in denseParams.indices {
            denseParams[k] = model.dense[k]
            denseGrad[k] = 0
            denseM[k] = 0
            denseV[k] = 0
        }
    }

    /// One client's result: its users' trained vectors and its dense change.
    public struct Result {
        /// users × userWidth.
        public var users: [Float]
        /// `network.denseCount` values: trained minus global.
        public var denseDelta: [Float]
    }

    /// Trains the client whose users are `users`, starting from `start` (users ×
    /// userWidth), and calls `emit(item, delta)` for every item row it touched (userWidth
    /// values), in the order the rows were first touched. With `sharedEpochs` 0 only the
    /// users are trained (reconstruction: `userEpochs` passes with the model frozen).
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
            var ws: [Float] = []
            swap(&q, &itemParams); swap(&gq, &itemGrad); swap(&mq, &itemM); swap(&vq, &itemV); swap(&qIn, &itemInBatch)
            swap(&theta, &denseParams); swap(&gTheta, &denseGrad); swap(&mTheta, &denseM); swap(&vTheta, &denseV)
            swap(&ws, &workspace.buffer)
            let slotOf = self.slotOf
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
            ws.withUnsafeMutableBufferPointer { wsb in
                let scratch = wsb.baseAddress!
                @inline(__always) func move(_ x: inout Float, _ g: Float, _ m: inout Float, _ v: inout Float) {
                    if adam {
                        // Kingma & Ba 2015, with bias correction.
                        m = 0.9 * m + 0.1 * g
                        v = 0.999 * v + 0.001 * g * g
                        let mHat = m / (1 - powf(0.9, Float(step)))
                        let vHat = v / (1 - powf(0.999, Float(step)))
                        x -= lr * mHat / (vHat.squareRoot() + 1e-8)
                    } else {
                        x -= lr * g
                    }
                }
                while cursor < total {
                    let end = min(cursor + batch, total)
                    for position in cursor..<end {
                        let e = order[position]
                        let u = Int(exUser[e])
                        let s = Int(slotOf[Int(exItem[e])]) - 1
                        let userRow = p.baseAddress! + u * w, itemRow = q.baseAddress! + s * w
                        let z = network.forward(user: userRow, item: itemRow, dense: theta.baseAddress!, ws: scratch)
                        // ∂loss/∂z: σ(z) − y for the log loss, z − r for ½(z − r)².
                        let delta = implicit ? 1 / (1 + expf(-z)) - exLabel[e] : z - exLabel[e]
                        network.backward(delta, user: userRow, item: itemRow, dense: theta.baseAddress!, gradUser: gp.baseAddress! + u * w,
                                         gradItem: gq.baseAddress! + s * w, gradDense: gTheta.baseAddress!, ws: scratch)
                        if !qIn[s] { qIn[s] = true; batchSlots.append(s) }
                        if !pIn[u] { pIn[u] = true; batchUsers.append(u) }
                    }
                    step += 1
                    let scale = 1 / Float(end - cursor)
                    for u in batchUsers {
                        for k in (u * w)..<((u + 1) * w) {
                            move(&p[k], gp[k] * scale + l2 * p[k], &mp[k], &vp[k])
                            gp[k] = 0
                        }
                        pIn[u] = false
                    }
                    for s in batchSlots {
                        for k in (s * w)..<((s + 1) * w) {
                            if trainShared { move(&q[k], gq[k] * scale + l2 * q[k], &mq[k], &vq[k]) }
                            gq[k] = 0
                        }
                        qIn[s] = false
                    }
                    for k in 0..<theta.count {
                        if trainShared { move(&theta[k], gTheta[k] * scale + l2 * theta[k], &mTheta[k], &vTheta[k]) }
                        gTheta[k] = 0
                    }
                    batchSlots.removeAll(keepingCapacity: true)
                    batchUsers.removeAll(keepingCapacity: true)
                    cursor = end
                }
            }}}}}}}}}}}}}}}
            swap(&q, &itemParams); swap(&gq, &itemGrad); swap(&mq, &itemM); swap(&vq, &itemV); swap(&qIn, &itemInBatch)
            swap(&theta, &denseParams); swap(&gTheta, &denseGrad); swap(&mTheta, &denseM); swap(&vTheta, &denseV)
            swap(&ws, &workspace.buffer)
        }
        if sharedEpochs > 0 {
            var delta = [Float](repeating: 0, count: width)
            for (s, item) in slotItems.enumerated() {
                for k in 0..<width { delta[k] = itemParams[s * width + k] - itemGlobal[s * width + k] }
                delta.withUnsafeBufferPointer { emit(item, $0) }
            }
        }
        var denseDelta = [Float](repeating: 0, count: denseParams.count)
        for k in denseDelta.indices { denseDelta[k] = denseParams[k] - model.dense[k] }
        return Result(users: userParams, denseDelta: denseDelta)
    }
}
