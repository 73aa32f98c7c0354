/// How a data set is encoded: VR explicitness, byte order, deflate, and whether Pixel Data is encapsulated.
public struct TransferSyntax: Hashable, Sendable {
    public let uid: String
    public let isExplicitVR: Bool
    public let isBigEndian: Bool
    public let isDeflated: Bool
    public let isEncapsulated: Bool

    public init(uid: String, isExplicitVR: Bool, isBigEndian: Bool, isDeflated: Bool, isEncapsulated: Bool) {
        self.uid = uid
        self.isExplicitVR = isExplicitVR
        self.isBigEndian = isBigEndian
        self.isDeflated = isDeflated
        self.isEncapsulated = isEncapsulated
    }

    public static let implicitVRLittleEndian = TransferSyntax(
        uid: "1.2.840.10008.1.2", isExplicitVR: false, isBigEndian: false, isDeflated: false, isEncapsulated: false)
    public static let explicitVRLittleEndian = TransferSyntax(
        uid: "1.2.840.10008.1.2.1", isExplicitVR: true, isBigEndian: false, isDeflated: false, isEncapsulated: false)
    public static let encapsulatedUncompressedExplicitVRLittleEndian = TransferSyntax(
        uid: "1.2.840.10008.1.2.1.98", isExplicitVR: true, isBigEndian: false, isDeflated: false, isEncapsulated: true)
    public static let deflatedExplicitVRLittleEndian = TransferSyntax(
        uid: "1.2.840.10008.1.2.1.99", isExplicitVR: true, isBigEndian: false, isDeflated: true, isEncapsulated: false)
    public static let explicitVRBigEndian = TransferSyntax(
        uid: "1.2.840.10008.1.2.2", isExplicitVR: true, isBigEndian: true, isDeflated: false, isEncapsulated: false)

    /// The native (uncompressed) syntaxes; every other syntax registered in PS3.6 with
    /// a `1.2.840.10008.1.2.` prefix encapsulates its Pixel Data in Explicit VR Little Endian.
    static let native: [String: TransferSyntax] = [
        implicitVRLittleEndian.uid: implicitVRLittleEndian,
        explicitVRLittleEndian.uid: explicitVRLittleEndian,
        deflatedExplicitVRLittleEndian.uid: deflatedExplicitVRLittleEndian,
        explicitVRBigEndian.uid: explicitVRBigEndian,
        encapsulatedUncompressedExplicitVRLittleEndian.uid: encapsulatedUncompressedExplicitVRLittleEndian,
    ]

    /// Resolves a Transfer Syntax UID. Unknown UIDs outside the DICOM root are nil: the parser cannot
    /// know how they are encoded. Unknown UIDs under `1.2.840.10008.1.2.` are taken as encapsulated
    /// Explicit VR LE, which is how every compressed syntax in PS3.5 §10 encodes its data set.
    public init?(uid rawUID: String) {
        let uid = UID.trimmed(rawUID)
        if let known = TransferSyntax.native[uid] {
            self = known
        } else if uid.hasPrefix("1.2.840.10008.1.2.") && UID.isValid(uid) {
            self.init(uid: uid, isExplicitVR: true, isBigEndian: false, isDeflated: false, isEncapsulated: true)
        } else {
            return nil
        }
    }
}

extension TransferSyntax: CustomStringConvertible {
    public var description: String { uid }
}
