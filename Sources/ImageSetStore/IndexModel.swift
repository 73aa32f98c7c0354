import DICOMCore
import Foundation
import NIOCore

/// An instance ready for the index: its blob is durable, its header parsed and validated.
public struct PreparedInstance: Sendable {
    public var studyInstanceUID: String
    public var seriesInstanceUID: String
    public var sopInstanceUID: String
    public var sopClassUID: String
    public var transferSyntaxUID: String
    public var blob: BlobID
    public var blobSize: Int
    public var attributes: InstanceAttributes
    /// DICOM JSON of the data set with bulk data as `tessera-bulk:` URIs (see `BulkURI`).
    public var metadataJSON: [UInt8]
    public var frames: [FrameRecord]
    /// The frame ranges are offsets in the blob (false for deflated data sets, whose frames
    /// must be read by parsing).
    public var framesInPlace: Bool
    /// A copy transcoded at ingest that `frames` point into; the original stays in `blob`.
    public var framesBlob: BlobID? = nil
    public var framesBlobSize = 0
    public var framesTransferSyntaxUID: String? = nil
}

/// A frame's place in its blob. `fragments` lists the ranges when the frame spans several
/// fragments; otherwise the frame is the single range `offset..<offset+length`.
public struct FrameRecord: Sendable, Hashable, Codable {
    public var number: Int
    public var offset: Int
    public var length: Int
    public var fragments: [Range<Int>]?

    /// The byte ranges to read, in order.
    public var ranges: [Range<Int>] { fragments ?? [offset..<(offset + length)] }

    // Public, for the index in another module (PostgresIndex); Swift synthesises an internal one.
    public init(number: Int, offset: Int, length: Int, fragments: [Range<Int>]?) {
        self.number = number
        self.offset = offset
        self.length = length
        self.fragments = fragments
    }
}

public enum DuplicatePolicy: String, Sendable, Codable, CaseIterable {
    /// A second, different instance with a stored SOP Instance UID fails (the default).
    case reject
    /// It replaces the stored one in a new version.
    case replace
}

/// What became of one instance (PS3.18 STOW-RS semantics).
public struct IngestOutcome: Sendable, Hashable {
    public enum Status: String, Sendable, Hashable {
        case stored, duplicate, replaced, failed
    }
    public var status: Status
    public var sopInstanceUID: String?
    public var sopClassUID: String?
    public var studyInstanceUID: String?
    public var seriesInstanceUID: String?
    /// Failure Reason (0x0110, 0x0111, 0xA700, 0xA900, 0xC000, 0xC122) or Warning Reason (0xB000).
    public var reasonCode: UInt16?
    public var message: String?
    public var imageSetID: String?
    /// For a replacement: the image set the replaced instance left (it may differ from `imageSetID`
    /// when the new bytes carry different patient/study attributes).
    public var replacedInImageSetID: String?
    public var isPrimary: Bool?
    public var conflicts: [AttributeConflict] = []
    /// Set on a rejected duplicate SOP Instance UID whose stored copy is in another transfer syntax
    /// (the same instance, differently encoded): the stored copy's syntax.
    public var storedTransferSyntaxUID: String?

    // Public, for the index in another module (PostgresIndex); Swift synthesises an internal one.
    public init(status: Status, sopInstanceUID: String? = nil, sopClassUID: String? = nil, studyInstanceUID: String? = nil,
                seriesInstanceUID: String? = nil, reasonCode: UInt16? = nil, message: String? = nil) {
        self.status = status
        self.sopInstanceUID = sopInstanceUID
        self.sopClassUID = sopClassUID
        self.studyInstanceUID = studyInstanceUID
        self.seriesInstanceUID = seriesInstanceUID
        self.reasonCode = reasonCode
        self.message = message
    }

    /// A second, different instance with a stored SOP Instance UID, refused (policy `.reject`).
    /// Another transfer syntax is another encoding of the same instance (a media copy, say), told
    /// apart without decoding pixels; the stored copy stays, and its syntax is named.
    public static func duplicate(_ p: PreparedInstance, storedTransferSyntaxUID stored: String) -> IngestOutcome {
        let otherEncoding = stored != p.transferSyntaxUID
        var failure = IngestOutcome.failure(
            FailureReason.duplicateSOPInstance,
            otherEncoding ? "SOP Instance \(p.sopInstanceUID) is already stored in transfer syntax \(stored) (this copy: \(p.transferSyntaxUID))"
                          : "SOP Instance \(p.sopInstanceUID) is already stored with different content",
            sop: p.sopInstanceUID, sopClass: p.sopClassUID, study: p.studyInstanceUID)
        if otherEncoding { failure.storedTransferSyntaxUID = stored }
        return failure
    }

    public static func failure(_ code: UInt16, _ message: String, sop: String? = nil, sopClass: String? = nil,
                               study: String? = nil) -> IngestOutcome {
        IngestOutcome(status: .failed, sopInstanceUID: sop, sopClassUID: sopClass, studyInstanceUID: study,
                      reasonCode: code, message: message)
    }
}

public enum FailureReason {
    public static let processingFailure: UInt16 = 0x0110
    public static let duplicateSOPInstance: UInt16 = 0x0111
    public static let outOfResources: UInt16 = 0xA700
    public static let dataSetDoesNotMatchSOPClass: UInt16 = 0xA900
    public static let cannotUnderstand: UInt16 = 0xC000
    public static let transferSyntaxNotSupported: UInt16 = 0xC122
    public static let coercionOfDataElements: UInt16 = 0xB000
}

public struct ImageSetSummary: Sendable, Hashable, Codable {
    public var id: String
    public var studyInstanceUID: String
    public var isPrimary: Bool
    public var state: String
    public var version: Int
    public var createdAt: Date
    public var updatedAt: Date
    public var attributes: InstanceAttributes
    public var seriesCount: Int
    public var instanceCount: Int
    public var frameCount: Int
    public var conflicts: [AttributeConflict]

    // Public, for the index in another module (PostgresIndex); Swift synthesises an internal one.
    public init(id: String, studyInstanceUID: String, isPrimary: Bool, state: String, version: Int, createdAt: Date, updatedAt: Date,
                attributes: InstanceAttributes, seriesCount: Int, instanceCount: Int, frameCount: Int, conflicts: [AttributeConflict]) {
        self.id = id
        self.studyInstanceUID = studyInstanceUID
        self.isPrimary = isPrimary
        self.state = state
        self.version = version
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.attributes = attributes
        self.seriesCount = seriesCount
        self.instanceCount = instanceCount
        self.frameCount = frameCount
        self.conflicts = conflicts
    }
}

public struct VersionRecord: Sendable, Hashable, Codable {
    public var version: Int
    public var createdAt: Date
    public var reason: String
    public var instanceCount: Int

    // Public, for the index in another module (PostgresIndex); Swift synthesises an internal one.
    public init(version: Int, createdAt: Date, reason: String, instanceCount: Int) {
        self.version = version
        self.createdAt = createdAt
        self.reason = reason
        self.instanceCount = instanceCount
    }
}

public struct InstanceRecord: Sendable, Hashable {
    public var id: Int64
    public var imageSetID: String
    public var studyInstanceUID: String
    public var seriesInstanceUID: String
    public var sopInstanceUID: String
    public var sopClassUID: String
    public var transferSyntaxUID: String
    public var blob: BlobID
    public var blobSize: Int
    public var attributes: InstanceAttributes
    public var framesInPlace: Bool
    public var addedInVersion: Int
    /// The blob and syntax frames are served from (the transcoded copy when there is one).
    public var framesBlob: BlobID
    public var framesTransferSyntaxUID: String

    // Public, for the index in another module (PostgresIndex); Swift synthesises an internal one.
    public init(id: Int64, imageSetID: String, studyInstanceUID: String, seriesInstanceUID: String, sopInstanceUID: String,
                sopClassUID: String, transferSyntaxUID: String, blob: BlobID, blobSize: Int, attributes: InstanceAttributes,
                framesInPlace: Bool, addedInVersion: Int, framesBlob: BlobID, framesTransferSyntaxUID: String) {
        self.id = id
        self.imageSetID = imageSetID
        self.studyInstanceUID = studyInstanceUID
        self.seriesInstanceUID = seriesInstanceUID
        self.sopInstanceUID = sopInstanceUID
        self.sopClassUID = sopClassUID
        self.transferSyntaxUID = transferSyntaxUID
        self.blob = blob
        self.blobSize = blobSize
        self.attributes = attributes
        self.framesInPlace = framesInPlace
        self.addedInVersion = addedInVersion
        self.framesBlob = framesBlob
        self.framesTransferSyntaxUID = framesTransferSyntaxUID
    }
}

/// Which image sets a DICOMweb request sees. By default the primary set of each study, as in AWS
/// HealthImaging: an instance whose patient/study attributes conflict with its study's primary set is
/// kept in a non-primary set and must never appear as part of the study (another patient's image in
/// this patient's study). A non-primary set is reached only by naming it.
public enum ImageSetScope: Sendable, Hashable {
    case primary
    case imageSet(String)
}

public struct ImageSetFilter: Sendable {
    public var patientID: String?
    public var studyInstanceUID: String?
    public var seriesInstanceUID: String?
    public var accessionNumber: String?
    public var isPrimary: Bool?
    /// Study Date bounds, inclusive, as DICOM dates (YYYYMMDD); either may be open.
    public var studyDateFrom: String?
    public var studyDateTo: String?
    /// Last-change bounds, inclusive.
    public var updatedFrom: Date?
    public var updatedTo: Date?
    public var sort: ImageSetSort = .updatedDescending
    public var limit = 1000
    public var offset = 0
    public init() {}
}

public enum ImageSetSort: String, Sendable, CaseIterable {
    case updatedAscending = "updatedAt", updatedDescending = "-updatedAt"
    case createdAscending = "createdAt", createdDescending = "-createdAt"
    case studyDateAscending = "studyDate", studyDateDescending = "-studyDate"

    /// The ORDER BY clause; the id breaks ties so that pages never overlap. Public for PostgresIndex,
    /// whose columns sort byte-wise too (COLLATE "C").
    public var sql: String {
        switch self {
        case .updatedAscending: "s.updated_at ASC, s.id"
        case .updatedDescending: "s.updated_at DESC, s.id"
        case .createdAscending: "s.created_at ASC, s.id"
        case .createdDescending: "s.created_at DESC, s.id"
        case .studyDateAscending: "s.study_date ASC, s.study_time ASC, s.id"
        case .studyDateDescending: "s.study_date DESC, s.study_time DESC, s.id"
        }
    }
}

/// The index: everything Tessera knows about stored instances, apart from their bytes. SQLite
/// (GRDB) is the embedded implementation; a PostgreSQL one fills the same protocol.
public protocol ImageSetIndex: Sendable {
    /// Places prepared instances in image sets in one transaction, creating at most one new
    /// version per image set touched.
    /// `audit` makes, from the outcomes, the audit records that commit in the same transaction.
    func commit(_ instances: [PreparedInstance], policy: DuplicatePolicy, reason: String,
                audit: (@Sendable ([IngestOutcome]) -> [AuditEvent])?) async throws -> [IngestOutcome]
    func imageSets(_ filter: ImageSetFilter) async throws -> [ImageSetSummary]
    func imageSet(_ id: String) async throws -> ImageSetSummary?
    func versions(of imageSetID: String) async throws -> [VersionRecord]
    /// Instances of an image set as of `version` (nil: the latest).
    func instances(of imageSetID: String, version: Int?) async throws -> [InstanceRecord]
    /// The current instance with this SOP Instance UID, in whichever image set holds it.
    func instance(sopInstanceUID: String) async throws -> InstanceRecord?
    /// The instance row with this id, if it belongs to the latest version of its image set.
    func currentInstance(rowID: Int64) async throws -> InstanceRecord?
    func frames(of instanceID: Int64) async throws -> [FrameRecord]
    /// A number that changes after every commit of this process that may change which instance
    /// rows are current (instances, image sets, frames), when this process is the index's only
    /// writer; nil when other processes write it too (replicas on PostgreSQL, a read-only open
    /// beside a server). Readers cache what they looked up under it (`FrameLocationCache`).
    var localChangeGeneration: UInt64? { get }
    func metadata(of instanceID: Int64) async throws -> [UInt8]?
    /// The gzipped JSON array of a series' instance metadata for the image set's latest version;
    /// nil while a change to the series waits for `refreshPendingSeriesMetadata`.
    func seriesMetadataGzip(imageSetID: String, seriesInstanceUID: String) async throws -> [UInt8]?
    /// The JSON array of a series' current instance metadata, from the stored document when it is
    /// up to date, else built from the instance rows. An empty array when the series has no instance.
    func seriesMetadata(imageSetID: String, seriesInstanceUID: String) async throws -> ByteBuffer
    /// Builds and compresses the documents of series changed since their last refresh; returns how many.
    func refreshPendingSeriesMetadata() async throws -> Int
    /// Every blob the index references, with the size it recorded.
    func referencedBlobs() async throws -> [BlobID: Int]
    func isReferenced(_ blob: BlobID) async throws -> Bool
    func search(_ query: SearchQuery) async throws -> [SearchRow]
    /// Removes the current instances of a study (or one series, or one instance) that `scope` sees,
    /// in a new version of each image set holding them; returns how many were removed from each image set. Rows stay
    /// for older versions.
    /// With `audit`, the delete's audit record commits in the same transaction.
    func removeInstances(study: String, series: String?, sop: String?, scope: ImageSetScope, reason: String,
                         audit: AuditContext?) async throws -> [String: Int]
    /// Drops all but the newest `keep` versions (of one image set, or of all when nil) and the
    /// instance rows only those versions could see.
    func pruneVersions(imageSetID: String?, keep: Int, audit: AuditContext?) async throws -> PruneResult
    /// Appends audit records in one transaction of their own (reads, key changes).
    func appendAudit(_ events: [AuditEvent]) async throws
    /// Audit records matching `filter`, oldest first.
    func auditRecords(_ filter: AuditFilter) async throws -> [AuditRecord]
    func auditHeadSequence() async throws -> Int64
    /// Checks the whole chain (and that `anchor`, a sequence and its hash, is still in it).
    func verifyAuditTrail(anchor: (Int64, String)?) async throws -> AuditVerification
    /// Current instances of a study, optionally narrowed to a series and an instance, in the active
    /// image sets `scope` selects.
    func currentInstances(study: String, series: String?, sop: String?, scope: ImageSetScope) async throws -> [InstanceRecord]
    func setting(_ key: String) async throws -> String?
    func setSetting(_ key: String, _ value: String) async throws
    /// Says that this process is about to upload these blobs for a commit, so that no process's
    /// sweeper (`removeOrphanBlob`) removes them while they are on their way to the index. Called
    /// only when several processes share the backends; the embedded index has nothing to do.
    func reserveBlobs(_ ids: [BlobID]) async throws
    /// Calls `remove` when no instance row references the blob and no reservation younger than
    /// `grace` seconds names it, ordered against `reserveBlobs` of the same blob by any process (on
    /// PostgreSQL a per-blob lock is held across `remove`: a commit of the same bytes either reserves
    /// first, and the blob stays, or after the removal, and uploads it again). Returns whether it removed.
    func removeOrphanBlob(_ id: BlobID, grace: TimeInterval, remove: @Sendable () async throws -> Void) async throws -> Bool

    // The change feed (ChangeFeed.swift, Docs/events.md): every write above appends its events in
    // its own transaction, numbered by a one-row counter that the transaction updates, so numbers
    // are gap-free in commit order and a reader never sees N+1 before N.
    /// Events with a sequence above `after`, oldest first, at most `limit`. Throws
    /// `ChangeFeedPrunedError` when retention removed events after `after`.
    func changes(after: Int64, limit: Int) async throws -> [ChangeEvent]
    /// The sequence of the newest event (0: none yet).
    func latestChangeSequence() async throws -> Int64
    /// The highest sequence retention removed (0: none); the oldest held is the next one.
    func changeFeedPrunedThrough() async throws -> Int64
    /// Removes the events older than `date`, always a prefix of the feed (up to the newest event
    /// older than it); returns how many went.
    func pruneChanges(before date: Date) async throws -> Int
}

extension ImageSetIndex {
    /// Other processes may write: nothing looked up may be reused without asking the index again.
    public var localChangeGeneration: UInt64? { nil }

    public func commit(_ instances: [PreparedInstance], policy: DuplicatePolicy, reason: String) async throws -> [IngestOutcome] {
        try await commit(instances, policy: policy, reason: reason, audit: nil)
    }

    public func removeInstances(study: String, series: String?, sop: String?, scope: ImageSetScope, reason: String) async throws -> [String: Int] {
        try await removeInstances(study: study, series: series, sop: sop, scope: scope, reason: reason, audit: nil)
    }

    public func pruneVersions(imageSetID: String?, keep: Int) async throws -> PruneResult {
        try await pruneVersions(imageSetID: imageSetID, keep: keep, audit: nil)
    }
}
