import AccessControl
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
    private var _subjects = AuditSubjects()
    private var _auditWritten = false

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
    /// The patient data the handler touched, for the request's audit record (AuditMiddleware).
    public var subjects: AuditSubjects { lock.withLock { _subjects } }

    public func touched(study: String? = nil, series: String? = nil, instance: String? = nil, patient: String? = nil) {
        lock.withLock { _subjects.add(study: study, series: series, instance: instance, patient: patient) }
    }

    public func touched(_ instances: [InstanceRecord]) {
        lock.withLock {
            for i in instances {
                _subjects.add(study: i.studyInstanceUID, series: i.seriesInstanceUID, instance: i.sopInstanceUID, patient: i.attributes.patientID)
            }
        }
    }

    /// Set when a change's audit record was written in its own transaction (STOW-RS, DELETE,
    /// prune): the audit middleware then writes none for the request.
    public var auditWritten: Bool {
        get { lock.withLock { _auditWritten } }
        set { lock.withLock { _auditWritten = newValue } }
    }

    /// Client address and request id, set by the audit middleware, for records written deeper down.
    public internal(set) var clientAddress: String?
    public internal(set) var requestID: String?

    /// Who this request's changes are recorded under: the authenticated principal, or, when
    /// authentication is off (nothing set one), the anonymous development user.
    public var auditContext: AuditContext {
        AuditContext(principal: principal ?? RequestAuthenticator.anonymous,
                     clientAddress: clientAddress, requestID: requestID)
    }

    /// The notes of the request being handled. Handlers registered per level (`onEachLevel`) get no
    /// context; this lets them note what they touched without new parameters on every route.
    @TaskLocal public static var current: RequestNotes?
}
