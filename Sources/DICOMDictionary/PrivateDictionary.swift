import DICOMCore

extension DataDictionary {
    /// The private dictionary entry for `tag` in a block reserved by `creator`, as pydicom's
    /// `get_private_entry`: the creator is matched exactly (case-sensitive) after trimming leading and
    /// trailing spaces and NULs; then the keys are tried in pydicom's order:
    /// exact "ggggeeee", then "ggggxxee" (any block), then "ggxxxxee" (repeating private group).
    ///
    /// Private creator elements (gggg,0010–00FF) give the synthesized LO "Private Creator" entry;
    /// non-private tags give nil. The returned entry's `tag` is `tag`, its `keyword` is empty.
    public static func privateEntry(creator: String, tag: Tag) -> DictionaryEntry? {
        guard tag.isPrivate else { return nil }
        if tag.isPrivateCreator { return privateCreatorEntry(tag) }
        let index = PrivateIndex.shared
        guard let creatorIndex = index.creators[trimmedCreator(creator)] else { return nil }
        for (tier, mask) in PrivateIndex.tierMasks.enumerated() {
            let key = PrivateIndex.key(creator: creatorIndex, tier: tier, value: tag.rawValue & mask)
            if let location = index.rows[key] {
                return generatedPrivateTables[Int(location.table)].entry(row: Int(location.row), tag: tag)
            }
        }
        return nil
    }

    /// Whether the private dictionary knows `creator` (after trimming, as `privateEntry`).
    public static func isKnownPrivateCreator(_ creator: String) -> Bool {
        PrivateIndex.shared.creators[trimmedCreator(creator)] != nil
    }

    /// Number of private dictionary rows (all creators).
    public static var privateEntryCount: Int {
        generatedPrivateTables.reduce(0) { $0 + $1.count }
    }

    static func trimmedCreator(_ creator: String) -> Substring {
        let isPadding: (Character) -> Bool = { $0 == " " || $0 == "\0" }
        guard let first = creator.firstIndex(where: { !isPadding($0) }),
            let last = creator.lastIndex(where: { !isPadding($0) })
        else { return "" }
        return creator[first...last]
    }
}

/// Hash maps over the private tables, built once on first use.
struct PrivateIndex: Sendable {
    static let shared = PrivateIndex()

    /// pydicom's key shapes, in its lookup order: ggggeeee, ggggxxee, ggxxxxee.
    /// Keys of any other shape (a few "gggg10xx" rows) are kept in the tables but, as in pydicom,
    /// never matched.
    static let tierMasks: [UInt32] = [0xFFFF_FFFF, 0xFFFF_00FF, 0xFF00_00FF]

    struct Location: Sendable {
        let table: UInt16
        let row: UInt32
    }

    let creators: [Substring: UInt16]
    let rows: [UInt64: Location]

    static func key(creator: UInt16, tier: Int, value: UInt32) -> UInt64 {
        UInt64(creator) << 40 | UInt64(tier) << 32 | UInt64(value)
    }

    private init() {
        var creators = [Substring: UInt16](minimumCapacity: generatedPrivateCreators.count)
        for i in 0..<generatedPrivateCreators.count {
            creators[Substring(generatedPrivateCreators[i])] = UInt16(i)
        }
        var rows: [UInt64: Location] = [:]
        rows.reserveCapacity(generatedPrivateTables.reduce(0) { $0 + $1.count })
        for (t, table) in generatedPrivateTables.enumerated() {
            for row in 0..<table.count {
                guard let tier = Self.tierMasks.firstIndex(of: table.mask(row)) else { continue }
                let key = Self.key(creator: UInt16(table.creatorIndex(row)), tier: tier, value: table.value(row))
                rows[key] = Location(table: UInt16(t), row: UInt32(row))
            }
        }
        self.creators = creators
        self.rows = rows
    }
}
