import FedRecSupport

/// How each user's interactions are divided into training and test data.
public enum SplitMethod: Sendable, Equatable {
    /// The last interaction by timestamp is the test item; ties go to the larger item index
    /// (item indices follow raw id order). Users with one interaction keep it for training.
    case leaveLastOut
    /// A seeded random fraction of each user's interactions (at least one stays in training).
    case ratio(Double)
    /// The test events come from a separate file (e.g. MovieLens `u1.test`).
    case testFile(String)
    /// The latest fraction of each user's events by time (ties: the larger item index is
    /// later) is the test data; at least one event stays in training. A time split: no
    /// model is trained on what happened after what it is tested on (CTR).
    case time(Double)

    var json: JSONValue {
        switch self {
        case .leaveLastOut: ["method": "leave-last-out", "ties": "larger item index is last"]
        case .ratio(let r): ["method": "ratio", "test_ratio": .number(r)]
        case .testFile(let path): ["method": "test-file", "test_file": .string(baseName(path))]
        case .time(let r): ["method": "time", "test_ratio": .number(r), "ties": "larger item index is later"]
        }
    }
}

/// How users are grouped into clients.
public enum ClientScheme: Sendable, Equatable {
    /// One client per user (cross-device).
    case perUser
    /// `clients` groups of users assigned uniformly at random (cross-silo, IID).
    case iid(clients: Int)
    /// `clients` groups, non-IID: for each user's dominant genre, the share of that genre's
    /// users going to each client is drawn from Dirichlet(alpha) (Hsu, Qi, Brown 2019).
    case dirichlet(clients: Int, alpha: Double)

    var json: JSONValue {
        switch self {
        case .perUser: ["scheme": "user"]
        case .iid(let n): ["scheme": "iid", "clients": .number(Double(n))]
        case .dirichlet(let n, let alpha): ["scheme": "dirichlet", "clients": .number(Double(n)), "alpha": .number(alpha)]
        }
    }
}

