/// The text an item is embedded from: `Title — Genre, Genre`, then any extra text
/// (tags, a description) after another ` — `. Parts that are empty are left out, so an
/// item with a title only is embedded from its title.
///
/// The form matches the reference fixture (`../shared/fixtures/minilm`), whose MovieLens
/// texts were built the same way.
public enum ItemText {
    /// Between the title, the genres and the extra text.
    public static let separator = " — "

    /// - Parameters:
    ///   - title: the item's title.
    ///   - genres: genres joined by `|`, as `items.tsv` holds them.
    ///   - extra: further texts, joined by `, `.
    public static func compose(title: String, genres: String, extra: [String] = []) -> String {
        let genreList = genres.split(separator: "|").map { $0.trimmingCharacters(in: " ") }.filter { !$0.isEmpty }
        let parts = [title.trimmingCharacters(in: " "), genreList.joined(separator: ", "), extra.joined(separator: ", ")]
        return parts.filter { !$0.isEmpty }.joined(separator: separator)
    }
}

extension StringProtocol {
    /// The text without leading and trailing `character`s.
    fileprivate func trimmingCharacters(in character: Character) -> String {
        var s = self[...]
        while s.first == character { s = s.dropFirst() }
        while s.last == character { s = s.dropLast() }
        return String(s)
    }
}
