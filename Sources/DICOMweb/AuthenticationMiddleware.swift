import AccessControl
import HTTPTypes
import Hummingbird
import HummingbirdAuth
import ImageSetStore

/// Authentication and the route policy, for every route (Docs/security.md). The router has
/// resolved the route before middleware runs, so `context.endpointPath` is the route's pattern,
/// which is looked up in `RoutePolicy` (the one table). Routes open to everyone pass with no
/// identity; any other request gets its principal (the anonymous admin when authentication is
/// off) in both `context.identity` and `context.notes.principal`, then the role check. Refusals
/// are DICOMwebErrors, 401 or 403 with `WWW-Authenticate` (RFC 6750 §3), and leave their reason in
/// `context.notes.authenticationFailure` for the request log and the audit trail outside.
struct AuthenticationMiddleware: AuthenticatorMiddleware {
    typealias Context = TesseraRequestContext
    typealias Identity = Principal
    let authenticator: RequestAuthenticator
    let keys: any AccessKeyIndex

    func authenticate(request: Request, context: TesseraRequestContext) async throws -> Principal? {
        do {
            return try await authenticator.authenticate(authorization: request.headers[.authorization])
        } catch {
            throw refusal(error, context)
        }
    }

    func handle(_ request: Request, context: TesseraRequestContext,
                next: (Request, TesseraRequestContext) async throws -> Response) async throws -> Response {
        let route = context.endpointPath
        let access = route.flatMap { RoutePolicy.access(method: request.method.rawValue, path: $0) }
        if access == .everyone { return try await next(request, context) }
        guard let principal = try await authenticate(request: request, context: context) else {
            return try await next(request, context)
        }
        var context = context
        context.identity = principal
        context.notes.principal = principal
        if let route {
            // A registered route the table lacks is refused to everyone: a new route is closed until listed.
            guard let access else {
                throw refusal(AuthenticationFailure(.insufficientScope, reason: "route-not-in-policy",
                                                    "\(request.method.rawValue) \(route) is not in the access policy"), context)
            }
            let sop = context.parameters.get("sop")
            let allowed = await RoutePolicy.allows(access, principal) { [keys] in
                guard let sop else { return false }
                return try await keys.hasStored(principal, sopInstanceUID: sop)
            }
            guard allowed else {
                let roles = principal.roles.map(\.rawValue).sorted().joined(separator: ", ")
                throw refusal(AuthenticationFailure(.insufficientScope, reason: "role",
                                                    "\(request.method.rawValue) \(route) needs \(RoutePolicy.describe(access)); this principal has \(roles.isEmpty ? "no role" : roles)"),
                              context)
            }
        }
        // No route (404) or a method the route lacks (405): the router answers, to authenticated requests only.
        return try await next(request, context)
    }

    func refusal(_ error: AuthenticationFailure, _ context: TesseraRequestContext) -> DICOMwebError {
        context.notes.authenticationFailure = error.reason
        return DICOMwebError(error.status == 403 ? .forbidden : .unauthorized, error.description,
                             headers: [.wwwAuthenticate: error.challenge])
    }
}
