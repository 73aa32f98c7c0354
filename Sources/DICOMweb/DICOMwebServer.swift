import Foundation
import HTTPTypes
import Hummingbird
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
    public init() {}
}

/// Everything a request handler needs: the store and the configuration.
struct DICOMwebService: Sendable {
    let store: Datastore
    let configuration: DICOMwebConfiguration
}

/// The HTTP application: DICOMweb under /dicomweb, the image-set API under /imagesets, /health.
public func buildApplication(store: Datastore, configuration: DICOMwebConfiguration, logger: Logger) -> some ApplicationProtocol {
    let router = buildRouter(store: store, configuration: configuration)
    return Application(
        router: router,
        server: .http1(configuration: .init(additionalChannelHandlers: [LargeReadsHandler()])),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "Tessera"),
        logger: logger
    )
}

/// Lets a connection read up to 256 KiB per `read(2)` (NIO's default stops at 64 KiB). A STOW-RS
/// body then reaches the multipart reader and the blob writer in a few large buffers instead of
/// many small ones, each of which costs a trip through the channel pipeline and the request body's
/// async sequence. The allocator still starts small and only grows for connections that fill it.
/// Not more: the pipeline buffers up to 14 body parts per connection when the disk is slower than
/// the network, so 256 KiB bounds that at 3.5 MiB per connection (1 MiB reads saved only 3% more CPU).
final class LargeReadsHandler: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = NIOAny

    func handlerAdded(context: ChannelHandlerContext) {
        try? context.channel.syncOptions?.setOption(
            ChannelOptions.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 2048, maximum: 256 << 10))
    }
}

public func buildRouter(store: Datastore, configuration: DICOMwebConfiguration) -> Router<TesseraRequestContext> {
    let service = DICOMwebService(store: store, configuration: configuration)
    // HEAD answers like GET without the body wherever GET does (RFC 9110 §9.3.2).
    let router = Router(context: TesseraRequestContext.self, options: .autoGenerateHeadEndpoints)
    let routes = RouteTable()
    router.middlewares.add(RequestLogMiddleware(trusted: configuration.trustedProxies))
    // Right inside the log, so it records requests that authentication refuses (AuditMiddleware.swift).
    router.middlewares.add(AuditMiddleware(store: store, trusted: configuration.trustedProxies))
    router.middlewares.add(TrustedForwardingMiddleware(trusted: configuration.trustedProxies))
    // Browser viewers: every response, errors included, carries the CORS headers.
    router.middlewares.add(CORSMiddleware(allowOrigin: .all, allowHeaders: [.accept, .contentType, .authorization, .init("X-Requested-With")!],
                                          allowMethods: [.get, .post, .delete, .head, .options],
                                          exposedHeaders: ["Content-Type", "Content-Length", "Content-Location", "Warning", "Allow"]))
    router.middlewares.add(ErrorBodyMiddleware(routes: routes))
    router.get("/health") { _, _ in
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: "{\"status\":\"ok\"}")))
    }
    let web = router.group("dicomweb")
    service.addSTOWRoutes(to: web)
    service.addQIDORoutes(to: web)
    service.addWADORoutes(to: web)
    service.addRenderedRoutes(to: web)
    service.addImageSetRoutes(to: router.group("imagesets"))
    service.addAuditRoutes(to: router)
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
