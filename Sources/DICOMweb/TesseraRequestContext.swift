import Hummingbird
import HummingbirdAuth
import ImageSetStore
import NIOCore

/// The request context of every Tessera route. Beyond Hummingbird's core storage it carries the
/// peer's socket address, which decides whether forwarding headers are trusted (`trustedProxies`).
/// Conforming to `RemoteAddressRequestContext` also lets Hummingbird's tracing record the peer.
public struct TesseraRequestContext: RequestContext, RemoteAddressRequestContext, AuthRequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The connected peer; nil when there is none (in-process router tests), which counts as untrusted.
    public let remoteAddress: SocketAddress?
    /// The address the peer connected to (this server's); links name it when nothing better is known.
    public let localAddress: SocketAddress?
    /// Who the request comes from, once authentication has run (AuthenticationMiddleware; the
    /// anonymous admin when authentication is off); nil before it and on /health, /ready.
    public var identity: Principal?
    /// Shared by every layer of this request (see RequestNotes): what they learned, for the log and the audit trail.
    public let notes = RequestNotes()

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
        localAddress = source.channel.localAddress
    }
}
