import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

extension DICOMwebService {
    /// `/health` (liveness: 200 while the process answers, the body says whether it is degraded) and
    /// `/ready` (for load balancers: 200 when the store takes writes, 503 when its disk is full or its
    /// index or blob store does not answer).
    /// A full disk is not a reason to restart the process (reads, DELETE and prune still work), so
    /// /health stays 200; /ready sends writers elsewhere.
    func addHealthRoutes(to router: Router<TesseraRequestContext>) {
        router.get("/health") { _, _ in
            let full = self.store.disk?.refresh() == true
            return Self.json(.ok, full ? ["status": "degraded", "disk": "full"] : ["status": "ok"])
        }
        router.get("/ready") { _, context in
            if self.store.disk?.refresh() == true { return Self.json(.serviceUnavailable, ["status": "unavailable", "disk": "full"]) }
            // The index and the blob store answer (PostgreSQL and a bucket can be away while this process is fine).
            if let reason = await self.store.unreadyReason() {
                context.logger.warning("not ready", metadata: ["reason": "\(reason)"])
                return Self.json(.serviceUnavailable, ["status": "unavailable", "backend": "unreachable"])
            }
            return Self.json(.ok, ["status": "ready"])
        }
    }

    static func json(_ status: HTTPResponse.Status, _ object: [String: String]) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: JSONOutput.serialize(object)))
    }
}

/// What is refused from the request head alone, before any of the body is read: a declared
/// `Content-Length` above the request cap (413, RFC 9110 §15.5.14) and a `Content-Encoding` other
/// than identity (415, RFC 9110 §15.5.16: Tessera decodes no content coding, so a gzip or deflate
/// body would otherwise be parsed as DICOM and fail part by part). Chunked bodies without a length
/// are capped as they stream (STOW-RS counts their bytes).
struct RequestLimitsMiddleware<Context: RequestContext>: RouterMiddleware {
    let maximumRequestSize: Int

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let length = request.headers[.contentLength], let n = Int(length.trimmingCharacters(in: .whitespaces)), n > maximumRequestSize {
            throw DICOMwebError(.contentTooLarge, "the request body of \(n) bytes exceeds the \(maximumRequestSize)-byte limit")
        }
        if let coding = request.headers[.contentEncoding]?.trimmingCharacters(in: .whitespaces).lowercased(), !coding.isEmpty, coding != "identity" {
            throw DICOMwebError(.unsupportedMediaType, "Content-Encoding \(coding.prefix(40)) is not supported; send the body unencoded",
                                headers: [.acceptEncoding: "identity"])
        }
        return try await next(request, context)
    }
}
