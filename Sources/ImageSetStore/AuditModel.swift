import Crypto
import Foundation

/// What an audit record says was done (Docs/security.md, "Audit trail").
public enum AuditAction: String, Sendable, Codable, CaseIterable {
    case search, retrieve, metadata, frames, rendered, bulkdata, thumbnail
    case imageSetRead = "image-set-read"
    case store, delete, prune
    case auditRead = "audit-read"
    case changeFeedRead = "changefeed-read"
    case keyCreate = "key-create", keyRevoke = "key-revoke"
    /// Webhook subscriptions: made, removed, enabled or disabled (they send patients' events out),
    /// and read (their URLs and patient filters).
    case subscriptionChange = "subscription-change", subscriptionRead = "subscription-read"
    case authenticationFailed = "authentication-failed"
    /// The bounded read buffer was full: this record says how many records were lost.
    case recordsDropped = "audit-records-dropped"
}

/// The patient data one request touched: the first `AuditSubjects.limit` values of each kind, and
/// how many there were in all (a 1,000-instance STOW keeps its record small).
public struct AuditSubjects: Sendable, Hashable, Codable {
    public static let limit = 50
    public private(set) var studies: [String] = []
    public private(set) var series: [String] = []
    public private(set) var instances: [String] = []
    public private(set) var patients: [String] = []
    public private(set) var studyCount = 0
    public private(set) var seriesCount = 0
    public private(set) var instanceCount = 0
    public private(set) var patientCount = 0

    public init() {}

    public init(studies: [String], series: [String], instances: [String], patients: [String], counts: [Int]) {
        self.studies = studies; self.series = series; self.instances = instances; self.patients = patients
        (studyCount, seriesCount, instanceCount, patientCount) = (counts[0], counts[1], counts[2], counts[3])
    }

    public var isEmpty: Bool { studyCount + seriesCount + instanceCount + patientCount == 0 }

    /// Adds values not yet seen (nil and empty ones are skipped). Membership is checked in the kept
    /// prefix only, so beyond the cap a repeated value may be counted twice: the count is "at least".
    public mutating func add(study: String? = nil, series: String? = nil, instance: String? = nil, patient: String? = nil) {
        Self.add(study, to: &studies, count: &studyCount)
        Self.add(series, to: &self.series, count: &seriesCount)
        Self.add(instance, to: &instances, count: &instanceCount)
        Self.add(patient, to: &patients, count: &patientCount)
    }

    private static func add(_ value: String?, to list: inout [String], count: inout Int) {
        guard let value, !value.isEmpty else { return }
        if list.contains(value) { return }
        count += 1
        if list.count < limit { list.append(value) }
    }
}

/// One auditable event before the trail numbers and chains it.
public struct AuditEvent: Sendable, Hashable {
    public var time: Date
    /// Nil: the request had no (valid) credentials.
    public var principal: Principal?
    public var clientAddress: String?
    public var requestID: String?
    public var action: AuditAction
    public var subjects: AuditSubjects
    public var success: Bool
    /// The HTTP status answered, when the event was a request.
    public var status: Int?
    /// Free text for what the fields do not say ("3 versions removed", a key's name).
    public var detail: String?

    public init(action: AuditAction, principal: Principal?, clientAddress: String? = nil, requestID: String? = nil,
                subjects: AuditSubjects = AuditSubjects(), success: Bool, status: Int? = nil, detail: String? = nil, time: Date = Date()) {
        self.time = time
        self.principal = principal
        self.clientAddress = clientAddress
        self.requestID = requestID
        self.action = action
        self.subjects = subjects
        self.success = success
        self.status = status
        self.detail = detail
    }

    public init(_ context: AuditContext, action: AuditAction, subjects: AuditSubjects = AuditSubjects(), success: Bool,
                status: Int? = nil, detail: String? = nil) {
        self.init(action: action, principal: context.principal, clientAddress: context.clientAddress, requestID: context.requestID,
                  subjects: subjects, success: success, status: status, detail: detail)
    }
}

/// A stored audit record: the event, its place in the trail, and the chain. `hash` is SHA-256 over
/// `canonicalBytes`, which include `previousHash`: editing, inserting or removing a record breaks
/// the link of every later one (`SQLiteIndex.verifyAuditTrail`).
public struct AuditRecord: Sendable, Hashable {
    public var sequence: Int64
    /// Microseconds since 1970, an integer so the hashed text never depends on float formatting.
    public var timeMicroseconds: Int64
    public var principalName: String?
    public var principalKind: String?
    public var roles: [String]
    public var clientAddress: String?
    public var requestID: String?
    public var action: String
    public var subjects: AuditSubjects
    public var success: Bool
    public var status: Int?
    public var detail: String?
    public var previousHash: String
    public var hash: String

    /// The hash the first record chains to.
    public static let genesis = String(repeating: "0", count: 64)

    public init(_ event: AuditEvent, sequence: Int64, previousHash: String) {
        self.sequence = sequence
        timeMicroseconds = Int64((event.time.timeIntervalSince1970 * 1e6).rounded())
        principalName = event.principal?.name
        principalKind = event.principal?.kind.rawValue
        roles = event.principal.map { $0.roles.map(\.rawValue).sorted() } ?? []
        clientAddress = event.clientAddress
        requestID = event.requestID
        action = event.action.rawValue
        subjects = event.subjects
        success = event.success
        status = event.status
        detail = event.detail
        self.previousHash = previousHash
        hash = ""
        hash = computedHash()
    }

    public init(sequence: Int64, timeMicroseconds: Int64, principalName: String?, principalKind: String?, roles: [String],
                clientAddress: String?, requestID: String?, action: String, subjects: AuditSubjects, success: Bool,
                status: Int?, detail: String?, previousHash: String, hash: String) {
        self.sequence = sequence; self.timeMicroseconds = timeMicroseconds; self.principalName = principalName
        self.principalKind = principalKind; self.roles = roles; self.clientAddress = clientAddress; self.requestID = requestID
        self.action = action; self.subjects = subjects; self.success = success; self.status = status; self.detail = detail
        self.previousHash = previousHash; self.hash = hash
    }

    public var time: Date { Date(timeIntervalSince1970: Double(timeMicroseconds) / 1e6) }

    /// Every field but `hash`, in a fixed order, each length-prefixed (`-` for absent), so that no
    /// two different records encode alike (a value cannot pose as a field boundary).
    public var canonicalBytes: [UInt8] {
        var out = Array("tessera-audit-1\n".utf8)
        out.reserveCapacity(512)
        func field(_ value: String?) {
            guard let value else { out.append(UInt8(ascii: "-")); out.append(0x0A); return }
            out.append(contentsOf: String(value.utf8.count).utf8)
            out.append(UInt8(ascii: ":"))
            out.append(contentsOf: value.utf8)
            out.append(0x0A)
        }
        func list(_ values: [String], total: Int) {
            field("\(values.count)/\(total)")
            for v in values { field(v) }
        }
        field(String(sequence)); field(String(timeMicroseconds)); field(principalName); field(principalKind)
        field(roles.joined(separator: ",")); field(clientAddress); field(requestID); field(action)
        list(subjects.studies, total: subjects.studyCount); list(subjects.series, total: subjects.seriesCount)
        list(subjects.instances, total: subjects.instanceCount); list(subjects.patients, total: subjects.patientCount)
        field(success ? "success" : "failure"); field(status.map(String.init)); field(detail); field(previousHash)
        return out
    }

    public func computedHash() -> String {
        BlobID(digest: SHA256.hash(data: canonicalBytes)).hex  // the same lower-case hex as content hashes
    }
}

/// Which records an audit query returns, oldest first, `limit` at most after sequence `after`.
public struct AuditFilter: Sendable, Hashable {
    public var patientID: String?
    public var studyInstanceUID: String?
    /// A principal's name (key name or token subject).
    public var identity: String?
    public var action: String?
    public var from: Date?
    public var to: Date?
    public var after: Int64 = 0
    public var limit = 100
    public static let maximumLimit = 1000
    public init() {}
}

/// What `tessera audit verify` found: the chain's length and head, or the first broken record.
public struct AuditVerification: Sendable, Hashable {
    public var records = 0
    public var headSequence: Int64 = 0
    public var headHash = AuditRecord.genesis
    /// The first problem, naming the record; nil when the chain is whole.
    public var problem: String?
    public init() {}
}
