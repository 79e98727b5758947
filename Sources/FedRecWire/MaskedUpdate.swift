import FedRecFormats
import FedRecSecureAggregation
import FedRecSupport

/// Which coordinates of a dense update vector are what, so that a shard's update can be
/// masked as one vector mod 2^b and the unmasked sum read back as an ordinary `sum`.
///
/// A secure update covers the whole model: a sparse update's `rows` would tell the server
/// which items its clients touched, so every item row is present, zero where untouched. The
/// vector is, in order: each row tensor (name order) as items × width values, row-major;
/// `row_clients` (items); `row_weight` (items, left out when the weighting is `uniform`,
/// where it equals `row_clients`); each dense tensor (name order); the update's `clients`
/// and `weight` (the latter again only when not uniform).
///
/// Model values (the row and dense tensors) are clipped to [-c, c] and rounded
/// stochastically (`Quantizer`), with c the quantizer's clip bound or a bound of the tensor's
/// own (`tensorClips`: a tensor of sums of counts, say); counts and example weights are
/// integers and are encoded exactly, which requires each party's to be at most M (the
/// quantizer's levels).
public struct SecureUpdateLayout: Sendable, Equatable {
    public let items: Int
    /// (name, width, clip bound) of each row tensor, by name.
    public let rowTensors: [(name: String, width: Int, clip: Float)]
    /// (name, count, clip bound) of each dense tensor, by name.
    public let denseTensors: [(name: String, count: Int, clip: Float)]
    /// Whether `row_weight` and `weight` are in the vector (not for uniform weighting).
    public let carriesWeights: Bool
    /// Distributed DP: the vector is the encoding's rotated, rounded, noised release and the
    /// client count, not the update's tensors (`DistributedDPEncoding`).
    public let distributed: DistributedDPEncoding?

    /// The layout of a distributed-DP vector for a model of `items` items.
    public init(items: Int, distributed: DistributedDPEncoding) {
        self.items = items
        rowTensors = []
        denseTensors = []
        carriesWeights = false
        self.distributed = distributed
    }

    /// The layout of `update`'s tensors, each clipped to `clip` unless `tensorClips` names it
    /// (`rows.NAME` or `dense.NAME`). Throws `.usage` for a bound that is not positive or a
    /// name the update does not hold.
    public init(update: ModelUpdate, clip: Float, tensorClips: [String: Float] = [:]) throws {
        var unused = Set(tensorClips.keys)
        func bound(_ name: String) throws -> Float {
            let c = tensorClips[name] ?? clip
            unused.remove(name)
            guard c.isFinite, c > 0 else { throw FedRecError(.usage, "the secure-aggregation clip bound of \(name) must be positive, not \(c)") }
            return c
        }
        items = update.header.config.items
        rowTensors = try update.rowTensors.sorted { $0.key < $1.key }.map { ($0.key, $0.value.width, try bound(ModelUpdate.rowPrefix + $0.key)) }
        denseTensors = try update.dense.sorted { $0.key < $1.key }.map { ($0.key, $0.value.count, try bound(ModelUpdate.densePrefix + $0.key)) }
        carriesWeights = update.header.weighting != .uniform
        distributed = nil
        if let stray = unused.sorted().first {
            throw FedRecError(.usage, "a secure-aggregation clip bound for \(stray), which the update does not hold")
        }
    }

    /// The layout a masked file records (`description`), with the distributed-DP encoding
    /// it names (`ddp=LENGTH`) when there is one; throws `.corrupt` on anything else.
    public init(parsing text: String, distributed: DistributedDPEncoding? = nil, file: String) throws {
        var items: Int?
        var rows = [(name: String, width: Int, clip: Float)](), dense = [(name: String, count: Int, clip: Float)]()
        var weights: Bool?
        var ddpLength: Int?
        for field in text.split(separator: ";") {
            let parts = field.split(separator: "=", maxSplits: 1).map(String.init)
            let numbers = parts.count == 2 ? parts[1].split(separator: "@", maxSplits: 1).map(String.init) : []
            let clip = numbers.count == 2 ? Float(numbers[1]) : nil
            guard let first = numbers.first, let value = Int(first), value >= 0, value <= FedRecFile.maximumCount,
                numbers.count == 1 || (clip.map { $0.isFinite && $0 > 0 } ?? false)
            else {
                throw FedRecError(.corrupt, file: file, "secure-update layout field '\(field)' is not NAME=COUNT or NAME=COUNT@CLIP")
            }
            if parts[0] == "items" {
                items = value
            } else if parts[0] == "weights" {
                weights = value == 1
            } else if parts[0] == "ddp" {
                ddpLength = value
            } else if parts[0].hasPrefix(ModelUpdate.rowPrefix) {
                guard let clip else { throw FedRecError(.corrupt, file: file, "secure-update layout field '\(field)' has no clip bound") }
                rows.append((String(parts[0].dropFirst(ModelUpdate.rowPrefix.count)), value, clip))
            } else if parts[0].hasPrefix(ModelUpdate.densePrefix) {
                guard let clip else { throw FedRecError(.corrupt, file: file, "secure-update layout field '\(field)' has no clip bound") }
                dense.append((String(parts[0].dropFirst(ModelUpdate.densePrefix.count)), value, clip))
            } else {
                throw FedRecError(.corrupt, file: file, "secure-update layout field '\(field)' is not items, weights, rows.NAME or dense.NAME")
            }
        }
        guard let items, let weights else {
            throw FedRecError(.corrupt, file: file, "secure-update layout '\(text.prefix(60))' lacks items or weights")
        }
        self.items = items
        self.rowTensors = rows
        self.denseTensors = dense
        self.carriesWeights = weights
        guard ddpLength == distributed?.length, distributed == nil || (rows.isEmpty && dense.isEmpty && !weights) else {
            throw FedRecError(.corrupt, file: file, "secure-update layout '\(text.prefix(60))' does not match its distributed-DP encoding")
        }
        self.distributed = distributed
        guard length <= MaskExpansion.maximumCount else {
            throw FedRecError(.corrupt, file: file, "a secure-update layout of \(length) coordinates")
        }
    }

    /// "items=N;weights=0|1;rows.NAME=WIDTH@CLIP;…;dense.NAME=COUNT@CLIP;…", or
    /// "items=N;weights=0;ddp=LENGTH" for distributed DP.
    public var description: String {
        if let distributed { return "items=\(items);weights=0;ddp=\(distributed.length)" }
        return (["items=\(items)", "weights=\(carriesWeights ? 1 : 0)"]
            + rowTensors.map { "\(ModelUpdate.rowPrefix)\($0.name)=\($0.width)@\($0.clip)" }
            + denseTensors.map { "\(ModelUpdate.densePrefix)\($0.name)=\($0.count)@\($0.clip)" }).joined(separator: ";")
    }

    /// The number of coordinates of the vector.
    public var length: Int {
        if let distributed { return distributed.length }
        let rowValues = rowTensors.reduce(0) { $0 + items * $1.width }
        let counts = items * (carriesWeights ? 2 : 1) + (carriesWeights ? 2 : 1)
        return rowValues + counts + denseTensors.reduce(0) { $0 + $1.count }
    }

    public static func == (a: SecureUpdateLayout, b: SecureUpdateLayout) -> Bool {
        a.description == b.description && a.distributed == b.distributed
    }

    /// `update`'s tensors with `clips`' bounds (to compare an update with a layout).
    init(sameTensorsAs update: ModelUpdate, clips: SecureUpdateLayout) {
        items = update.header.config.items
        let rowClip = Dictionary(clips.rowTensors.map { ($0.name, $0.clip) }, uniquingKeysWith: { a, _ in a })
        let denseClip = Dictionary(clips.denseTensors.map { ($0.name, $0.clip) }, uniquingKeysWith: { a, _ in a })
        rowTensors = update.rowTensors.sorted { $0.key < $1.key }.map { ($0.key, $0.value.width, rowClip[$0.key] ?? 0) }
        denseTensors = update.dense.sorted { $0.key < $1.key }.map { ($0.key, $0.value.count, denseClip[$0.key] ?? 0) }
        carriesWeights = update.header.weighting != .uniform
        distributed = nil
    }

    /// The update as integers mod 2^b: values quantised by `quantizer`, counts exact.
    /// Returns the words and how many values were clipped. Throws `.usage` when a count or
    /// weight exceeds M (more modulus bits are needed) and `.badData` for a weight that is not
    /// an integer. Specialised for `ChaCha20Generator`, the parties' generator (as
    /// `Quantizer.quantize` is).
    @_specialize(exported: true, where G == ChaCha20Generator)
    public func encode<G: SkippingRandomNumberGenerator>(
        _ update: ModelUpdate, quantizer: Quantizer, using generator: inout G
    ) throws -> (words: [UInt32], clipped: Int) {
        guard distributed == nil, SecureUpdateLayout(sameTensorsAs: update, clips: self) == self else {
            throw FedRecError(.mismatch, "an update whose tensors are not the secure layout's \(description)")
        }
        var words = [UInt32](repeating: 0, count: length)
        var clipped = 0
        var offset = 0
        for (name, width, bound) in rowTensors {
            let quantizer = try quantizer.clipped(to: bound)
            var dense = [Float](repeating: 0, count: items * width)
            let tensor = update.rowTensors[name]?.values ?? []
            for (k, row) in update.rows.enumerated() {
                for j in 0..<width { dense[Int(row) * width + j] = tensor[k * width + j] }
            }
            clipped += dense.reduce(0) { $0 + (abs($1) > bound ? 1 : 0) }
            try quantize(dense, quantizer, into: &words, at: offset, using: &generator)
            offset += dense.count
        }
        var rowClients = [Int64](repeating: 0, count: items)
        var rowWeight = [Int64](repeating: 0, count: items)
        for (k, row) in update.rows.enumerated() {
            rowClients[Int(row)] = Int64(update.rowClients[k])
            rowWeight[Int(row)] = try Self.integer(update.rowWeight[k], what: "a row weight")
        }
        try encodeExact(rowClients, quantizer, into: &words, at: &offset, what: "clients of an item row")
        if carriesWeights { try encodeExact(rowWeight, quantizer, into: &words, at: &offset, what: "example weight of an item row") }
        for (name, count, bound) in denseTensors {
            let quantizer = try quantizer.clipped(to: bound)
            let values = update.dense[name] ?? [Float](repeating: 0, count: count)
            clipped += values.reduce(0) { $0 + (abs($1) > bound ? 1 : 0) }
            try quantize(values, quantizer, into: &words, at: offset, using: &generator)
            offset += count
        }
        try encodeExact([Int64(update.header.clients)], quantizer, into: &words, at: &offset, what: "clients")
        if carriesWeights {
            try encodeExact([try Self.integer(Float(update.header.weight), what: "the weight")], quantizer, into: &words, at: &offset, what: "example weight")
        }
        precondition(offset == length)
        return (words, clipped)
    }

    /// The ordinary sum from the unmasked integer sum of `parties` parties: rows touched by at
    /// least one client, their tensors, counts and weights; `header` gives the rest.
    public func decode(_ sum: [UInt32], parties: Int, quantizer: Quantizer, header: UpdateHeader) throws -> ModelUpdate {
        if let distributed {
            return try distributed.decode(sum, parties: parties, quantizer: quantizer, header: header)
        }
        guard sum.count == length else {
            throw FedRecError(.shape, "an unmasked sum of \(sum.count) values where the layout has \(length)")
        }
        guard parties <= quantizer.maximumParties else {
            throw FedRecError(.usage, "a sum of \(parties) parties where the modulus was chosen for at most \(quantizer.maximumParties): it may have wrapped")
        }
        var offset = 0
        var rowSegments = [(String, Int, Int, Double)]()  // name, width, offset, step
        for (name, width, clip) in rowTensors {
            rowSegments.append((name, width, offset, Double(clip) / Double(quantizer.levels)))
            offset += items * width
        }
        let rowClients = (0..<items).map { quantizer.signedValue(sum[offset + $0]) }
        offset += items
        var rowWeight = rowClients
        if carriesWeights {
            rowWeight = (0..<items).map { quantizer.signedValue(sum[offset + $0]) }
            offset += items
        }
        var dense = [String: [Float]]()
        for (name, count, clip) in denseTensors {
            let step = Double(clip) / Double(quantizer.levels)
            dense[name] = sum[offset..<(offset + count)].map { Float(Double(quantizer.signedValue($0)) * step) }
            offset += count
        }
        let clients = quantizer.signedValue(sum[offset])
        let weight = carriesWeights ? quantizer.signedValue(sum[offset + 1]) : clients
        guard clients >= 0, clients <= Int64(FedRecFile.maximumCount), rowClients.allSatisfy({ $0 >= 0 && $0 <= clients }),
            weight >= 0, rowWeight.allSatisfy({ $0 >= 0 })
        else {
            throw FedRecError(.corrupt, "the unmasked sum's counts are negative or exceed its clients: the masks did not cancel")
        }
        let touched = (0..<items).filter { rowClients[$0] > 0 }
        var out = header
        out.clients = Int(clients)
        out.weight = Double(weight)
        var update = ModelUpdate(
            header: out, rows: touched.map { Int32($0) }, rowClients: touched.map { Int32(rowClients[$0]) },
            rowWeight: touched.map { Float(rowWeight[$0]) })
        for (name, width, start, step) in rowSegments {
            var tensor = [Float]()
            tensor.reserveCapacity(touched.count * width)
            for row in touched {
                for j in 0..<width { tensor.append(Float(Double(quantizer.signedValue(sum[start + row * width + j])) * step)) }
            }
            update.rowTensors[name] = RowTensor(width: width, values: tensor)
        }
        update.dense = dense
        return update
    }

    private func quantize<G: SkippingRandomNumberGenerator>(
        _ values: [Float], _ quantizer: Quantizer, into words: inout [UInt32], at offset: Int, using generator: inout G
    ) throws {
        try values.withUnsafeBufferPointer { input in
            try words.withUnsafeMutableBufferPointer { all in
                let target = UnsafeMutableBufferPointer(rebasing: all[offset..<(offset + input.count)])
                try quantizer.quantize(input, into: target, using: &generator)
            }
        }
    }

    private func encodeExact(
        _ values: [Int64], _ quantizer: Quantizer, into words: inout [UInt32], at offset: inout Int, what: String
    ) throws {
        for value in values {
            guard abs(value) <= quantizer.countLevels else {
                throw FedRecError(
                    .usage,
                    "a party's \(what) is \(value), above the \(quantizer.countLevels) a \(quantizer.modulusBits)-bit modulus leaves each of \(quantizer.maximumParties) parties: use more --secagg-bits")
            }
            words[offset] = UInt32(truncatingIfNeeded: value) & quantizer.modulusMask
            offset += 1
        }
    }

    static func integer(_ value: Float, what: String) throws -> Int64 {
        guard value.isFinite, value == value.rounded(), abs(value) < 0x1p53 else {
            throw FedRecError(.badData, "\(what) is \(value), not an integer: secure aggregation sums integer weights only")
        }
        return Int64(value)
    }
}

/// A masked update (`kind = masked_update`, one shard's parties) or a sum of them
/// (`masked_sum`): the update header as an ordinary update has it (with `weight` 0: a
/// client's number of examples is private, so the weights are inside the vector), the secure layout, the quantizer, the
/// parties summed and the packed vector.
public struct MaskedUpdateFile: Sendable {
    public var header: UpdateHeader
    public var layout: SecureUpdateLayout
    public var quantizer: Quantizer
    public var masked: MaskedInput
    /// Model values clipped to [-c, c] by the parties summed (distributed DP: client
    /// vectors scaled down to norm c).
    public var clipped: Int
    /// Distributed DP: whether every party summed drew its noise from the system CSPRNG
    /// (false once one used a test seed: such a sum has no privacy).
    public var noiseIsPrivate: Bool

    public init(
        header: UpdateHeader, layout: SecureUpdateLayout, quantizer: Quantizer, masked: MaskedInput, clipped: Int,
        noiseIsPrivate: Bool = true
    ) {
        var header = header
        header.weight = 0
        self.header = header
        self.layout = layout
        self.quantizer = quantizer
        self.masked = masked
        self.clipped = clipped
        self.noiseIsPrivate = noiseIsPrivate
    }

    static let layoutKey = "secagg_layout"
    static let clipKey = "secagg_clip"
    static let bitsKey = "secagg_modulus_bits"
    static let partiesKey = "secagg_max_parties"
    static let clippedKey = "secagg_clipped"
    static let levelsKey = "secagg_levels"
    static let distributedKey = "secagg_ddp"
    static let distributedPrivateKey = "secagg_ddp_private"

    /// Writes the file (`kind` masked update or masked sum).
    public func write(to path: String, kind: FileKind) throws {
        let empty = ModelUpdate(header: header)
        var writer = SafeTensorsWriter(metadata: empty.writer(kind: kind).metadata)
        for (key, value) in SecAggFiles.metadata(kind: kind, sessionID: masked.sessionID, round: masked.round) {
            writer.metadata[key] = value
        }
        writer.metadata[Self.layoutKey] = layout.description
        writer.metadata[Self.clipKey] = "\(quantizer.clipBound)"
        writer.metadata[Self.bitsKey] = String(quantizer.modulusBits)
        writer.metadata[Self.partiesKey] = String(quantizer.maximumParties)
        writer.metadata[Self.clippedKey] = String(clipped)
        if let cap = quantizer.maximumLevels { writer.metadata[Self.levelsKey] = String(cap) }
        if let distributed = layout.distributed {
            writer.metadata[Self.distributedKey] = distributed.description
            writer.metadata[Self.distributedPrivateKey] = noiseIsPrivate ? "true" : "false"
        }
        SecAggFiles.addParties(masked.parties, named: "parties", to: &writer)
        writer.add("masked", shape: [BitPacking.byteCount(count: masked.values.count, bits: masked.modulusBits)], .u8(BitPacking.pack(masked.values, bits: masked.modulusBits)))
        try writer.write(to: path, durable: false)
    }

    /// Reads a masked update or sum.
    public static func read(_ path: String) throws -> (file: MaskedUpdateFile, kind: FileKind) {
        let file = try FedRecFile(path: path, kinds: [.maskedUpdate, .maskedSum])
        let (_, sessionID, round) = try SecAggFiles.open(path, kind: file.kind)
        var header = try ModelUpdate.header(of: file)
        header.extra = header.extra.filter { !$0.key.hasPrefix("secagg_") }
        let distributed = try file.metadata[distributedKey].map { try DistributedDPEncoding(parsing: $0, file: path) }
        let layout = try SecureUpdateLayout(parsing: try file.string(layoutKey), distributed: distributed, file: path)
        var noiseIsPrivate = true
        if distributed != nil {
            guard let flag = file.metadata[distributedPrivateKey], flag == "true" || flag == "false" else {
                throw FedRecError(.corrupt, file: path, "a distributed-DP masked file without \(distributedPrivateKey) true or false")
            }
            noiseIsPrivate = flag == "true"
        }
        guard layout.items == header.config.items else {
            throw FedRecError(.shape, file: path, "a secure layout of \(layout.items) items for a model of \(header.config.items)")
        }
        let quantizer: Quantizer
        do {
            quantizer = try Quantizer(
                clipBound: Float(try file.double(clipKey, in: Double(Float.leastNormalMagnitude)...Double(Float.greatestFiniteMagnitude))),
                modulusBits: try file.int(bitsKey, in: 2...32),
                maximumParties: try file.int(partiesKey, in: 1...SecAggParameters.maximumPartyCount),
                maximumLevels: file.metadata[levelsKey] == nil ? nil : Int64(try file.int(levelsKey, in: 1...Int(Int32.max))))
        } catch let error as FedRecError {
            throw FedRecError(.corrupt, file: path, error.message)
        }
        let parties = try SecAggFiles.parties(file, "parties")
        let packed = try SecAggFiles.byteVector(file, "masked")
        do {
            let values = try BitPacking.unpack(packed, bits: quantizer.modulusBits, count: layout.length)
            let masked = try MaskedInput(
                sessionID: sessionID, round: round, modulusBits: quantizer.modulusBits, parties: parties, values: values)
            let clipped = try file.int(clippedKey, in: 0...Int.max)
            return (
                MaskedUpdateFile(
                    header: header, layout: layout, quantizer: quantizer, masked: masked, clipped: clipped, noiseIsPrivate: noiseIsPrivate),
                file.kind
            )
        } catch let error as FedRecError {
            throw error.inFile(path)
        }
    }

    /// Adds the masked vector of another client of the same shard (cross-device groups):
    /// the header stays this one's, with `clients` counting both.
    public mutating func addClient(_ other: MaskedUpdateFile, file: String) throws {
        guard other.layout == layout, other.quantizer == quantizer, other.header.shards == header.shards else {
            throw FedRecError(.mismatch, file: file, "a client's masked update of another layout, quantizer or shard")
        }
        do {
            masked = try masked.adding(other.masked)
        } catch let error as FedRecError {
            throw error.inFile(file)
        }
        header.clients += other.header.clients
        header.clipped += other.header.clipped
        clipped += other.clipped
        noiseIsPrivate = noiseIsPrivate && other.noiseIsPrivate
    }

    /// Adds `other` (read from `file`): same header fields, layout and quantizer; parties
    /// disjoint; vectors added mod 2^b; shards merged.
    public mutating func add(_ other: MaskedUpdateFile, file: String) throws {
        var probe = ModelUpdate(header: header)
        try probe.add(ModelUpdate(header: other.header), file: file)
        guard other.layout == layout else {
            throw FedRecError(.mismatch, file: file, "has another secure layout (\(other.layout.description.prefix(60)))")
        }
        guard other.quantizer == quantizer else {
            throw FedRecError(.mismatch, file: file, "was quantised otherwise (clip \(other.quantizer.clipBound), \(other.quantizer.modulusBits) bits, \(other.quantizer.maximumParties) parties)")
        }
        do {
            masked = try masked.adding(other.masked)
        } catch let error as FedRecError {
            throw error.inFile(file)
        }
        header = probe.header
        header.weight = 0
        clipped += other.clipped
        noiseIsPrivate = noiseIsPrivate && other.noiseIsPrivate
    }
}

extension MaskedUpdateFile {
    /// Whether `path` is a masked update or masked sum (read from its header alone), so
    /// fl-aggregate can tell which kind of sum to make.
    public static func isMasked(_ path: String) throws -> Bool {
        let kind = try SafeTensorsFile(path: path).metadata["kind"]
        return kind == FileKind.maskedUpdate.rawValue || kind == FileKind.maskedSum.rawValue
    }

    /// The masked sum of `paths` (masked updates or sums), in the order given: addition mod
    /// 2^b is exact, so the order does not change the result.
    public static func sum(paths: [String]) throws -> MaskedUpdateFile {
        guard let first = paths.first else { throw FedRecError(.emptyInput, "no masked updates to sum") }
        var total = try read(first).file
        for path in paths.dropFirst() { try total.add(try read(path).file, file: path) }
        return total
    }
}
