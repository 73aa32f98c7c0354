import DICOMCore
import Foundation
import HTTPTypes
import Hummingbird
import ImageSetStore
import NIOCore

/// One audit record per request to patient data (Docs/security.md, "Audit trail"): who (the
/// principal authentication left in the notes; none ⇒ unauthenticated), from where, what, which
/// patients, studies, series and instances the handler noted, and the status. It sits right inside
/// the request log, outside authentication, so refused requests (401, 403) are recorded too.
/// Changes record themselves in their own transaction (`RequestNotes.auditWritten`); reads go to
/// the store's bounded buffer and never wait for the disk. /health and /ready are not audited.
struct AuditMiddleware: RouterMiddleware {
    let store: Datastore
    let trusted: [CIDR]

    func handle(_ request: Request, context: TesseraRequestContext,
                next: (Request, TesseraRequestContext) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        if path == "/health" || path == "/ready" { return try await next(request, context) }
        let notes = context.notes
        // The request log outside has worked it out already, unless this runs without it.
        if notes.clientAddress == nil { notes.clientAddress = Self.clientAddress(request, context: context, trusted: trusted) }
        notes.requestID = context.id
        let status: Int
        do {
            let response = try await RequestNotes.$current.withValue(notes) { try await next(request, context) }
            status = Int(response.status.code)
            record(request, notes: notes, status: status)
            return response
        } catch {
            status = Int((error as? any HTTPResponseError)?.status.code ?? 500)
            record(request, notes: notes, status: status)
            throw error
        }
    }

    func record(_ request: Request, notes: RequestNotes, status: Int) {
        guard !notes.auditWritten else { return }
        // Authentication sets a principal on every request it lets through (the anonymous admin when
        // it is off); none means it refused the request or never saw it: unauthenticated.
        let principal = notes.principal
        let action: AuditAction
        if status == 401 && notes.principal == nil {
            action = .authenticationFailed
        } else if let a = Self.action(request.method, path: request.uri.path) {
            action = a
        } else {
            return  // not a route to patient data (an unknown path, a CORS preflight)
        }
        store.audit(AuditEvent(action: action, principal: principal, clientAddress: notes.clientAddress, requestID: notes.requestID,
                               subjects: notes.subjects, success: status < 400, status: status, detail: notes.authenticationFailure))
    }

    /// What a route does, from its method and path; nil for what holds no patient data.
    static func action(_ method: HTTPRequest.Method, path: String) -> AuditAction? {
        guard method != .options else { return nil }
        let c = path.split(separator: "/").map(String.init)
        guard let root = c.first else { return nil }
        let last = c.last ?? ""
        switch root {
        case "dicomweb":
            guard c.count >= 2, ["studies", "series", "instances"].contains(c[1]) else { return nil }
            if method == .post { return .store }
            if method == .delete { return .delete }
            if c.contains("bulkdata") { return .bulkdata }
            switch last {
            case "metadata": return .metadata
            case "rendered": return .rendered
            case "thumbnail": return .thumbnail
            case "studies", "series", "instances": return .search
            default: return c.count >= 2 && c[c.count - 2] == "frames" ? .frames : .retrieve
            }
        case "imagesets":
            if method == .delete { return .prune }
            return c.count >= 3 && c[2] == "frames" ? .frames : .imageSetRead
        case "audit":
            return .auditRead
        case "changefeed":
            return .changeFeedRead
        case "subscriptions":
            return method == .get || method == .head ? .subscriptionRead : .subscriptionChange
        default:
            return nil
        }
    }

    /// The client a request came from: the connected peer, or, when the peer is a trusted proxy
    /// (the same test as TrustedForwardingMiddleware's), the client it forwarded for: the
    /// `Forwarded` element facing the client, else the nearest untrusted `X-Forwarded-For` address.
    static func clientAddress(_ request: Request, context: TesseraRequestContext, trusted: [CIDR]) -> String? {
        clientAddress(peer: context.remoteAddress, headers: request.headers, trusted: trusted)
    }

    /// `headers` are read only when the peer is a trusted proxy.
    static func clientAddress(peer address: SocketAddress?, headers readHeaders: @autoclosure () -> HTTPFields, trusted: [CIDR]) -> String? {
        guard let peer = address?.ipAddress else { return nil }
        guard CIDR.contains(trusted, address: peer) else { return peer }
        let headers = readHeaders()
        let forwarded = headers[values: .forwarded]
        if !forwarded.isEmpty {
            let element = ForwardedElement.clientFacing(ForwardedElement.parse(forwarded.joined(separator: ",")), trusted: trusted)
            return element?["for"].map(ForwardedElement.nodeAddress) ?? peer
        }
        let chain = headers[values: .xForwardedFor].joined(separator: ",")
            .split(separator: ",").map { $0.trimmingCharacters(in: " \t") }.filter { !$0.isEmpty }
        // Proxies append: from the right, past the trusted ones, the first address is the client's.
        return chain.last { !CIDR.contains(trusted, address: $0) } ?? chain.first ?? peer
    }
}

extension DICOMwebService {
    /// STOW-RS through the group commit with this request's audit record in the same transaction.
    func storeAudited(_ candidates: [Datastore.Candidate], rejected: Int, context: TesseraRequestContext) async -> [IngestOutcome] {
        context.notes.auditWritten = true
        return await store.storeGrouped(candidates, reason: "STOW-RS", audit: context.notes.auditContext, alsoFailed: rejected)
    }

    /// DELETE with its audit record in the same transaction; when it throws, nothing changed and the
    /// audit middleware records the failure.
    func removeAudited(study: String, series: String?, sop: String?, scope: ImageSetScope) async throws -> Int {
        guard let notes = RequestNotes.current else { return try await store.remove(study: study, series: series, sop: sop, scope: scope) }
        let removed = try await store.remove(study: study, series: series, sop: sop, scope: scope, reason: "DELETE", audit: notes.auditContext)
        notes.auditWritten = true
        return removed
    }

    /// Pruning with its audit record in the same transaction.
    func pruneAudited(imageSetID: String, keep: Int, context: TesseraRequestContext) async throws -> Datastore.PruneReport {
        let report = try await store.prune(imageSetID: imageSetID, keep: keep, audit: context.notes.auditContext)
        context.notes.auditWritten = true
        return report
    }
}

extension RequestNotes {
    /// QIDO-RS results: their UIDs, and the Patient ID where the level returns it.
    func touched(_ rows: [SearchRow]) {
        for r in rows { touched(study: r.studyInstanceUID, series: r.seriesInstanceUID, instance: r.sopInstanceUID, patient: r.values[Tag(0x0010_0020)]) }
    }

    func touched(_ sets: [ImageSetSummary]) {
        for s in sets { touched(study: s.studyInstanceUID, patient: s.attributes.patientID) }
    }
}
