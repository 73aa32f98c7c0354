import HTTPTypes
import Hummingbird
import Logging

/// The registered routes' paths and methods, for telling a known path asked with the wrong
/// method (405 with `Allow`) from an unknown path (404): Hummingbird's router answers both with
/// the same bare 404 and keeps its trie to itself, but lists its routes (`Router.routes`).
final class RouteTable: @unchecked Sendable {
    // Filled once by buildRouter after the last route is registered, before any request; only read after.
    private(set) var entries: [(path: RouterPath, methods: Set<HTTPRequest.Method>)] = []

    func record<Context>(_ router: Router<Context>, headForGet: Bool) {
        var byPath: [String: (path: RouterPath, methods: Set<HTTPRequest.Method>)] = [:]
        for r in router.routes { byPath[r.path.description, default: (r.path, [])].methods.insert(r.method) }
        entries = byPath.values.map { e in (e.path, headForGet && e.methods.contains(.get) ? e.methods.union([.head]) : e.methods) }
    }

    /// The methods of the route `path` resolves to, nil when none does. As in the router's trie, a
    /// literal segment wins over a capture, and a capture over `**` (one or more segments).
    func methods(for path: String) -> Set<HTTPRequest.Method>? {
        let segments = path.split(separator: "/")
        var best: (rank: [Int], methods: Set<HTTPRequest.Method>)?
        for (route, methods) in entries {
            guard let rank = Self.rank(route, segments) else { continue }
            if best.map({ rank.lexicographicallyPrecedes($0.rank) }) ?? true { best = (rank, methods) }
        }
        return best?.methods
    }

    static func rank(_ route: RouterPath, _ segments: [Substring]) -> [Int]? {
        var rank: [Int] = []
        for (k, element) in route.components.enumerated() {
            if element == .recursiveWildcard { return k < segments.count ? rank + [2] : nil }
            guard k < segments.count, element ~= segments[k] else { return nil }
            rank.append(element == segments[k] ? 0 : 1)
        }
        return route.components.count == segments.count ? rank : nil
    }

    /// `Allow` (RFC 9110 §10.2.1): the route's methods and OPTIONS, in a fixed order.
    static func allow(_ methods: Set<HTTPRequest.Method>) -> String {
        let order: [HTTPRequest.Method] = [.get, .head, .post, .put, .patch, .delete]
        let known = order.filter(methods.contains) + methods.subtracting(order + [.options]).sorted { $0.rawValue < $1.rawValue }
        return (known + [.options]).map(\.rawValue).joined(separator: ", ")
    }
}

/// Every error answers as `{"error": ...}` with Content-Type application/json (DICOMwebError),
/// including those Hummingbird raises itself: an unknown path is a 404, a known path with a method
/// it lacks a 405 with `Allow` (RFC 9110 §15.5.6), OPTIONS on a known path a 204 with `Allow`
/// (§9.3.7; a CORS preflight is answered earlier, by CORSMiddleware), anything else a 500.
struct ErrorBodyMiddleware: RouterMiddleware {
    let routes: RouteTable

    func handle(_ request: Request, context: TesseraRequestContext,
                next: (Request, TesseraRequestContext) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as DICOMwebError {
            throw error
        } catch let error as any HTTPResponseError {
            if error.status == .notFound, (error as? HTTPError)?.body == nil {
                // The router's own 404 (a handler's says what is missing): which path, which methods.
                guard let methods = routes.methods(for: request.uri.path) else {
                    throw DICOMwebError(.notFound, "no route \(request.method.rawValue) \(request.uri.path.prefix(200))")
                }
                if !methods.contains(request.method) {
                    let allow: HTTPFields = [Self.allow: RouteTable.allow(methods)]
                    if request.method == .options { return Response(status: .noContent, headers: allow) }
                    throw DICOMwebError(.methodNotAllowed, "\(request.method.rawValue) is not allowed on this route; it allows \(RouteTable.allow(methods))",
                                        headers: allow)
                }
            }
            var headers = try error.response(from: request, context: context).headers
            headers[.contentType] = nil
            headers[.contentLength] = nil
            throw DICOMwebError(error.status, (error as? HTTPError)?.body ?? error.status.reasonPhrase, headers: headers)
        } catch {
            context.logger.error("unexpected error", metadata: ["error": "\(error)"])
            throw DICOMwebError(.internalServerError, "internal error")
        }
    }

    static let allow = HTTPField.Name("Allow")!
}
