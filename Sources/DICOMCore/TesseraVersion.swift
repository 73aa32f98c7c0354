/// Tessera's version, defined here only: `tessera --version` prints it and written files carry it
/// in their Implementation Version Name (see `DICOMWriter`).
public enum TesseraVersion {
    public static let string = "0.1.0"
}
