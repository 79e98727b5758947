/// The metadata key under which updates, sums and models record the user-side settings
/// their clients trained with (`UserSideSettings` in FedRecTraining, docs/FORMATS.md):
/// one JSON object of strings. A sum keeps it only when all its updates agree; the server
/// step copies it from the sum into the next model, so `fl-eval` and `fl-recommend` rebuild
/// users as training did without the flags being repeated.
public enum UserSettingsMetadata {
    public static let key = "client_settings"
}
