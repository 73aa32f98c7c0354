import AsyncHTTPClient
import Foundation
import ImageSetStore
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// One event as a webhook delivers it: its place in the feed, what the filters look at, and the
/// JSON body the receiver gets (the feed's own encoding of the event).
public struct WebhookEvent: Sendable, Hashable {
    public var sequence: Int64
    public var type: String
    public var studyInstanceUID: String?
    public var patientID: String?
    public var body: [UInt8]

    public init(sequence: Int64, type: String, studyInstanceUID: String?, patientID: String?, body: [UInt8]) {
        self.sequence = sequence
        self.type = type
        self.studyInstanceUID = studyInstanceUID
        self.patientID = patientID
        self.body = body
    }
}

/// The source no longer holds the events after a subscription's cursor (the feed's retention
/// removed them): the subscription is marked failing with this as its last error.
public struct WebhookEventsGone: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Where deliveries read events from: the change feed (`Datastore` through `FeedEventSource`).
public protocol WebhookEventSource: Sendable {
    /// Events with a sequence number above `after`, oldest first, at most `limit`.
    func events(after: Int64, limit: Int) async throws -> [WebhookEvent]
    /// Returns when an event above `after` may be there, or after `timeout` seconds.
    func waitForEvents(after: Int64, timeout: Double) async
}

/// How deliveries behave (`tessera serve --webhook-…`, Docs/configuration.md).
public struct WebhookOptions: Sendable {
    /// Consecutive failed attempts after which a subscription is marked failing and delivery stops.
    public var failureLimit = 15
    /// Retries wait a random time between 0 and base × 2^(failures−1), capped at `backoffMaximum` (seconds).
    public var backoff = WebhookBackoff(base: 1, maximum: 600)
    /// Seconds to open the connection, and for the whole POST (connect, send, response head and body).
    public var connectTimeout = 5.0
    public var requestTimeout = 10.0
    /// Seconds between looks at the subscription list (new, deleted, re-enabled subscriptions).
    public var pollInterval = 2.0
    /// Seconds a replica's lease on a subscription lasts; renewed at a third of it while delivering.
    public var leaseDuration = 30.0
    /// Events read from the feed at a time.
    public var batch = 100
    /// Seconds between writes of the cursor while events keep being acknowledged (it is also
    /// written whenever delivery pauses or stops). A crash can send the events acknowledged in
    /// the last interval again: at least once, never lost.
    public var progressInterval = 0.25
    public init() {}
}

/// Delivers the change feed to subscriptions (Docs/events.md, "Webhooks"): one task per active
/// subscription, each POSTing its events one at a time in sequence order, the next only after a 2xx
/// for the previous; the cursor, failures and state are written to the index, so a restart resumes
/// where delivery stopped. Nothing here runs on a request's path: STOW-RS commits an event and
/// returns, and the task that is waiting for events wakes up on its own.
public final class WebhookDispatcher: Sendable {
    let index: any SubscriptionIndex
    let source: any WebhookEventSource
    let options: WebhookOptions
    let logger: Logger
    /// This process's name in the lease rows.
    public let owner: String
    let http: HTTPClient
    /// Each subscription's task and the number it was started under (so that a task ending late
    /// never removes its successor's entry).
    let state = Mutex<(tasks: [String: (number: Int, task: Task<Void, Never>)], started: Int, loop: Task<Void, Never>?, stopped: Bool)>(
        ([:], 0, nil, false))

    public init(index: any SubscriptionIndex, source: any WebhookEventSource, options: WebhookOptions = WebhookOptions(), logger: Logger) {
        self.index = index
        self.source = source
        self.options = options
        self.logger = logger
        owner = "\(ProcessInfo.processInfo.hostName):\(getpid()):\(Subscription.newID().prefix(8))"
        // Redirects are not followed: a receiver's 3xx must not send patients' events elsewhere.
        let configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(connect: .nanoseconds(Int64(options.connectTimeout * 1e9)), read: .nanoseconds(Int64(options.requestTimeout * 1e9))))
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Starts following the subscription list.
    public func start() {
        let loop = Task { await self.reconcileLoop() }
        state.withLock { $0.loop = loop }
    }

    /// Stops every delivery (an attempt under way is cancelled; its event is delivered again later)
    /// and releases the leases, so another replica can take over at once.
    public func stop() async {
        let (loop, tasks) = state.withLock { s -> (Task<Void, Never>?, [String: Task<Void, Never>]) in
            s.stopped = true
            defer { s.tasks = [:]; s.loop = nil }
            return (s.loop, s.tasks.mapValues(\.task))
        }
        loop?.cancel()
        await loop?.value
        for t in tasks.values { t.cancel() }
        for (id, t) in tasks {
            await t.value
            try? await index.releaseSubscriptionLease(id: id, owner: owner)
        }
        try? await http.shutdown()
    }

    /// Looks at the subscription list every `pollInterval`: a task for each active one that has
    /// none, cancelled for those deleted or no longer active.
    func reconcileLoop() async {
        while !Task.isCancelled {
            do {
                let active = Set(try await index.subscriptions().filter { $0.state == .active }.map(\.id))
                state.withLock { s in
                    guard !s.stopped else { return }
                    for (id, entry) in s.tasks where !active.contains(id) {
                        entry.task.cancel()
                        s.tasks[id] = nil
                    }
                    for id in active where s.tasks[id] == nil {
                        s.started += 1
                        let number = s.started
                        s.tasks[id] = (number, Task { await self.deliver(id, number: number) })
                    }
                }
            } catch {
                logger.warning("webhooks: cannot read the subscriptions", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(nanoseconds: UInt64(options.pollInterval * 1e9))
        }
    }

    /// Ends the task's entry when it stops by itself (failing, disabled, deleted), so that a later
    /// re-enable starts a new one.
    func finished(_ id: String, number: Int) {
        state.withLock { s in if s.tasks[id]?.number == number { s.tasks[id] = nil } }
    }

    /// What one subscription's task knows between batches: the subscription as read when it took
    /// the lease, how far it got, and what it acknowledged but has not written yet.
    struct Progress {
        var subscription: Subscription?
        var cursor: Int64 = 0
        /// Acknowledged (or passed over) up to here, not yet in the index.
        var pending: Int64?
        var delivered: Date?
        /// A failure count to clear with the next write (the first 2xx after failures is written at once).
        var failed = false
        var written = Date.distantPast
        var leased = Date.distantPast
    }

    /// The delivery loop of one subscription.
    func deliver(_ id: String, number: Int) async {
        defer { finished(id, number: number) }
        var p = Progress()
        while !Task.isCancelled {
            do {
                guard try await holdLease(id, &p) else {
                    // Another replica delivers it; look again when its lease may have expired.
                    try await Task.sleep(nanoseconds: UInt64(min(options.leaseDuration / 3, options.pollInterval) * 1e9))
                    continue
                }
                guard let sub = p.subscription, sub.state == .active else { break }
                let events: [WebhookEvent]
                do {
                    events = try await source.events(after: p.cursor, limit: options.batch)
                } catch let gone as WebhookEventsGone {
                    // Nothing can fill the gap: stop, with the reason to see.
                    _ = try await index.recordSubscriptionFailure(id: id, owner: owner, error: gone.description, at: Date(), failureLimit: 1)
                    break
                }
                if events.isEmpty {
                    try await flush(id, &p)
                    await source.waitForEvents(after: p.cursor, timeout: options.leaseDuration / 3)
                    continue
                }
                guard try await deliver(events, to: sub, &p) else { break }
            } catch {
                if Task.isCancelled || error is CancellationError { break }
                logger.warning("webhooks: delivery loop error", metadata: ["subscription": "\(id)", "error": "\(error)"])
                try? await Task.sleep(nanoseconds: UInt64(options.pollInterval * 1e9))
            }
        }
        // Stopping: what was acknowledged goes on record, so a restart does not send it again, and
        // the lease is let go, so another replica need not wait for it to expire. In a task of its
        // own: this one is cancelled, and a network index may refuse to start a query in it.
        let (index, owner, pending, delivered) = (index, owner, p.pending, p.delivered)
        await Task {
            if let pending { _ = try? await index.recordSubscriptionProgress(id: id, owner: owner, cursor: pending, delivered: delivered) }
            try? await index.releaseSubscriptionLease(id: id, owner: owner)
        }.value
    }

    /// Takes or renews the lease when a third of it has passed; after it lapsed (or at first) the
    /// subscription is read again, since another replica may have moved its cursor meanwhile.
    func holdLease(_ id: String, _ p: inout Progress) async throws -> Bool {
        let since = Date().timeIntervalSince(p.leased)
        guard since >= options.leaseDuration / 3 || p.subscription == nil else { return true }
        guard try await index.acquireSubscriptionLease(id: id, owner: owner, duration: options.leaseDuration) else {
            p.subscription = nil
            return false
        }
        p.leased = Date()
        if since >= options.leaseDuration || p.subscription == nil {
            // What this task acknowledged is written first (it holds the lease again; the cursor never goes back).
            try await flush(id, &p)
            p = Progress(subscription: try await index.subscription(id: id), leased: p.leased)
            p.cursor = p.subscription?.cursor ?? 0
        }
        return true
    }

    /// Writes the acknowledged cursor; a lost lease drops what this task knew (it reads again).
    func flush(_ id: String, _ p: inout Progress) async throws {
        guard let pending = p.pending else { return }
        let kept = try await index.recordSubscriptionProgress(id: id, owner: owner, cursor: pending, delivered: p.delivered)
        p.pending = nil
        p.delivered = nil
        p.failed = false
        p.written = Date()
        if !kept { p.subscription = nil }
    }

    /// Delivers a batch in order; false when the subscription stopped (failing, deleted).
    func deliver(_ events: [WebhookEvent], to sub: Subscription, _ p: inout Progress) async throws -> Bool {
        for event in events {
            if sub.wants(type: event.type, studyInstanceUID: event.studyInstanceUID, patientID: event.patientID) {
                while true {
                    try Task.checkCancellation()
                    // Renewed before each POST, not only between batches: a slow receiver could otherwise
                    // keep a batch going past the lease, and another replica would send the same events.
                    if Date().timeIntervalSince(p.leased) >= options.leaseDuration / 3 {
                        guard try await index.acquireSubscriptionLease(id: sub.id, owner: owner, duration: options.leaseDuration) else {
                            p.subscription = nil
                            return true
                        }
                        p.leased = Date()
                    }
                    let started = Date()
                    guard let failure = await post(event, to: sub) else { break }
                    // Stopping (shutdown, disabled, deleted) is no failure of the receiver's.
                    try Task.checkCancellation()
                    try await flush(sub.id, &p)
                    guard let now = try await index.recordSubscriptionFailure(id: sub.id, owner: owner, error: failure, at: started,
                                                                              failureLimit: options.failureLimit) else {
                        p.subscription = nil
                        return true
                    }
                    p.failed = true
                    logger.warning("webhooks: delivery failed", metadata: [
                        "subscription": "\(sub.id)", "sequence": "\(event.sequence)", "failures": "\(now.consecutiveFailures)",
                        "state": "\(now.state.rawValue)", "error": "\(failure)"])
                    guard now.state == .active else { return false }
                    try await sleepHoldingLease(sub.id, seconds: options.backoff.delay(afterFailures: now.consecutiveFailures), &p)
                }
                p.delivered = Date()
            }
            p.cursor = event.sequence
            p.pending = event.sequence
            // Cursor writes are spaced out (each is a commit beside STOW-RS's); a recovery is shown at once.
            if p.failed || Date().timeIntervalSince(p.written) >= options.progressInterval {
                try await flush(sub.id, &p)
                if p.subscription == nil { return true }
            }
        }
        return true
    }

    /// Waits out a backoff delay, renewing the lease meanwhile (a delay may outlast it).
    func sleepHoldingLease(_ id: String, seconds: Double, _ p: inout Progress) async throws {
        var left = seconds
        while left > 0 {
            let step = min(left, options.leaseDuration / 3)
            try await Task.sleep(nanoseconds: UInt64(step * 1e9))
            left -= step
            if Date().timeIntervalSince(p.leased) >= options.leaseDuration / 3 {
                guard try await index.acquireSubscriptionLease(id: id, owner: owner, duration: options.leaseDuration) else {
                    throw CancellationError()
                }
                p.leased = Date()
            }
        }
    }

    /// One POST; nil on a 2xx, else what went wrong in a few words (kept as the last error).
    func post(_ event: WebhookEvent, to sub: Subscription) async -> String? {
        var request = HTTPClientRequest(url: sub.url)
        request.method = .POST
        let timestamp = Int(Date().timeIntervalSince1970)
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "Tessera-Webhooks")
        request.headers.add(name: "Tessera-Event-Sequence", value: String(event.sequence))
        request.headers.add(name: "Tessera-Event-Type", value: event.type)
        request.headers.add(name: "Tessera-Subscription", value: sub.id)
        request.headers.add(name: WebhookSignature.header, value: WebhookSignature.sign(secret: sub.secret, timestamp: timestamp, body: event.body))
        request.body = .bytes(ByteBuffer(bytes: event.body))
        do {
            let response = try await http.execute(request, deadline: .now() + .nanoseconds(Int64(options.requestTimeout * 1e9)), logger: logger)
            // The body is not used; read a little of it so the connection can be kept.
            var read = 0
            for try await part in response.body {
                read += part.readableBytes
                if read > 64 << 10 { break }
            }
            return (200..<300).contains(Int(response.status.code)) ? nil : "HTTP \(response.status.code)"
        } catch {
            return Self.describe(error, options)
        }
    }

    static func describe(_ error: any Error, _ options: WebhookOptions) -> String {
        if let e = error as? HTTPClientError {
            switch e {
            case .connectTimeout: return "no connection within \(options.connectTimeout) s"
            case .deadlineExceeded, .readTimeout: return "no answer within \(options.requestTimeout) s"
            case .remoteConnectionClosed: return "the receiver closed the connection"
            default: return "\(e)"
            }
        }
        if error is CancellationError { return "cancelled" }
        let text = "\(error)"
        if text.contains("connectionRefused") || text.contains("Connection refused") { return "connection refused" }
        return String(text.prefix(300))
    }
}
