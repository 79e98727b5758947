import FedRecFormats
import FedRecSupport
import FedRecTestSupport
import Testing

@testable import FedRecModel

/// A user-state file that passes its checksums but breaks the state's rules is refused,
/// never a trap (found by Fuzz/fuzz-fedrec-files).
@Suite("user state files")
struct UserStateFileTests {
    /// A state file whose users tensor is `users` as given (not sorted), row n's embedding
    /// (n, 1), d = 2, with fresh checksums.
    static func stateFile(users: [Int32], config: ModelConfig, at path: String) throws {
        var state = UserState(dim: config.dim)
        // One row a listed user, written under distinct placeholder ids first.
        for n in users.indices {
            let vector: [Float] = [Float(n), 1]
            vector.withUnsafeBufferPointer { state.set(user: Int32(1000 + n), embedding: $0, bias: 0.5) }
        }
        try state.write(to: path, config: config, round: 3)
        // The same file with the users tensor replaced, resealed as a party could.
        let written = try SafeTensorsFile(path: path)
        var metadata = written.metadata
        for key in ["checksum", "checksum_chunk", "header_checksum"] { metadata[key] = nil }
        var writer = SafeTensorsWriter(metadata: metadata)
        for name in written.names {
            let info = try written.info(name)
            if name == TensorName.users {
                writer.add(name, shape: [users.count], int32s: users)
            } else {
                writer.add(name, shape: info.shape, floats: try written.floats(name))
            }
        }
        _ = try writer.write(to: path, durable: false)
    }

    @Test("a state whose users repeat or are out of order is corrupt (84), naming the file")
    func repeatedUsers() throws {
        let dir = try TemporaryDirectory()
        let config = ModelConfig(objective: .mse, dim: 2, items: 4, datasetId: "d")
        let sound = dir.path + "/sound.state"
        try Self.stateFile(users: [1, 4], config: config, at: sound)
        let (state, round) = try UserState.load(sound, config: config)
        #expect(state.users == [1, 4] && round == 3 && state.embedding == [0, 1, 1, 1] && state.row(of: 4) == 1)
        for users: [Int32] in [[4, 4], [4, 1]] {
            let path = dir.path + "/bad-\(users[1]).state"
            try Self.stateFile(users: users, config: config, at: path)
            let error = try #require(throws: FedRecError.self) { _ = try UserState.load(path, config: config) }
            #expect(error.failure == .corrupt && error.file == path, "\(error)")
        }
    }
}
