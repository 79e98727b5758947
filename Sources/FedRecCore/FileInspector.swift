/// Describes what a fedrec file holds, for `fl-inspect`: checkpoints, updates, sums and
/// states (safetensors), shards (tar), datasets (`dataset.json` or its directory) and JSON
/// lines (`*.jsonl`: metrics logs, ledgers).
public enum FileInspector {
    public static func describe(_ path: String) throws -> JSONValue {
        if path.hasSuffix("dataset.json") || fileExists(path + "/dataset.json") {
            let manifest = try DatasetManifest.load(path)
            return manifest.json
        }
        let mapped = try MappedFile(path: path)
        defer { withExtendedLifetime(mapped) {} }
        if path.hasSuffix(".jsonl") {
            return try describeJSONLines(mapped.bytes, path: path)
        }
        if looksLikeSafeTensors(mapped.bytes) {
            return try describeSafeTensors(SafeTensorsFile(file: mapped))
        }
        return try describeShard(path)
    }

    /// `{"kind": "json_lines", "file", "lines": [each line's value]}` (`JSONLines`): an
    /// empty file has no lines; a line that is not JSON, or a last line without its
    /// newline, is corrupt.
    static func describeJSONLines(_ bytes: UnsafeRawBufferPointer, path: String) throws -> JSONValue {
        ["kind": "json_lines", "file": .string(path), "lines": .array(try JSONLines.parse(bytes, path: path))]
    }

    /// The values at `field` in a description, for `fl-inspect --field`: keys joined by
    /// `.`, and `name[]` for every element of the list `name` (`shards[].file`,
    /// `metadata.dp_expected_clients`, `lines[].round`), so scripts read JSON without
    /// parsing it themselves.
    /// - Throws: `.usage` for an empty field; `.badData` when the description has no such
    ///   field (naming the part that is missing) or a `[]` part is not a list.
    public static func values(at field: String, in description: JSONValue) throws -> [JSONValue] {
        let parts = field.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard !field.isEmpty, parts.allSatisfy({ !$0.isEmpty && $0 != "[]" }) else {
            throw FedRecError(.usage, "--field \(field): give keys joined by '.', with [] after a list's key")
        }
        var current = [description]
        for part in parts {
            let isList = part.hasSuffix("[]")
            let key = isList ? String(part.dropLast(2)) : part
            current = try current.flatMap { value -> [JSONValue] in
                guard let member = value[key] else { throw FedRecError(.badData, "has no field \(key) (in --field \(field))") }
                guard isList else { return [member] }
                guard let items = member.arrayValue else { throw FedRecError(.badData, "field \(key) is not a list (in --field \(field))") }
                return items
            }
        }
        return current
    }

    /// A value as one line of text: strings as they are, numbers as in canonical JSON
    /// (integers without a fraction), anything else as canonical JSON.
    public static func text(of value: JSONValue) -> String {
        if case .string(let s) = value { return s }
        return value.canonicalText
    }

    static func looksLikeSafeTensors(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= 10 else { return false }
        let n = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
        return n >= 2 && n < UInt64(SafeTensorsFile.maximumHeaderLength) && bytes[8] == UInt8(ascii: "{")
    }

    static func describeSafeTensors(_ file: SafeTensorsFile) throws -> JSONValue {
        var object: [String: JSONValue] = [:]
        var tensors: [JSONValue] = []
        for name in file.names {
            let info = file.tensors[name]!
            tensors.append(["name": .string(name), "dtype": .string(info.dtype.rawValue), "shape": .array(info.shape.map { .number(Double($0)) })])
        }
        object["tensors"] = .array(tensors)
        object["metadata"] = .object(file.metadata.mapValues { .string($0) })
        object["identity"] = .string(file.identity)
        object["file"] = .string(file.path)
        // A header that carries a checksum must match it, even if it no longer says fedrec.
        if file.metadata["format"] != FedRecFormat.name { try HeaderSeal.verify(file) }
        if file.metadata["format"] == FedRecFormat.name {
            // Full verification: version, kind and checksum.
            let checked = try FedRecFile(file: file, kinds: Set(FileKind.allCases))
            object["kind"] = .string(checked.kind.rawValue)
            object["checksum"] = "ok"
            if let round = checked.metadata["round"] { object["round"] = .string(round) }
            if checked.kind == .model {
                object["layout"] = .string(checked.metadata["base"] == nil ? "standalone" : "overlay")
                if let name = checked.metadata["base"] {
                    // An overlay is only as good as its base: verify every byte of it too.
                    let base = try ModelView.openBase(name, of: checked, config: try ModelConfig(file: checked))
                    try base.chunks?.verifyEverything()
                    object["base"] = .string(base.path)
                    object["overlay_rows"] = .number(Double(file.tensors[TensorName.overlayRows]?.shape.first ?? 0))
                }
            }
            if checked.kind == .update || checked.kind == .sum {
                // Read from the file already open (stdin cannot be read twice).
                if checked.metadata["algorithm"] == UpdateAlgorithm.cooccurrence.rawValue {
                    let pairs = try ItemPairSum.read(checked)
                    object["pairs"] = .number(Double(pairs.pairs))
                    object["clients"] = .number(Double(pairs.header.clients))
                } else {
                    let update = try ModelUpdate.read(checked).update
                    object["rows"] = .number(Double(update.rows.count))
                    object["clients"] = .number(Double(update.header.clients))
                }
            }
        } else {
            object["kind"] = "safetensors"
        }
        return .object(object)
    }

    static func describeShard(_ path: String) throws -> JSONValue {
        let reader = try ShardUserReader(path: path)
        var users = 0, train = 0, test = 0
        var clients = Set<Int32>()
        while let record = try reader.next() {
            users += 1
            train += record.train.count
            test += record.test.count
            clients.insert(record.client)
        }
        return ["kind": "shard", "file": .string(path), "header": reader.header, "checksum": reader.checksummed ? "ok" : "none",
                "identity": .string(reader.identity), "users": .number(Double(users)),
                "clients": .number(Double(clients.count)), "train": .number(Double(train)), "test": .number(Double(test))]
    }
}
