import Foundation
import ImageSetStore
import NIOConcurrencyHelpers

/// What the layers of one request learn about it, for the request log and the audit trail.
/// The request context is a value that each middleware copies on its way in, so what an inner
/// layer learns (authentication: who; a handler: which patient data it touched) would never reach
/// the outer middlewares that log and audit after the response. They share this one object instead.
public final class RequestNotes: @unchecked Sendable {
    private let lock = NIOLock()
    private var _principal: Principal?
    private var _authenticationFailure: String?

    public init() {}

    /// Set by authentication; nil until it has run (and for /health, /ready).
    public var principal: Principal? {
        get { lock.withLock { _principal } }
        set { lock.withLock { _principal = newValue } }
    }

    /// Set by authentication when it refuses the request (401/403): a short reason such as
    /// `expired`, `wrong-issuer`, `unknown-or-revoked-key`, `no-credentials`, `role` (AuthenticationFailure.reason).
    public var authenticationFailure: String? {
        get { lock.withLock { _authenticationFailure } }
        set { lock.withLock { _authenticationFailure = newValue } }
    }
}
