import DICOMCore

/// One data dictionary entry: a public tag, a repeating-group tag, a private tag or a synthesized entry
/// (group length, private creator).
public struct DictionaryEntry: Sendable, Hashable {
    /// The tag this entry was looked up for (for repeating groups: the concrete tag, e.g. (6002,3000)).
    public let tag: Tag
    /// VRs the standard allows, in the order it lists them ("US or SS" → [.US, .SS]);
    /// empty for the item and delimitation tags (FFFE,E000/E00D/E0DD), which have no VR.
    public let vrs: [VR]
    /// Value multiplicity as written in the standard: "1", "1-n", "2-2n", ...
    public let vm: String
    /// Keyword such as "PatientName"; empty for private tags and the few public tags that have none.
    public let keyword: String
    /// Human-readable name such as "Patient's Name".
    public let name: String
    public let isRetired: Bool

    /// The default VR (for implicit-VR reading): the first listed VR, .UN when there is none.
    public var vr: VR { vrs.first ?? .UN }

    public init(tag: Tag, vrs: [VR], vm: String, keyword: String, name: String, isRetired: Bool) {
        self.tag = tag
        self.vrs = vrs
        self.vm = vm
        self.keyword = keyword
        self.name = name
        self.isRetired = isRetired
    }
}

/// The DICOM data dictionary (PS3.6), generated from pydicom's tables by Tools/generate-dictionary.py.
public enum DataDictionary {
    /// Keyword and name of the synthesized entry for (gggg,0000) in groups the dictionary has no entry for.
    public static let genericGroupLengthKeyword = "GenericGroupLength"
    /// Keyword and name of the synthesized entry for private creator elements (gggg,0010–00FF), odd gggg.
    public static let privateCreatorKeyword = "PrivateCreator"

    /// The entry for `tag`: an exact public tag, else a repeating-group tag (50xx, 60xx, 7Fxx, ...;
    /// non-private groups only, as pydicom), else a synthesized UL "Generic Group Length" for any
    /// (gggg,0000), else a synthesized LO "Private Creator" for (gggg,0010–00FF) in a private group.
    /// Other private tags need their creator: see `privateEntry(creator:tag:)`.
    public static func entry(for tag: Tag) -> DictionaryEntry? {
        if let entry = PublicIndex.shared.byTag[tag.rawValue] {
            return entry
        }
        if !tag.isPrivate, let entry = RepeaterIndex.shared.entry(for: tag) {
            return entry
        }
        if tag.isGroupLength {
            return DictionaryEntry(
                tag: tag, vrs: [.UL], vm: "1", keyword: genericGroupLengthKeyword, name: "Generic Group Length",
                isRetired: true)
        }
        if tag.isPrivateCreator {
            return privateCreatorEntry(tag)
        }
        return nil
    }

    /// The tag of a public (non-repeating) keyword such as "PatientName"; nil for unknown keywords,
    /// repeating-group keywords (they name many tags) and the synthesized keywords.
    public static func tag(forKeyword keyword: String) -> Tag? {
        PublicIndex.shared.byKeyword[keyword]
    }

    /// The entry of a public keyword, as `entry(for: tag(forKeyword:))`.
    public static func entry(forKeyword keyword: String) -> DictionaryEntry? {
        tag(forKeyword: keyword).flatMap { entry(for: $0) }
    }

    /// The VR to read `tag` with in implicit VR: the first VR the dictionary lists, .UN when unknown
    /// (including private tags, whose VR depends on their creator, and the VR-less item tags).
    public static func vr(for tag: Tag) -> VR {
        entry(for: tag)?.vr ?? .UN
    }

    /// The VR to read a tag with in implicit VR when the creator of its private block is known.
    /// Private tags in a creator's block get the private dictionary's VR; everything else as `vr(for:)`.
    public static func vr(for tag: Tag, privateCreator: String?) -> VR {
        if let creator = privateCreator, tag.isPrivate, let entry = privateEntry(creator: creator, tag: tag) {
            return entry.vr
        }
        return vr(for: tag)
    }

    /// Number of exact public tags (repeating-group entries not counted).
    public static var publicEntryCount: Int { generatedPublicTable.count }

    /// Number of repeating-group entries (masks such as (60xx,3000)).
    public static var repeatingGroupEntryCount: Int { generatedRepeaterTable.count }

    static func privateCreatorEntry(_ tag: Tag) -> DictionaryEntry {
        DictionaryEntry(
            tag: tag, vrs: [.LO], vm: "1", keyword: privateCreatorKeyword, name: "Private Creator", isRetired: false)
    }
}

extension GeneratedTagTable {
    func entry(row: Int, tag: Tag) -> DictionaryEntry {
        DictionaryEntry(
            tag: tag, vrs: vrs(row), vm: vm(row), keyword: keyword(row), name: name(row), isRetired: isRetired(row))
    }
}

/// Hash maps over the public table, built once on first use (a few milliseconds); entries are
/// materialized up front so that lookups do not allocate.
struct PublicIndex: Sendable {
    static let shared = PublicIndex()

    let byTag: [UInt32: DictionaryEntry]
    let byKeyword: [String: Tag]

    private init() {
        let table = generatedPublicTable
        var byTag = [UInt32: DictionaryEntry](minimumCapacity: table.count)
        var byKeyword = [String: Tag](minimumCapacity: table.count)
        for row in 0..<table.count {
            let tag = Tag(table.value(row))
            let entry = table.entry(row: row, tag: tag)
            byTag[tag.rawValue] = entry
            if !entry.keyword.isEmpty { byKeyword[entry.keyword] = tag }
        }
        self.byTag = byTag
        self.byKeyword = byKeyword
    }
}

/// Repeating groups: one hash map per distinct mask (a handful), keyed by `tag & mask`.
/// The generator checks that no tag matches two keys, so the first hit is pydicom's answer.
struct RepeaterIndex: Sendable {
    static let shared = RepeaterIndex()

    let masks: [UInt32]
    let entriesByMask: [[UInt32: DictionaryEntry]]

    private init() {
        let table = generatedRepeaterTable
        var masks: [UInt32] = []
        var entriesByMask: [[UInt32: DictionaryEntry]] = []
        for row in 0..<table.count {
            let mask = table.mask(row)
            let slot: Int
            if let i = masks.firstIndex(of: mask) {
                slot = i
            } else {
                masks.append(mask)
                entriesByMask.append([:])
                slot = masks.count - 1
            }
            let value = table.value(row)
            entriesByMask[slot][value & mask] = table.entry(row: row, tag: Tag(value))
        }
        self.masks = masks
        self.entriesByMask = entriesByMask
    }

    /// The matching entry, carrying `tag` itself (e.g. (6002,3000), not (6000,3000)).
    func entry(for tag: Tag) -> DictionaryEntry? {
        for (i, mask) in masks.enumerated() {
            if let e = entriesByMask[i][tag.rawValue & mask] {
                return DictionaryEntry(
                    tag: tag, vrs: e.vrs, vm: e.vm, keyword: e.keyword, name: e.name, isRetired: e.isRetired)
            }
        }
        return nil
    }
}
