import Foundation

/// A webhook subscription as the index keeps it (Docs/events.md, "Webhooks"): where to POST, which
/// events, the shared secret the POSTs are signed with, and the delivery state that must survive a
/// restart (the cursor, the failures, the lease of the replica delivering it).
public struct Subscription: Sendable, Hashable {
    public enum State: String, Sendable, Hashable, Codable, CaseIterable {
        /// Delivering (failures below the limit are retried with backoff).
        case active
        /// Stopped after the configured number of consecutive failures; `enable` resumes it from its cursor.
        case failing
        /// Stopped by an admin; `enable` resumes it from its cursor.
        case disabled
    }

    public var id: String
    public var url: String
    /// Event types delivered (`instance.stored`, …); empty: every type.
    public var eventTypes: [String]
    public var studyInstanceUID: String?
    public var patientID: String?
    /// The HMAC key. Kept as given (it must be usable for signing, so it cannot be hashed); never
    /// shown by GET, the CLI's list or logs.
    public var secret: String
    public var created: Date
    /// The sequence number of the last event delivered (or passed over by the filters): delivery
    /// resumes after it.
    public var cursor: Int64
    public var state: State
    public var consecutiveFailures: Int
    public var lastError: String?
    public var lastAttempt: Date?
    public var lastDelivery: Date?

    public init(id: String, url: String, eventTypes: [String], studyInstanceUID: String?, patientID: String?, secret: String,
                created: Date, cursor: Int64, state: State = .active, consecutiveFailures: Int = 0, lastError: String? = nil,
                lastAttempt: Date? = nil, lastDelivery: Date? = nil) {
        self.id = id
        self.url = url
        self.eventTypes = eventTypes
        self.studyInstanceUID = studyInstanceUID
        self.patientID = patientID
        self.secret = secret
        self.created = created
        self.cursor = cursor
        self.state = state
        self.consecutiveFailures = consecutiveFailures
        self.lastError = lastError
        self.lastAttempt = lastAttempt
        self.lastDelivery = lastDelivery
    }

    /// Whether an event of this type, study and patient is for this subscription.
    public func wants(type: String, studyInstanceUID study: String?, patientID patient: String?) -> Bool {
        if !eventTypes.isEmpty && !eventTypes.contains(type) { return false }
        if let studyInstanceUID, studyInstanceUID != study { return false }
        if let patientID, patientID != patient { return false }
        return true
    }
}

public struct SubscriptionError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Where subscriptions and their delivery state live: the index (SQLiteIndex, PostgresIndex).
/// Writes of delivery state are conditional on the lease, so that a replica that lost its lease
/// (paused past its expiry) cannot move a cursor another replica now owns.
public protocol SubscriptionIndex: Sendable {
    func createSubscription(_ subscription: Subscription) async throws
    /// Every subscription, oldest first.
    func subscriptions() async throws -> [Subscription]
    func subscription(id: String) async throws -> Subscription?
    /// Removes it and its delivery state; false when there is none.
    func deleteSubscription(id: String) async throws -> Bool
    /// Sets the state; `active` also clears the failure count and last error (re-enabling). False when there is none.
    func setSubscriptionState(id: String, _ state: Subscription.State) async throws -> Bool
    /// Takes or renews the subscription's delivery lease for `owner` until `duration` seconds from
    /// now, in the index's clock; true when `owner` holds it. Another owner's unexpired lease wins.
    func acquireSubscriptionLease(id: String, owner: String, duration: TimeInterval) async throws -> Bool
    func releaseSubscriptionLease(id: String, owner: String) async throws
    /// A 2xx for the event `cursor` (or events up to it passed over by the filters): the cursor
    /// moves there and failures reset; `delivered` also sets the last delivery time. False when
    /// `owner` does not hold the lease (nothing is written).
    func recordSubscriptionProgress(id: String, owner: String, cursor: Int64, delivered: Date?) async throws -> Bool
    /// A failed attempt: the failure count grows and the error is kept; at `failureLimit`
    /// consecutive failures the state becomes `failing`. Returns the subscription as written, nil
    /// when `owner` does not hold the lease.
    func recordSubscriptionFailure(id: String, owner: String, error: String, at: Date, failureLimit: Int) async throws -> Subscription?
}

extension Subscription {
    /// New ids: 128 random bits, hex.
    public static func newID() -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<2).map { _ in
            let hex = String(g.next() as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }.joined()
    }

    /// A generated secret: 256 random bits, base64url, `whsec_` in front (secret scanners find it).
    public static func generateSecret() -> String { APIKey.randomToken(prefix: "whsec_") }

    /// The event types a subscription may filter on (the change feed's).
    public static var knownEventTypes: [String] { ChangeEventType.allCases.map(\.rawValue) }

    /// The checks a new subscription passes, with the message a client sees (400).
    public static func validate(url: String, secret: String?, eventTypes: [String]) throws {
        if let bad = eventTypes.first(where: { !knownEventTypes.contains($0) }) {
            throw SubscriptionError("eventTypes: \(bad) is not an event type; they are \(knownEventTypes.joined(separator: ", "))")
        }
        guard url.utf8.count <= 2048, let c = URLComponents(string: url), let scheme = c.scheme?.lowercased() else {
            throw SubscriptionError("url is not a URL (http://HOST[:PORT]/PATH or https://…, at most 2048 bytes)")
        }
        guard scheme == "http" || scheme == "https" else {
            throw SubscriptionError("url must be http or https, not \(scheme)")
        }
        guard let host = c.host, !host.isEmpty else { throw SubscriptionError("url names no host") }
        // A password in the URL would come back in every GET; the signature is what authenticates Tessera.
        guard c.user == nil && c.password == nil else {
            throw SubscriptionError("url must not carry a user or password; receivers verify the Tessera-Signature header instead")
        }
        if let secret {
            guard (16...512).contains(secret.utf8.count) else { throw SubscriptionError("secret is 16 to 512 bytes (or omit it to have one generated)") }
        }
    }
}

extension Datastore {
    /// The index of a data folder alone, opened without the folder's lock, so that `tessera keys`
    /// and `tessera subscriptions` work beside a running `tessera serve` (SQLite serialises the
    /// writes; the server sees a key revoked within its cache's lifetime, a subscription changed
    /// within its delivery's poll interval). `create` makes the folder and index when missing.
    public static func openIndex(folder: String, create: Bool) throws -> any ImageSetIndex & AccessKeyIndex & SubscriptionIndex {
        if create { try DataFolderError.createFolder(folder) } else { try DataFolderError.checkExisting(folder) }
        return try SQLiteIndex(path: folder + "/index.sqlite", folder: folder)
    }
}
