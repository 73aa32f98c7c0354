import Foundation

/// What changed (Docs/events.md). Raw values are the `type` of the feed's JSON.
public enum ChangeEventType: String, Sendable, Codable, CaseIterable {
    case instanceStored = "instance.stored"
    case instanceReplaced = "instance.replaced"
    case instanceDeleted = "instance.deleted"
    case imageSetCreated = "imageset.created"
    case imageSetVersion = "imageset.version"
    case imageSetState = "imageset.state"
    /// Moved to or from primary (`isPrimary` says which).
    case imageSetPrimary = "imageset.primary"
    /// The set's patient/study attributes disagree with the study's primary set (`conflicts`).
    case imageSetConflict = "imageset.conflict"
    case versionsPruned = "versions.pruned"
}

/// One entry of the change feed: appended in the transaction of the change it describes, numbered
/// 1, 2, 3… in commit order with no gap (the feed's head counter is updated in that transaction).
/// Fields that do not apply to a type are nil and left out of the JSON.
public struct ChangeEvent: Sendable, Codable, Equatable {
    public var sequence: Int64
    public var time: Date
    public var type: ChangeEventType
    public var imageSetId: String?
    /// The image set's version the change made (for `imageset.primary` of a set that got no new
    /// version, its latest; for `versions.pruned`, the oldest version kept).
    public var version: Int?
    public var studyInstanceUID: String?
    public var seriesInstanceUID: String?
    public var sopInstanceUID: String?
    /// For instances: the stored transfer syntax and the size of the stored object in bytes.
    public var transferSyntaxUID: String?
    public var size: Int?
    public var patientID: String?
    /// `imageset.created`, `imageset.primary`, `instance.*`: whether the set is the study's primary one.
    public var isPrimary: Bool?
    /// `imageset.state`: ACTIVE or DELETED.
    public var state: String?
    /// `imageset.conflict`: each attribute that differs from the primary set's.
    public var conflicts: [AttributeConflict]?
    /// `imageset.version`: the version's reason, as `tessera imageset` lists it.
    public var reason: String?
    /// `versions.pruned`: how many versions went.
    public var versionsRemoved: Int?

    public init(sequence: Int64 = 0, time: Date, type: ChangeEventType, imageSetId: String? = nil, version: Int? = nil,
                studyInstanceUID: String? = nil, seriesInstanceUID: String? = nil, sopInstanceUID: String? = nil,
                transferSyntaxUID: String? = nil, size: Int? = nil, patientID: String? = nil, isPrimary: Bool? = nil,
                state: String? = nil, conflicts: [AttributeConflict]? = nil, reason: String? = nil, versionsRemoved: Int? = nil) {
        self.sequence = sequence
        self.time = time
        self.type = type
        self.imageSetId = imageSetId
        self.version = version
        self.studyInstanceUID = studyInstanceUID
        self.seriesInstanceUID = seriesInstanceUID
        self.sopInstanceUID = sopInstanceUID
        self.transferSyntaxUID = transferSyntaxUID
        self.size = size
        self.patientID = patientID
        self.isPrimary = isPrimary
        self.state = state
        self.conflicts = conflicts
        self.reason = reason
        self.versionsRemoved = versionsRemoved
    }

    // MARK: JSON (the one encoding: the routes, SSE and webhooks all send these bytes)

    /// Keys sorted, slashes unescaped, `time` as ISO 8601 UTC with milliseconds.
    public static func makeEncoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(Self.timeText(date))
        }
        return e
    }

    public static func makeDecoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .custom { decoder in
            let text = try decoder.singleValueContainer().decode(String.self)
            return feedTime(try Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text).timeIntervalSince1970)
        }
        return d
    }

    /// `2026-12-01T19:09:40.123Z`: the milliseconds from integer arithmetic, so that formatting a
    /// parsed time gives back the same text (floating-point formatting can be off by one).
    static func timeText(_ date: Date) -> String {
        let ms = Int64((date.timeIntervalSince1970 * 1000).rounded())
        let (seconds, milli) = (ms.quotientAndRemainder(dividingBy: 1000))
        let whole = Date(timeIntervalSince1970: Double(milli < 0 ? seconds - 1 : seconds))
        let text = whole.formatted(Date.ISO8601FormatStyle())  // …T19:09:40Z
        let m = milli < 0 ? milli + 1000 : milli
        return String(text.dropLast()) + "." + String(repeating: "0", count: m < 10 ? 2 : (m < 100 ? 1 : 0)) + String(m) + "Z"
    }

    /// This event as a JSON object.
    public var json: Data { (try? Self.makeEncoder().encode(self)) ?? Data("{}".utf8) }

    /// A JSON array of events, in the order given.
    public static func json(_ events: [ChangeEvent]) -> Data { (try? makeEncoder().encode(events)) ?? Data("[]".utf8) }

    /// Event times are kept to the millisecond, the precision of the JSON, so an event read back
    /// from the feed equals the one stored.
    public static func feedTime(_ seconds: Double) -> Date { Date(timeIntervalSince1970: (seconds * 1000).rounded() / 1000) }
}

/// A range of the feed that retention removed.
public struct ChangeFeedPrunedError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The cursor asked for.
    public var after: Int64
    /// The oldest sequence the feed still holds (the one after the last pruned).
    public var oldestHeld: Int64
    public init(after: Int64, oldestHeld: Int64) {
        self.after = after
        self.oldestHeld = oldestHeld
    }
    public var description: String {
        "the change feed's events after \(after) up to \(oldestHeld - 1) were removed by its retention; "
            + "the oldest sequence still held is \(oldestHeld) (resume with after=\(oldestHeld - 1), and reconcile what was missed from the index)"
    }
}

/// The events one index transaction makes, in the order it makes them; numbered when the
/// transaction appends them (`SQLiteIndex.appendChanges`, `PostgresIndex.appendChanges`). A value,
/// so that a batch restored after a rolled-back savepoint drops the instance's events with it.
public struct ChangeDrafts: Sendable {
    public private(set) var events: [ChangeEvent] = []
    public let time: Date

    public init(now: Double) { time = ChangeEvent.feedTime(now) }

    public var isEmpty: Bool { events.isEmpty }

    public mutating func add(_ type: ChangeEventType, set: String?, version: Int?, study: String?, patient: String?,
                             series: String? = nil, sop: String? = nil, transferSyntax: String? = nil, size: Int? = nil,
                             isPrimary: Bool? = nil, state: String? = nil, conflicts: [AttributeConflict]? = nil,
                             reason: String? = nil, versionsRemoved: Int? = nil) {
        events.append(ChangeEvent(time: time, type: type, imageSetId: set, version: version, studyInstanceUID: study,
                                  seriesInstanceUID: series, sopInstanceUID: sop, transferSyntaxUID: transferSyntax, size: size,
                                  patientID: patient, isPrimary: isPrimary, state: state, conflicts: conflicts, reason: reason,
                                  versionsRemoved: versionsRemoved))
    }

    /// The state an image set is left in by a version with `count` instances that `added` some or
    /// not (SQLiteIndex.Batch.finish), or nil when it stays as it was.
    public static func newState(count: Int, added: Bool) -> String? {
        count == 0 ? "DELETED" : (added ? "ACTIVE" : nil)
    }

    /// The conflicts as the index stores them (JSON text).
    public static func conflictsText(_ conflicts: [AttributeConflict]?) -> String? {
        conflicts.map { String(decoding: (try? JSONEncoder().encode($0)) ?? Data("[]".utf8), as: UTF8.self) }
    }

    public static func conflicts(fromText text: String?) -> [AttributeConflict]? {
        text.flatMap { try? JSONDecoder().decode([AttributeConflict].self, from: Data($0.utf8)) }
    }
}

/// What the feed's events name of an image set, read when a transaction first touches it.
public struct ChangeSubject: Sendable {
    public var study: String
    public var patient: String
    public var state: String
    public var isPrimary: Bool
    public init(study: String, patient: String, state: String, isPrimary: Bool) {
        self.study = study
        self.patient = patient
        self.state = state
        self.isPrimary = isPrimary
    }
}

/// Where a SOP instance was before a replacement took its row away.
public struct ChangeLocation: Sendable {
    public var imageSet: String
    public var version: Int
    public var study: String
    public var patient: String
    public var series: String
    public var transferSyntax: String
    public var size: Int
    public var isPrimary: Bool
    public init(imageSet: String, version: Int, study: String, patient: String, series: String, transferSyntax: String, size: Int, isPrimary: Bool) {
        self.imageSet = imageSet
        self.version = version
        self.study = study
        self.patient = patient
        self.series = series
        self.transferSyntax = transferSyntax
        self.size = size
        self.isPrimary = isPrimary
    }
}

/// The events of the grouping steps both indexes' batches take, statement for statement.
extension ChangeDrafts {
    /// A replacement that moves the instance (another image set, series or patient) also says that it
    /// left the old place, so that consumers filing it by patient, study or series drop it there (a
    /// webhook filtered on the old patient hears of it); a replacement in place is only `instance.replaced`.
    public mutating func replaced(from old: ChangeLocation?, toImageSet set: String, series: String, patient: String, sop: String) {
        guard let old, old.imageSet != set || old.series != series || old.patient != patient else { return }
        add(.instanceDeleted, set: old.imageSet, version: old.version, study: old.study, patient: old.patient, series: old.series,
            sop: sop, transferSyntax: old.transferSyntax, size: old.size, isPrimary: old.isPrimary)
    }

    /// A new image set, made in version 1 of itself; a non-primary one with its conflicts.
    public mutating func created(_ id: String, study: String, patient: String, primary: Bool, conflicts: [AttributeConflict]) {
        add(.imageSetCreated, set: id, version: 1, study: study, patient: patient, isPrimary: primary)
        if !conflicts.isEmpty { add(.imageSetConflict, set: id, version: 1, study: study, patient: patient, isPrimary: false, conflicts: conflicts) }
    }

    /// One set of a study whose primary became `newPrimary`: it moved to or from primary, and a
    /// non-primary one has its conflicts recomputed against the new primary.
    public mutating func promoted(_ id: String, to newPrimary: String, wasPrimary: Bool, version: Int, study: String, patient: String,
                                  conflicts: [AttributeConflict]) {
        let isPrimary = id == newPrimary
        if isPrimary != wasPrimary { add(.imageSetPrimary, set: id, version: version, study: study, patient: patient, isPrimary: isPrimary) }
        if !isPrimary && !conflicts.isEmpty {
            add(.imageSetConflict, set: id, version: version, study: study, patient: patient, isPrimary: false, conflicts: conflicts)
        }
    }

    /// A transaction's new version of a set, and its state change when it has one.
    public mutating func versioned(_ id: String, version: Int, reason: String, count: Int, added: Bool, before: ChangeSubject?) {
        add(.imageSetVersion, set: id, version: version, study: before?.study, patient: before?.patient, reason: reason)
        if let state = Self.newState(count: count, added: added), state != before?.state {
            add(.imageSetState, set: id, version: version, study: before?.study, patient: before?.patient, state: state)
        }
    }
}
