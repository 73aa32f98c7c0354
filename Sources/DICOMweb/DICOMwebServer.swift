import AccessControl
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import ImageSetStore
import Logging
import NIOCore

public struct DICOMwebConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// Largest STOW-RS request body; larger ones get 413.
    public var maximumRequestSize = 8 << 30
    /// Peers whose `Forwarded` / `X-Forwarded-*` headers are believed when building URLs; from any
    /// other peer they are dropped. Default: a proxy on this machine.
    public var trustedProxies: [CIDR] = CIDR.loopback
    /// API keys' cache lifetime and the OIDC provider (Docs/security.md).
    public var authentication = AuthenticationConfiguration()
    /// Whether requests need credentials (set from the API keys / OIDC issuer configured); decides the CORS default.
    public var authenticationEnabled = false
    /// Origins whose browser pages may read responses (`*`: any); nil for the default (`defaultCORSOrigins`).
    public var corsOrigins: [String]?
    /// The URL clients reach the service at; when set, every link in a response starts with it.
    public var publicURL: PublicURL?
    /// The certificate and key served over TLS (reloadable); nil for plain HTTP.
    public var tls: TLSCertificates?
    /// Without TLS, also speak h2c with prior knowledge (for a proxy on a trusted network) beside
    /// HTTP/1.1; with TLS, HTTP/2 is offered by ALPN whatever this says.
    public var http2Cleartext = false
    /// Connection and work limits (Docs/security.md, "Limits"); timeouts in seconds.
    public var limits = Limits()
    /// The Prometheus metrics this application records and `GET /metrics` shows; nil records
    /// nothing (and /metrics answers 404). Each configuration has its own registry by default.
    public var metrics: ServerMetrics? = ServerMetrics()
    /// A bearer token that reads /metrics without an admin's credentials (MetricsScrapeMiddleware).
    public var metricsToken: String?
    /// Answer a viewer's single stored frame below Hummingbird when every check can be made from
    /// memory (StoredFrameFastPath; Docs/architecture.md). Off: every request goes through the router.
    public var framesFastPath = true
    /// Seconds between the comments a change-feed stream sends while nothing happens (proxies close idle connections).
    public var changeFeedHeartbeat = 15.0
    public init() {}

    public struct Limits: Sendable {
        /// An open connection with no request under way is closed after this (keep-alive).
        public var idleTimeout = 60.0
        /// A request's headers must arrive whole within this of its first byte.
        public var headerTimeout = 10.0
        /// A request body that sends nothing for this long is closed, its staged files removed.
        public var bodyTimeout = 30.0
        /// Connections served at once; beyond it new ones wait in the listen backlog.
        public var maximumConnections = 4096
        /// Decoding, transcoding and rendering at once (default: the cores)…
        public var workConcurrency = ProcessInfo.processInfo.activeProcessorCount
        /// …and requests admitted to wait for it; beyond both, 503 with Retry-After.
        public var workQueue = 2 * ProcessInfo.processInfo.activeProcessorCount
        public init() {}
    }
}

/// Everything a request handler needs: the store, the configuration and the work pool.
struct DICOMwebService: Sendable {
    let store: Datastore
    let configuration: DICOMwebConfiguration
    let pool: WorkPool
    /// Frame requests' Accept answers (Routes+FrameLocation.swift).
    let frameNegotiation = FrameNegotiationCache()
}

/// The HTTP application: DICOMweb under /dicomweb, the image-set API under /imagesets, /health.
public func buildApplication(store: Datastore, configuration: DICOMwebConfiguration, logger: Logger,
                             authenticator: RequestAuthenticator? = nil) -> some ApplicationProtocol {
    // One authenticator for the router and the fast path: they share its key copy and verified tokens.
    let authenticator = authenticator ?? RequestAuthenticator(keys: store.accessKeys, configuration: configuration.authentication)
    let router = buildRouter(store: store, configuration: configuration, authenticator: authenticator)
    let fastPath = configuration.framesFastPath
        ? StoredFrameFastPath(store: store, configuration: configuration, authenticator: authenticator, logger: logger) : nil
    let l = configuration.limits
    let timeouts = ConnectionTimeoutsHandler.Timeouts(idle: .duration(l.idleTimeout), header: .duration(l.headerTimeout), body: .duration(l.bodyTimeout))
    let http1 = HTTP1Channel.Configuration(additionalChannelHandlers: [LargeReadsHandler(), ConnectionTimeoutsHandler(timeouts)])
    // An HTTP/2 stream is one request: the same deadlines, per stream (DICOMwebServer+HTTP2.swift).
    let streams = HTTP1Channel.Configuration(additionalChannelHandlers: [ConnectionTimeoutsHandler(timeouts)])
    return Application(
        router: router,
        server: configuration.serverBuilder(http1: http1, streams: streams, fastPath: fastPath),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "Tessera",
                             backlog: 1024, availableConnectionsDelegate: MaximumAvailableConnections(l.maximumConnections, logger: logger)),
        logger: logger
    )
}

extension TimeAmount {
    static func duration(_ seconds: Double) -> TimeAmount { .nanoseconds(Int64(seconds * 1e9)) }
}

/// Lets a connection read up to 256 KiB per `read(2)` (NIO's default stops at 64 KiB). A STOW-RS
/// body then reaches the multipart reader and the blob writer in a few large buffers instead of
/// many small ones, each of which costs a trip through the channel pipeline and the request body's
/// async sequence. The allocator still starts small and only grows for connections that fill it.
/// Not more: the pipeline buffers up to 14 body parts per connection when the disk is slower than
/// the network, so 256 KiB bounds that at 3.5 MiB per connection (1 MiB reads saved only 3% more CPU).
final class LargeReadsHandler: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = NIOAny

    func handlerAdded(context: ChannelHandlerContext) { Self.enlargeReads(of: context.channel) }

    /// Also for a connection that may become HTTP/2 (its streams' pipelines read no sockets).
    static func enlargeReads(of channel: any Channel) {
        try? channel.syncOptions?.setOption(
            ChannelOptions.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 2048, maximum: 256 << 10))
    }
}

/// `authenticator`: nil makes one from `configuration.authentication` (`tessera serve` passes the
/// one it checked at start-up).
public func buildRouter(store: Datastore, configuration: DICOMwebConfiguration,
                        authenticator: RequestAuthenticator? = nil) -> Router<TesseraRequestContext> {
    let pool = WorkPool(concurrency: configuration.limits.workConcurrency, queue: configuration.limits.workQueue)
    let service = DICOMwebService(store: store, configuration: configuration, pool: pool)
    // HEAD answers like GET without the body wherever GET does (RFC 9110 §9.3.2).
    let router = Router(context: TesseraRequestContext.self, options: .autoGenerateHeadEndpoints)
    let routes = RouteTable()
    router.middlewares.add(RequestLogMiddleware(trusted: configuration.trustedProxies, metrics: configuration.metrics))
    store.report(to: configuration.metrics)
    // Right inside the log, so it records requests that authentication refuses (AuditMiddleware.swift).
    router.middlewares.add(AuditMiddleware(store: store, trusted: configuration.trustedProxies))
    router.middlewares.add(TrustedForwardingMiddleware(trusted: configuration.trustedProxies))
    // Browser viewers: every response, errors included, carries the CORS headers for allowed origins.
    // Before authentication: a preflight never carries credentials (Fetch §3.2.2).
    router.middlewares.add(AllowedOriginsMiddleware(origins: configuration.effectiveCORSOrigins))
    router.middlewares.add(ErrorBodyMiddleware(routes: routes))
    if let token = configuration.metricsToken { router.middlewares.add(MetricsScrapeMiddleware(service: service, token: token)) }
    // Inside the request log and the audit trail, so that they see its 401s and 403s.
    router.middlewares.add(AuthenticationMiddleware(
        authenticator: authenticator ?? RequestAuthenticator(keys: store.accessKeys, configuration: configuration.authentication),
        keys: store.accessKeys))
    // After authentication: a client without credentials learns nothing but 401, and a 413 or 415 is on record with who sent it.
    router.middlewares.add(RequestLimitsMiddleware(maximumRequestSize: configuration.maximumRequestSize))
    service.addHealthRoutes(to: router)
    service.addMetricsRoute(to: router)
    let web = router.group("dicomweb")
    service.addSTOWRoutes(to: web)
    service.addQIDORoutes(to: web)
    service.addWADORoutes(to: web)
    service.addRenderedRoutes(to: web)
    service.addImageSetRoutes(to: router.group("imagesets"))
    service.addAuditRoutes(to: router)
    service.addChangeFeedRoutes(to: router)
    service.addSubscriptionRoutes(to: router.group("subscriptions"))
    routes.record(router, headForGet: true)
    return router
}

/// Errors as DICOMweb clients expect them: a status and a short JSON body saying what was wrong.
struct DICOMwebError: Error, HTTPResponseError {
    let status: HTTPResponse.Status
    let message: String
    /// Sent with the error, e.g. `Allow` with a 405.
    var headers: HTTPFields = [:]
    init(_ status: HTTPResponse.Status, _ message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.message = message
        self.headers = headers
    }
    func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = self.headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: body))
    }
    /// `{"error": message}`, escaped by the JSON writer (messages quote client input).
    var body: ByteBuffer { JSONOutput.serialize(["error": message]) }
}
