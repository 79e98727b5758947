import FedRecFormats
import FedRecModel
import FedRecSupport

/// Personalized search: ranks a catalogue for a text query, optionally blended with one
/// user's learned preference.
///
/// For a query embedding q, item text embeddings t_i (both L2-normalised) and a user's
/// model scores s_i = b_i + p_u·q_i over the whole catalogue, item i scores
///
///     score_i = cos(q, t_i) + β · z_i,    z_i = (s_i − mean(s)) / std(s)
///
/// The preference is standardised per user over the catalogue because raw MF scores have
/// no fixed scale (they differ by objective, model and user), while cosines do; after
/// standardisation β reads as "how much cosine one standard deviation of preference is
/// worth", the same for every user. β = 0 is text-only ranking; a user whose scores are
/// all equal (std 0) gets z = 0, hence the text-only ranking.
public struct PersonalizedSearch: Sendable {
    /// Item text embeddings, rows L2-normalised, row i for item index i.
    public let rows: [Float]
    public let items: Int
    public let dim: Int

    /// - Parameter table: the dataset's item text table (`fl-encode` writes its rows
    ///   normalised already; they are normalised again here, so any table works; a zero
    ///   row stays zero and matches nothing).
    public init(table: TextEmbeddingTable) {
        items = table.items
        dim = table.dim
        var rows = table.vectors
        Self.normaliseRows(&rows, dim: dim)
        self.rows = rows
    }

    /// Cosine similarity of `query` to every item's text.
    /// - Throws: `.shape` when the query's length is not the table's dimension, `.badData`
    ///   when the query is zero or not finite.
    /// - Complexity: O(items · dim).
    public func similarities(to query: [Float], file: String? = nil) throws -> [Float] {
        guard query.count == dim else {
            throw FedRecError(.shape, file: file, "the query vector has \(query.count) values, the item text table \(dim)")
        }
        var q = query
        guard q.allSatisfy(\.isFinite) else { throw FedRecError(.badData, file: file, "the query vector holds a value that is not finite") }
        Self.normaliseRows(&q, dim: dim)
        guard q.contains(where: { $0 != 0 }) else { throw FedRecError(.badData, file: file, "the query vector is zero") }
        var out = [Float](repeating: 0, count: items)
        q.withUnsafeBufferPointer { q in
            rows.withUnsafeBufferPointer { t in
                out.withUnsafeMutableBufferPointer { out in
                    for i in 0..<items { out[i] = VectorKernels.dot(q.baseAddress!, t.baseAddress! + i * dim, n: dim) }
                }
            }
        }
        return out
    }

    /// Preference scores standardised over the catalogue: (s − mean) / std, population
    /// std, computed in Double; all zeros when the std is 0. Non-finite scores stay as
    /// they are and are left out of the mean and std.
    /// - Complexity: O(items).
    public static func standardised(_ scores: [Float]) -> [Float] {
        var n = 0.0, sum = 0.0, squares = 0.0
        for s in scores where s.isFinite {
            n += 1
            sum += Double(s)
        }
        guard n > 0 else { return scores }
        let mean = sum / n
        for s in scores where s.isFinite { squares += (Double(s) - mean) * (Double(s) - mean) }
        let std = (squares / n).squareRoot()
        return scores.map { s in
            guard s.isFinite else { return s }
            return std > 0 ? Float((Double(s) - mean) / std) : 0
        }
    }

    /// The combined score of every item: `similarity + beta · standardised(preference)`;
    /// without a preference, the similarity itself (text-only).
    /// - Complexity: O(items).
    public static func combine(similarity: [Float], preference: [Float]?, beta: Float) -> [Float] {
        guard let preference, beta != 0 else { return similarity }
        precondition(preference.count == similarity.count, "\(preference.count) preference scores for \(similarity.count) items")
        let z = standardised(preference)
        var out = similarity
        for i in out.indices { out[i] += beta * z[i] }
        return out
    }

    /// Divides every `dim`-long row by its L2 norm (zero rows stay zero).
    static func normaliseRows(_ values: inout [Float], dim: Int) {
        guard dim > 0 else { return }
        for start in stride(from: 0, to: values.count, by: dim) {
            var norm = 0.0
            for j in start..<(start + dim) { norm += Double(values[j]) * Double(values[j]) }
            guard norm > 0 else { continue }
            let scale = Float(1 / norm.squareRoot())
            for j in start..<(start + dim) { values[j] *= scale }
        }
    }
}

/// A query embedding given as text, as `fl-encode --text … [--json]` prints it.
public enum QueryVector {
    /// Parses the one query in `text`: a JSON object with an `embedding` array (the
    /// `fl-encode --json` line), a JSON array of numbers, or a TSV/whitespace line of
    /// numbers, optionally after the text as its first tab-separated field (the
    /// `fl-encode` TSV line). Blank lines are ignored; more than one vector is an error.
    /// - Throws: `.emptyInput` without a vector, `.badData` for anything else unreadable.
    public static func parse(_ text: String, file: String) throws -> [Float] {
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingSpaces }.filter { !$0.isEmpty }
        guard let line = lines.first else { throw FedRecError(.emptyInput, file: file, "holds no query vector") }
        guard lines.count == 1 else {
            throw FedRecError(.badData, file: file, "holds \(lines.count) lines; give one query vector (one line of fl-encode output)")
        }
        if line.hasPrefix("{") || line.hasPrefix("[") {
            let json: JSONValue
            do { json = try JSONValue.parse(line) } catch { throw FedRecError(.badData, file: file, "is not valid JSON") }
            guard let array = json["embedding"]?.arrayValue ?? json.arrayValue else {
                throw FedRecError(.badData, file: file, "has no \"embedding\" array")
            }
            let values = array.compactMap { $0.doubleValue.map(Float.init) }
            guard values.count == array.count, !values.isEmpty else { throw FedRecError(.badData, file: file, "\"embedding\" must be a non-empty array of numbers") }
            return values
        }
        var fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
        if fields.count > 1, Float(fields[0][...].trimmingSpaces) == nil { fields.removeFirst() }  // fl-encode TSV: the text first
        let numbers = fields.flatMap { $0.split(whereSeparator: { $0 == " " || $0 == "," }) }
        var values: [Float] = []
        values.reserveCapacity(numbers.count)
        for number in numbers {
            guard let value = Float(number) else { throw FedRecError(.badData, file: file, "\"\(number.prefix(40))\" is not a number") }
            values.append(value)
        }
        guard !values.isEmpty else { throw FedRecError(.emptyInput, file: file, "holds no query vector") }
        return values
    }
}
