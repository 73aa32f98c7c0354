import Crypto
import CoreMetrics
import Foundation
import HTTPTypes
import Hummingbird
import ImageSetStore
import NIOConcurrencyHelpers
import NIOCore
import Prometheus

/// The server's Prometheus metrics (Docs/operations.md, "Metrics"), through swift-metrics' API on a
/// `PrometheusMetricsFactory` bound to this object's own registry: never the process-wide
/// `MetricsSystem`, so that several applications in one process (the tests) count apart.
///
/// Labels are bounded sets only: the route's pattern (`/dicomweb/studies/{study}`, never the
/// path, whose UIDs would make a series per instance and put patient-identifying ids in the
/// monitoring system), the method, the status class, an operation name, an outcome and a reason code.
public final class ServerMetrics: StoreMetrics, Sendable {
    public let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory
    private let droppedSeen = NIOLockedValueBox(0)

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        // Frames from the page cache answer in well under a millisecond: the default buckets start at 5 ms.
        factory.defaultDurationHistogramBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
            .map { Duration.nanoseconds(Int64($0 * 1e9)) }
        factory.valueHistogramBuckets["tessera_group_commit_batch_size"] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
        self.factory = factory
    }

    /// The label of routes the router did not match (404s for any path): one series, not one per path.
    static let unmatched = "unmatched"

    /// One request, when its response's last byte was written (or it failed).
    func request(method: HTTPRequest.Method, route: String?, status: Int, duration: Duration, bytesIn: Int, bytesOut: Int) {
        let route = route ?? Self.unmatched
        let labels = Self.requestLabels(method: method.rawValue, route: route, status: status)
        Counter(label: Self.requestsTotal, dimensions: labels, factory: factory).increment()
        Timer(label: Self.requestDuration, dimensions: labels, factory: factory).recordNanoseconds(duration.nanoseconds)
        if bytesIn > 0 { Counter(label: "tessera_http_request_bytes_total", dimensions: [("route", route)], factory: factory).increment(by: bytesIn) }
        if bytesOut > 0 { Counter(label: Self.responseBytes, dimensions: [("route", route)], factory: factory).increment(by: bytesOut) }
    }

    static let requestsTotal = "tessera_http_requests_total"
    static let requestDuration = "tessera_http_request_duration_seconds"
    static let responseBytes = "tessera_http_response_bytes_total"

    static func requestLabels(method: String, route: String, status: Int) -> [(String, String)] {
        [("method", method), ("route", route), ("status", "\(status / 100)xx")]
    }

    /// What the stored-frame fast path records per request, made once: a handle looked up per
    /// request (a lock and a dictionary in the registry, five times) was a tenth of its work.
    struct FastPathMetrics: Sendable {
        let served: CoreMetrics.Counter, declined: CoreMetrics.Counter
        let requests: CoreMetrics.Counter, duration: CoreMetrics.Timer, bytesOut: CoreMetrics.Counter
    }

    /// The same series `request` and `tessera_frames_fast_path_total{outcome}` count into.
    func fastPathMetrics(route: String) -> FastPathMetrics {
        let labels = Self.requestLabels(method: "GET", route: route, status: 200)
        return FastPathMetrics(
            served: Counter(label: "tessera_frames_fast_path_total", dimensions: [("outcome", "served")], factory: factory),
            declined: Counter(label: "tessera_frames_fast_path_total", dimensions: [("outcome", "declined")], factory: factory),
            requests: Counter(label: Self.requestsTotal, dimensions: labels, factory: factory),
            duration: Timer(label: Self.requestDuration, dimensions: labels, factory: factory),
            bytesOut: Counter(label: Self.responseBytes, dimensions: [("route", route)], factory: factory))
    }

    /// STOW-RS outcomes: stored, duplicate, replaced or failed, with the failure's reason code
    /// (PS3.18 Annex I, Failure Reason (0008,1197): 0xA700 out of resources, 0xC000 cannot understand, ...).
    func instances(_ outcomes: [IngestOutcome]) {
        for o in outcomes {
            let reason = o.status == .failed ? String(format: "0x%04X", o.reasonCode ?? FailureReason.processingFailure) : "none"
            Counter(label: "tessera_stow_instances_total", dimensions: [("outcome", o.status.rawValue), ("reason", reason)], factory: factory).increment()
        }
    }

    public func indexCall(_ operation: String, duration: Duration, failed: Bool) {
        Timer(label: "tessera_index_call_duration_seconds", dimensions: [("operation", operation), ("result", failed ? "error" : "ok")],
              factory: factory).recordNanoseconds(duration.nanoseconds)
    }

    public func blobCall(_ operation: String, duration: Duration, failed: Bool) {
        Timer(label: "tessera_blob_call_duration_seconds", dimensions: [("operation", operation), ("result", failed ? "error" : "ok")],
              factory: factory).recordNanoseconds(duration.nanoseconds)
    }

    public func groupCommitted(batch: Int, duration: Duration) {
        Recorder(label: "tessera_group_commit_batch_size", factory: factory).record(batch)
        Timer(label: "tessera_group_commit_duration_seconds", factory: factory).recordNanoseconds(duration.nanoseconds)
    }

    /// Levels read when scraped, not on every change: the work pool's and the audit buffer's.
    func sample(pool: WorkPool, store: Datastore) {
        let admitted = pool.inUse
        Gauge(label: "tessera_work_pool_admitted", factory: factory).record(admitted)
        // Admitted beyond the running slots wait for one: the queue that 503s when full.
        Gauge(label: "tessera_work_pool_queued", factory: factory).record(max(0, admitted - pool.concurrency))
        Gauge(label: "tessera_work_pool_capacity", factory: factory).record(pool.concurrency + pool.queue)
        Gauge(label: "tessera_audit_buffer_depth", factory: factory).record(store.auditBufferDepth)
        let dropped = store.auditRecordsDropped
        let delta = droppedSeen.withLockedValue { seen -> Int in
            defer { seen = max(seen, dropped) }
            return max(0, dropped - seen)
        }
        Counter(label: "tessera_audit_records_dropped_total", factory: factory).increment(by: delta)
    }

    /// The text exposition format (Prometheus 0.0.4).
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"
}

extension Duration {
    var nanoseconds: Int64 { components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000 }
}

extension DICOMwebService {
    var metrics: ServerMetrics? { configuration.metrics }

    /// `GET /metrics`: admin-only like any route in RoutePolicy, unless a scraper shows the metrics
    /// token (MetricsScrapeMiddleware). 404 when the server was built without metrics.
    func addMetricsRoute(to router: Router<TesseraRequestContext>) {
        router.get("/metrics") { _, _ in try self.metricsResponse() }
    }

    func metricsResponse() throws -> Response {
        guard let metrics else { throw DICOMwebError(.notFound, "metrics are off") }
        metrics.sample(pool: pool, store: store)
        return Response(status: .ok, headers: [.contentType: ServerMetrics.contentType],
                        body: .init(byteBuffer: ByteBuffer(bytes: metrics.registry.emitToBuffer())))
    }

    /// An index call the server makes, timed when metrics are on.
    func index<T>(_ operation: String, _ body: () throws -> T) rethrows -> T {
        guard let metrics else { return try body() }
        return try metrics.index(operation, body)
    }

    func blob<T>(_ operation: String, _ body: () throws -> T) rethrows -> T {
        guard let metrics else { return try body() }
        return try metrics.blob(operation, body)
    }

    // For the store's protocols once their requirements are async (the lead's change on main).
    func index<T>(_ operation: String, _ body: () async throws -> T) async rethrows -> T {
        guard let metrics else { return try await body() }
        return try await metrics.index(operation, body)
    }

    func blob<T>(_ operation: String, _ body: () async throws -> T) async rethrows -> T {
        guard let metrics else { return try await body() }
        return try await metrics.blob(operation, body)
    }
}

/// Lets a Prometheus scraper read `/metrics` with `Authorization: Bearer TOKEN` (the
/// `--metrics-token-file` secret) instead of an admin's credentials: a token that opens nothing
/// else, so a leaked scrape configuration exposes counters, not images. Placed before
/// authentication; any other request, or a wrong token, goes on to it (and gets 401 or 403).
struct MetricsScrapeMiddleware: RouterMiddleware {
    let service: DICOMwebService
    let token: SHA256Digest

    init(service: DICOMwebService, token: String) {
        self.service = service
        self.token = SHA256.hash(data: Array(token.utf8))
    }

    func handle(_ request: Request, context: TesseraRequestContext,
                next: (Request, TesseraRequestContext) async throws -> Response) async throws -> Response {
        guard context.endpointPath == "/metrics", request.method == .get || request.method == .head,
              let authorization = request.headers[.authorization], authorization.hasPrefix("Bearer ") else {
            return try await next(request, context)
        }
        // Digests compared, not the strings: equal-length and no early exit on the first differing byte.
        guard SHA256.hash(data: Array(authorization.utf8.dropFirst(7))) == token else { return try await next(request, context) }
        return try service.metricsResponse()
    }
}
