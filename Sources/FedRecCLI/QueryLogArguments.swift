import ArgumentParser
import FedRecData

/// fl-partition's query-log options: a log of (user, query text, item, time) attached to
/// each user's shard files with a per-user time hold-out (`QueryLog`).
public struct QueryLogArguments: ParsableArguments {
    @Option(help: "Query log (CSV/TSV: user, item, query or tag, time; e.g. MovieLens tags.csv) attached to each user's shard files.")
    var queries: String?

    @Option(help: "Fraction of each user's latest queries held out as test queries.")
    var queryTestRatio = 0.2

    @Option(help: "Users with fewer queries keep them all for training.")
    var queryMinPerUser = 5

    public init() {}

    public func validate() throws {
        guard queryTestRatio >= 0, queryTestRatio < 1 else { throw ValidationError("--query-test-ratio must be in [0, 1)") }
        guard queryMinPerUser >= 1 else { throw ValidationError("--query-min-per-user must be at least 1") }
        if queries == nil && (queryTestRatio != 0.2 || queryMinPerUser != 5) {
            throw ValidationError("--query-test-ratio and --query-min-per-user go with --queries")
        }
    }

    /// The options, nil without `--queries`.
    var options: QueryLogOptions? {
        queries.map {
            var o = QueryLogOptions(path: $0)
            o.testFraction = queryTestRatio
            o.minimum = queryMinPerUser
            return o
        }
    }
}
