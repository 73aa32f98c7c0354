/// One registered DICOM UID (PS3.6 Annex A).
public struct UIDEntry: Sendable, Hashable {
    public let uid: String
    /// e.g. "JPEG 2000 Image Compression (Lossless Only)".
    public let name: String
    /// e.g. "JPEG2000Lossless"; empty for the few UIDs that have none.
    public let keyword: String
    /// e.g. "Transfer Syntax", "SOP Class", "Well-known SOP Instance".
    public let type: String
    /// Free-text remark from the registry, e.g. "Default Transfer Syntax for DICOM"; usually empty.
    public let info: String
    public let isRetired: Bool

    public init(uid: String, name: String, keyword: String, type: String, info: String = "", isRetired: Bool) {
        self.uid = uid
        self.name = name
        self.keyword = keyword
        self.type = type
        self.info = info
        self.isRetired = isRetired
    }
}

/// The DICOM UID registry, generated from pydicom's tables by Tools/generate-dictionary.py.
public enum UIDRegistry {
    public static let transferSyntaxType = "Transfer Syntax"

    /// The registry entry for `uid` (exact match; trailing NUL/space padding is not stripped).
    public static func entry(for uid: String) -> UIDEntry? {
        UIDIndex.shared.byUID[uid].map { entry(row: Int($0)) }
    }

    /// The registry entry for a keyword such as "ExplicitVRLittleEndian".
    public static func entry(forKeyword keyword: String) -> UIDEntry? {
        UIDIndex.shared.byKeyword[keyword].map { entry(row: Int($0)) }
    }

    /// Every transfer syntax (retired ones included), ordered by UID components.
    public static var allTransferSyntaxes: [UIDEntry] { UIDIndex.shared.transferSyntaxes }

    /// Every registered UID, ordered by UID components.
    public static var allEntries: [UIDEntry] { (0..<generatedUIDValues.count).map(entry(row:)) }

    static func entry(row: Int) -> UIDEntry {
        UIDEntry(
            uid: generatedUIDValues[row], name: generatedUIDNames[row], keyword: generatedUIDKeywords[row],
            type: generatedUIDTypes[row], info: generatedUIDInfos[row], isRetired: generatedUIDRetired[row])
    }
}

/// Hash maps over the UID table, built once on first use.
struct UIDIndex: Sendable {
    static let shared = UIDIndex()

    let byUID: [String: Int32]
    let byKeyword: [String: Int32]
    let transferSyntaxes: [UIDEntry]

    private init() {
        var byUID = [String: Int32](minimumCapacity: generatedUIDValues.count)
        var byKeyword = [String: Int32](minimumCapacity: generatedUIDValues.count)
        var transferSyntaxes: [UIDEntry] = []
        for row in 0..<generatedUIDValues.count {
            byUID[generatedUIDValues[row]] = Int32(row)
            let keyword = generatedUIDKeywords[row]
            if !keyword.isEmpty { byKeyword[keyword] = Int32(row) }
            if generatedUIDTypes[row] == UIDRegistry.transferSyntaxType {
                transferSyntaxes.append(UIDRegistry.entry(row: row))
            }
        }
        self.byUID = byUID
        self.byKeyword = byKeyword
        self.transferSyntaxes = transferSyntaxes
    }
}
