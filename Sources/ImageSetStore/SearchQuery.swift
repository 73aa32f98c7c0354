import DICOMCore
import Foundation

/// A QIDO-RS search, already parsed: which level, which attributes must match how.
public struct SearchQuery: Sendable {
    public enum Level: Sendable { case study, series, instance }
    public enum Condition: Sendable, Hashable {
        /// Single value matching; `wildcard` when it holds `*` or `?` (PS3.4 C.2.2.2.4).
        case equals(String, wildcard: Bool)
        /// UID list matching.
        case anyOf([String])
        /// Range matching of dates or times; nil ends are open.
        case range(String?, String?)
    }
    public var level: Level
    public var conditions: [Tag: Condition] = [:]
    public var studyInstanceUID: String?
    public var seriesInstanceUID: String?
    public var fuzzyMatching = false
    /// The image sets searched: primary sets only unless one is named.
    public var scope = ImageSetScope.primary
    public var limit = SearchQuery.defaultLimit
    public var offset = 0

    /// The page size without `limit`, and the most one response holds (PS3.18 §8.3.4.4.1 maxResults).
    public static let defaultLimit = 100
    public static let maximumLimit = 10_000

    public init(level: Level) { self.level = level }

    /// The form of a person name that the index matches against (the `*_name_key` columns): per
    /// value, trailing empty components and component groups dropped (PS3.5 §6.2.1.1 makes
    /// `A^B^^^` and `A^B` the same name), then Unicode case folding and NFC, so that any
    /// letter matches its other case (`ДОЕ` / `Дое`, `MÜLLER` / `müller`, `Σ` / `ς`), which
    /// SQLite's LIKE does for ASCII only. Query values are folded the same way.
    public static func personNameKey(_ name: String) -> String {
        name.split(separator: "\\", omittingEmptySubsequences: false).map { value in
            var groups = value.split(separator: "=", maxSplits: 2, omittingEmptySubsequences: false).map { group in
                var g = Substring(group)
                while g.hasSuffix("^") { g = g.dropLast() }
                return String(g)
            }
            while groups.count > 1, groups.last?.isEmpty == true { groups.removeLast() }
            return groups.joined(separator: "=")
        }.joined(separator: "\\").folding(options: .caseInsensitive, locale: nil).precomposedStringWithCanonicalMapping
    }

    /// Attributes that can be matched at each level, and how they are stored.
    public static let matchable: [Tag: (column: String, kind: ColumnKind)] = [
        // Person names match on their folded keys (personNameKey); the values returned come from
        // the unfolded columns.
        Tag(0x0010_0010): ("s.patient_name_key", .personName),
        Tag(0x0010_0020): ("s.patient_id", .text),
        Tag(0x0010_0030): ("s.patient_birth_date", .dateOrTime),
        Tag(0x0010_0040): ("s.patient_sex", .text),
        Tag(0x0008_0020): ("s.study_date", .dateOrTime),
        Tag(0x0008_0030): ("s.study_time", .dateOrTime),
        Tag(0x0008_0050): ("s.accession_number", .text),
        Tag(0x0020_0010): ("s.study_id", .text),
        Tag(0x0020_000D): ("s.study_instance_uid", .uid),
        Tag(0x0008_1030): ("s.study_description", .text),
        Tag(0x0008_0090): ("s.referring_physician_name_key", .personName),
        Tag(0x0008_0080): ("s.institution_name", .text),
        Tag(0x0008_0060): ("se.modality", .text),
        Tag(0x0020_000E): ("se.series_instance_uid", .uid),
        Tag(0x0020_0011): ("se.series_number", .integer),
        Tag(0x0008_103E): ("se.series_description", .text),
        Tag(0x0018_0015): ("se.body_part_examined", .text),
        Tag(0x0040_0244): ("se.performed_start_date", .dateOrTime),
        Tag(0x0040_0245): ("se.performed_start_time", .dateOrTime),
        Tag(0x0008_0016): ("i.sop_class_uid", .uid),
        Tag(0x0008_0018): ("i.sop_instance_uid", .uid),
        Tag(0x0020_0013): ("i.instance_number", .integer),
        Tag(0x0028_0010): ("i.rows", .integer),
        Tag(0x0028_0011): ("i.columns", .integer),
        Tag(0x0028_0100): ("i.bits_allocated", .integer),
        Tag(0x0028_0008): ("i.number_of_frames", .integer),
        // ModalitiesInStudy matches any series of the study.
        Tag(0x0008_0061): ("se.modality", .modalitiesInStudy),
    ]

    public enum ColumnKind: Sendable { case text, personName, uid, dateOrTime, integer, modalitiesInStudy }

    /// The modalities a ModalitiesInStudy condition asks for: any of a list, or of a backslash-separated value.
    public static func modalities(_ condition: Condition) -> [String] {
        switch condition {
        case .anyOf(let v): v
        case .equals(let v, _): v.split(separator: "\\").map(String.init)
        case .range: []
        }
    }

    public static func isMatchable(_ tag: Tag, at level: Level) -> Bool {
        guard let (column, kind) = matchable[tag] else { return false }
        switch level {
        case .study: return column.hasPrefix("s.") || kind == .modalitiesInStudy
        case .series: return !column.hasPrefix("i.") && kind != .modalitiesInStudy
        case .instance: return kind != .modalitiesInStudy
        }
    }
}

/// One match: the values of the typed columns by tag, the counts QIDO-RS returns, and the stored
/// DICOM JSON of a representative instance (for `includefield`).
public struct SearchRow: Sendable {
    public var values: [Tag: String] = [:]
    public var studyInstanceUID = ""
    public var seriesInstanceUID: String?
    public var sopInstanceUID: String?
    public var numberOfStudyRelatedSeries: Int?
    public var numberOfStudyRelatedInstances: Int?
    public var numberOfSeriesRelatedInstances: Int?
    public var modalitiesInStudy: [String] = []
    public var representativeInstanceID: Int64 = 0
    public init() {}
}
