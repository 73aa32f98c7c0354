import HummingbirdCore
import HummingbirdHTTP2
import Logging
import NIOCore
import NIOSSL
import NIOTLS

/// Which HTTP versions the port speaks (Docs/deployment.md, "HTTP/2"):
/// - TLS: HTTP/2 and HTTP/1.1 offered by ALPN (RFC 9113 §3.2, RFC 7301); a client that offers
///   neither gets HTTP/1.1, as before.
/// - cleartext with `http2Cleartext`: h2c with prior knowledge (RFC 9113 §3.3) for a proxy that
///   speaks it, and HTTP/1.1 on the same port, told apart by the connection's first bytes (the
///   HTTP/2 preface starts with `PRI`, a method RFC 9113 §3.4 reserves so that no HTTP/1.1 request
///   starts like it).
/// - cleartext otherwise: HTTP/1.1 only.
///
/// Every HTTP/2 stream is a request through the same router as an HTTP/1.1 one (authentication,
/// audit, CORS, size caps are middlewares), with the same per-request deadlines
/// (`ConnectionTimeoutsHandler` in each stream's pipeline: a stalled body resets its stream, not
/// the connection). A connection carries at most `maximumConcurrentStreams` requests at once
/// (swift-nio-http2's SETTINGS_MAX_CONCURRENT_STREAMS, which HummingbirdHTTP2 advertises) and counts
/// once against `maximumConnections`; it is closed after `idleTimeout` without an open stream.
extension DICOMwebConfiguration {
    /// The streams an HTTP/2 connection may have open at once; more are refused by the protocol
    /// (RST_STREAM REFUSED_STREAM) and clients queue them.
    public static let maximumConcurrentStreams = 100

    /// `fastPath`: in each HTTP/1.1 connection's pipeline (HTTP/2 streams go through the router).
    func serverBuilder(http1: HTTP1Channel.Configuration, streams: HTTP1Channel.Configuration,
                       fastPath: StoredFrameFastPath? = nil) -> HTTPServerBuilder {
        let http2 = HTTP2ChannelConfiguration(idleTimeout: .seconds(limits.idleTimeout), streamConfiguration: streams)
        let negotiation: NegotiatedHTTPChannel.Negotiation
        let deadline: Double
        if let tls {
            // The handshake is a connection's "headers": it must be over within the header deadline.
            (negotiation, deadline) = (.alpn(tls.alpnContext), limits.headerTimeout)
        } else if http2Cleartext {
            // Until the first bytes say which protocol, the connection is idle.
            (negotiation, deadline) = (.priorKnowledge, limits.idleTimeout)
        } else {
            return HTTPServerBuilder { responder in
                FastPathHTTP1Channel(http1: HTTP1Channel(responder: responder, configuration: http1), fastPath: fastPath, sendfile: true)
            }
        }
        return HTTPServerBuilder { [tls] responder in
            NegotiatedHTTPChannel(negotiation: negotiation, deadline: .duration(deadline),
                                  backstop: .duration(limits.idleTimeout + limits.headerTimeout),
                                  http1: FastPathHTTP1Channel(http1: HTTP1Channel(responder: responder, configuration: http1),
                                                              fastPath: fastPath, sendfile: tls == nil),
                                  http2: HTTP2Channel(responder: responder, configuration: http2))
        }
    }
}

/// A connection that becomes HTTP/1.1 or HTTP/2 once `ProtocolNegotiator` has decided, then is
/// Hummingbird's own HTTP1Channel or HTTP2Channel. (HummingbirdHTTP2's HTTP2UpgradeChannel does
/// the ALPN half of this; it is not used because it builds its TLS handler itself, leaving no
/// place for the handshake deadline, and has no prior-knowledge half.)
struct NegotiatedHTTPChannel: ServerChildChannel {
    enum Negotiation: Sendable {
        case alpn(NIOSSLContext)
        case priorKnowledge
    }

    enum Chosen: Sendable {
        case http1(HTTP1Channel.Value)
        case http2(HTTP2Channel.Value)
    }

    struct Value: ServerChildChannelValue {
        let chosen: EventLoopFuture<Chosen>
        let channel: any Channel
    }

    let negotiation: Negotiation
    let deadline: TimeAmount
    /// An HTTP/2 connection with no stream open this long is closed (IdleStreamsBackstop).
    let backstop: TimeAmount
    let http1: FastPathHTTP1Channel
    let http2: HTTP2Channel

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            LargeReadsHandler.enlargeReads(of: channel)
            let promise = channel.eventLoop.makePromise(of: Chosen.self)
            let alpn: Bool
            switch negotiation {
            case .alpn(let context):
                try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                alpn = true
            case .priorKnowledge:
                alpn = false
            }
            let negotiator = ProtocolNegotiator(alpn: alpn, deadline: deadline, chosen: promise) { [http1, http2, backstop] isHTTP2 in
                guard isHTTP2 else { return http1.setup(channel: channel, logger: logger).map { .http1($0) } }
                return http2.setup(channel: channel, logger: logger).flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(IdleStreamsBackstop(after: backstop))
                    return .http2($0)
                }
            }
            try channel.pipeline.syncOperations.addHandler(negotiator)
            return Value(chosen: promise.futureResult, channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.chosen.get() {
            case .http1(let connection): await http1.handle(value: connection, logger: logger)
            case .http2(let connection): await http2.handle(value: connection, logger: logger)
            }
        } catch {
            logger.debug("connection closed before its HTTP version was known", metadata: ["error": "\(error)"])
        }
    }
}

/// Decides a new connection's HTTP version — from ALPN's result when the TLS handshake completes,
/// or from the first bytes (the HTTP/2 preface or not) in cleartext — has the pipeline configured
/// for it, hands on what it held back and leaves. A connection still undecided at `deadline`
/// (a handshake or a preface that never ends) is closed.
final class ProtocolNegotiator: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// RFC 9113 §3.4.
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    private let alpn: Bool
    private let deadline: TimeAmount
    private let chosen: EventLoopPromise<NegotiatedHTTPChannel.Chosen>
    private let configure: (Bool) -> EventLoopFuture<NegotiatedHTTPChannel.Chosen>
    private var held: [NIOAny] = []
    private var seen: [UInt8] = []
    private var decided = false
    private var fulfilled = false
    private var timer: Scheduled<Void>?

    init(alpn: Bool, deadline: TimeAmount, chosen: EventLoopPromise<NegotiatedHTTPChannel.Chosen>,
         configure: @escaping (Bool) -> EventLoopFuture<NegotiatedHTTPChannel.Chosen>) {
        self.alpn = alpn
        self.deadline = deadline
        self.chosen = chosen
        self.configure = configure
    }

    func handlerAdded(context: ChannelHandlerContext) {
        timer = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: deadline) {
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        // Closed before a decision: `handle` learns it (a promise must never be left unfulfilled).
        if !fulfilled { fulfil(.failure(ChannelError.ioOnClosedChannel)) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        held.append(data)
        guard !alpn, !decided else { return }
        let bytes = unwrapInboundIn(data)
        seen += bytes.readableBytesView.prefix(Self.preface.count - seen.count)
        if !Self.preface.starts(with: seen) {
            decide(http2: false, context: context)
        } else if seen.count == Self.preface.count {
            decide(http2: true, context: context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if alpn, !decided, case TLSUserEvent.handshakeCompleted(let negotiated)? = event as? TLSUserEvent {
            // "http/1.1", or nothing from a client without ALPN: HTTP/1.1.
            decide(http2: negotiated == "h2", context: context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func decide(http2: Bool, context: ChannelHandlerContext) {
        decided = true
        timer?.cancel()
        timer = nil
        configure(http2).assumeIsolated().whenComplete { result in
            switch result {
            case .success(let chosen):
                self.fulfil(.success(chosen))
                let pipeline = context.pipeline.syncOperations
                let held = self.held
                self.held = []
                if self.alpn {
                    // Behind the TLS handler: the plaintext goes on from here.
                    for data in held { context.fireChannelRead(data) }
                    context.fireChannelReadComplete()
                    pipeline.removeHandler(context: context, promise: nil)
                } else {
                    // From the front, so that the HTTP/1.1 deadlines' first-byte observer sees the request start.
                    pipeline.removeHandler(context: context, promise: nil)
                    for data in held { pipeline.fireChannelRead(data) }
                    pipeline.fireChannelReadComplete()
                }
            case .failure(let error):
                self.fulfil(.failure(error))
                context.close(promise: nil)
            }
        }
    }

    private func fulfil(_ result: Result<NegotiatedHTTPChannel.Chosen, any Error>) {
        fulfilled = true
        chosen.completeWith(result)
    }
}

@available(*, unavailable)
extension ProtocolNegotiator: Sendable {}

/// HummingbirdHTTP2 ends an idle HTTP/2 connection (no stream open for the idle timeout) with
/// GOAWAY and a PING, and closes it only when the PING's ACK comes back: a client that never
/// answers would hold the connection for ever. This closes it anyway once no stream has been
/// open for the idle timeout plus the header timeout. Streams report in through their
/// `ConnectionTimeoutsHandler` (the stream channel's parent is the connection).
final class IdleStreamsBackstop: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    private let delay: TimeAmount
    private var open = 0
    private var timer: Scheduled<Void>?
    private var context: ChannelHandlerContext?

    init(after delay: TimeAmount) { self.delay = delay }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        arm()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        self.context = nil
    }

    func streamOpened() {
        open += 1
        timer?.cancel()
        timer = nil
    }

    func streamClosed() {
        open = max(open - 1, 0)
        if open == 0 { arm() }
    }

    private func arm() {
        timer?.cancel()
        guard let context else { return }
        timer = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: delay) { [weak self] in
            self?.context?.close(promise: nil)
        }
    }

    /// The backstop of the HTTP/2 connection `stream` belongs to, if it is an HTTP/2 stream.
    static func of(_ stream: any Channel) -> IdleStreamsBackstop? {
        // A stream's parent is a connection, itself a child of the listening socket; an HTTP/1.1
        // connection's parent is the listening socket (no parent), whose pipeline, maybe on
        // another event loop, is not looked at. A stream shares its connection's event loop.
        guard let parent = stream.parent, parent.parent != nil, parent.eventLoop.inEventLoop else { return nil }
        return try? parent.pipeline.syncOperations.handler(type: IdleStreamsBackstop.self)
    }
}

@available(*, unavailable)
extension IdleStreamsBackstop: Sendable {}
