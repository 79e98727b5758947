import FedRecSupport

extension RatingsReader {
    /// Reads one-user-per-line lists, `user item item …` separated by spaces (runs of
    /// spaces and a space at the end of a line are allowed). Every item is an event of
    /// rating 1 whose time is its position among the user's events read so far, so a
    /// user spread over several lines or files keeps the order of the lines. A line with
    /// a user and no items adds no event.
    /// - Throws: `.badData` with the line number for a tab (a list file is
    ///   space-separated; tab-separated events are `--format events`) or a control byte;
    ///   `.emptyInput` when no line holds an item.
    static func readLists(bytes: UnsafeRawBufferPointer, path: String, into log: inout RatingsLog) throws -> RatingsFormat {
        func bad(_ line: Int, _ what: String) -> FedRecError { FedRecError(.badData, file: path, "line \(line): \(what)") }
        var scanner = LineScanner(bytes)
        let startCount = log.count
        var tokens: [Range<Int>] = []
        while let line = scanner.next() {
            tokens.removeAll(keepingCapacity: true)
            var start: Int?
            for i in line {
                let byte = bytes[i]
                if byte == 0x20 {
                    if let s = start { tokens.append(s..<i); start = nil }
                    continue
                }
                if byte == 0x09 {
                    throw bad(scanner.lineNumber, "holds a tab: list lines are `user item item …` separated by spaces (tab-separated events are --format events)")
                }
                if byte < 0x20 || byte == 0x7F { throw bad(scanner.lineNumber, "holds the control byte 0x\(String(byte, radix: 16))") }
                if start == nil { start = i }
            }
            if let s = start { tokens.append(s..<line.upperBound) }
            guard let userToken = tokens.first else { continue }
            let user = log.users.intern(decodeText(bytes[userToken]))
            if log.eventsPerUser.count < log.users.count {
                log.eventsPerUser.append(contentsOf: repeatElement(0, count: log.users.count - log.eventsPerUser.count))
            }
            for token in tokens.dropFirst() {
                log.user.append(user)
                log.item.append(log.items.intern(decodeText(bytes[token])))
                log.rating.append(1)
                log.time.append(log.eventsPerUser[Int(user)])
                log.eventsPerUser[Int(user)] += 1
            }
        }
        guard log.count > startCount else { throw FedRecError(.emptyInput, file: path, "holds no user with an item") }
        log.hasRatings = false
        return RatingsFormat(layout: .lists, delimiter: .space, header: false, columns: ["user", "items"])
    }

    /// The value Jester's matrix stores for a joke the user did not rate.
    static let jesterNotRated: Float = 99

    /// Reads Jester's user × joke matrix: per line the count of jokes rated, then one
    /// rating per joke (99: not rated). The user is the line's number among the non-blank
    /// lines (from 1), the item the joke's column (from 1); there are no times.
    /// - Parameter scale: the declared scale, −10…10 (Jester's) where not declared.
    /// - Throws: `.badData` with the line number for a line whose field count differs
    ///   from the first line's, a count that is not the number of rated jokes, or a
    ///   rating that is not a number in the scale.
    static func readJester(bytes: UnsafeRawBufferPointer, path: String, scale: RatingScale, into log: inout RatingsLog) throws -> RatingsFormat {
        func bad(_ line: Int, _ what: String) -> FedRecError { FedRecError(.badData, file: path, "line \(line): \(what)") }
        let scale = RatingScale(min: scale.min ?? -10, max: scale.max ?? 10)
        var scanner = LineScanner(bytes)
        var width: Int?
        var user = 0
        let startCount = log.count
        while let line = scanner.next() {
            if isBlank(bytes, line) { continue }
            var problem: String?
            let fields = splitFields(bytes, line, .comma, problem: &problem)
            if let problem { throw bad(scanner.lineNumber, problem) }
            if width == nil {
                guard fields.count >= 2 else {
                    throw bad(scanner.lineNumber, "expected the number of jokes rated and then one comma-separated rating per joke")
                }
                width = fields.count
            }
            guard fields.count == width else {
                throw bad(scanner.lineNumber, "has \(fields.count) fields where the first line has \(width ?? 0)")
            }
            let countText = fields[0].trimmingSpaces
            guard let declared = Int(countText), declared >= 0 else {
                throw bad(scanner.lineNumber, "the number of jokes rated, \"\(countText)\", is not a count")
            }
            user += 1
            let userIndex = log.users.intern(String(user))
            var rated = 0
            for joke in 1..<fields.count {
                let text = fields[joke].trimmingSpaces
                guard let value = Float(text), value.isFinite else {
                    throw bad(scanner.lineNumber, "joke \(joke): rating \"\(text)\" is not a number")
                }
                if value == jesterNotRated { continue }
                guard scale.contains(value) else {
                    throw bad(scanner.lineNumber, "joke \(joke): rating \(text) is outside the scale \(scale.text) (99 marks a joke not rated)")
                }
                rated += 1
                log.user.append(userIndex)
                log.item.append(log.items.intern(String(joke)))
                log.rating.append(value)
                log.time.append(0)
            }
            guard rated == declared else {
                throw bad(scanner.lineNumber, "says \(declared) jokes rated but rates \(rated)")
            }
        }
        guard log.count > startCount else { throw FedRecError(.emptyInput, file: path, "holds no rating") }
        log.hasTimes = false
        return RatingsFormat(layout: .jester, delimiter: .comma, header: false, columns: ["count", "jokes"])
    }
}
