import FedRecSupport

/// What is known about an item besides its id: a title and categories (genres).
public struct ItemInfo: Sendable, Equatable {
    public var title: String
    public var genres: [String]

    public init(title: String, genres: [String]) {
        self.title = title
        self.genres = genres
    }
}

/// Reads item metadata: MovieLens `u.item` (`|`, 19 genre flags), `movies.dat` (`::`,
/// genres joined by `|`), `movies.csv`, or any CSV/TSV whose header names an id column and
/// `title` / `genres` columns.
public enum ItemCatalogReader {
    /// The 19 genres of MovieLens 100K, in `u.item`'s flag order (as in `u.genre`).
    public static let movieLens100KGenres = [
        "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
        "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
    ]

    /// Reads the catalogue at `path`, keyed by raw item id.
    public static func read(path: String) throws -> [String: ItemInfo] {
        try read(file: try CompressedInput.open(path: path).file, path: path)
    }

    /// Reads a catalogue already opened (decompressed) from `path`, the name in errors.
    public static func read(file: MappedFile, path: String) throws -> [String: ItemInfo] {
        defer { withExtendedLifetime(file) {} }
        let bytes = file.bytes
        func bad(_ line: Int, _ what: String) -> FedRecError { FedRecError(.badData, file: path, "line \(line): \(what)") }
        var rows = DelimitedRows(bytes)
        var catalogue: [String: ItemInfo] = [:]
        var idAt = 0, titleAt = 1, genresAt: Int? = 2
        var flagLayout = false
        var first = true
        let genreNames = siblingGenres(of: path) ?? movieLens100KGenres
        while let (fields, number) = try rows.next(undetectable: { bad($0, "cannot tell the field delimiter") }) {
            if first {
                first = false
                let lowered = fields.map { $0.trimmingSpaces.lowercased() }
                if let id = lowered.firstIndex(where: { RatingsColumns.itemNames.contains($0) || $0 == "id" }) {
                    idAt = id
                    guard let title = lowered.firstIndex(where: { $0 == "title" || $0 == "name" }) else {
                        throw bad(number, "header has no title column")
                    }
                    titleAt = title
                    genresAt = lowered.firstIndex { ["genres", "genre", "category", "categories"].contains($0) }
                    continue
                }
                // u.item: id|title|release|video release|url|19 flags.
                flagLayout = rows.delimiter == .pipe && fields.count == 5 + genreNames.count
            }
            guard fields.count > max(idAt, titleAt, flagLayout ? 4 + genreNames.count : genresAt ?? 0) else {
                throw bad(number, "expected more fields, found \(fields.count)")
            }
            let id = fields[idAt].trimmingSpaces
            guard !id.isEmpty else { throw bad(number, "empty item id") }
            var genres: [String] = []
            if flagLayout {
                for (g, name) in genreNames.enumerated() where fields[5 + g].trimmingSpaces == "1" {
                    genres.append(name)
                }
            } else if let genresAt {
                let text = fields[genresAt].trimmingSpaces
                if text != "(no genres listed)" && !text.isEmpty {
                    genres = text.split(separator: "|").map { String($0) }
                }
            }
            catalogue[id] = ItemInfo(title: fields[titleAt].trimmingSpaces, genres: genres)
        }
        guard !catalogue.isEmpty else { throw FedRecError(.emptyInput, file: path, "holds no items") }
        return catalogue
    }

    /// Genre names from a `u.genre` file beside `path`, if there is one.
    static func siblingGenres(of path: String) -> [String]? {
        let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        guard let file = try? MappedFile(path: directory + "/u.genre") else { return nil }
        defer { withExtendedLifetime(file) {} }
        var scanner = LineScanner(file.bytes)
        var names: [(Int, String)] = []
        while let line = scanner.next() {
            let fields = splitFields(file.bytes, line, .pipe)
            guard fields.count == 2, let index = Int(fields[1]) else { continue }
            names.append((index, String(fields[0])))
        }
        guard !names.isEmpty else { return nil }
        return names.sorted { $0.0 < $1.0 }.map(\.1)
    }

    /// The item file MovieLens ships beside a ratings file, if present: `u.item` beside
    /// `u.data` or `uN.base`, `movies.dat` beside `ratings.dat`, `movies.csv` beside
    /// `ratings.csv`.
    public static func movieLensSibling(of ratingsPath: String) -> String? {
        guard ratingsPath != "-" else { return nil }
        let directory = ratingsPath.contains("/") ? String(ratingsPath[..<ratingsPath.lastIndex(of: "/")!]) : "."
        for candidate in ["u.item", "movies.dat", "movies.csv"] where fileExists(directory + "/" + candidate) {
            return directory + "/" + candidate
        }
        return nil
    }
}
