import HTTPTypes
import Hummingbird

/// Cross-origin reads by browser viewers (OHIF and the like), for the configured origins only: the
/// Fetch standard's CORS protocol (https://fetch.spec.whatwg.org/#http-cors-protocol, §3.2).
/// Hummingbird's CORSMiddleware takes one origin setting (its list form is variadic, so not fed
/// from configuration) and answers every OPTIONS carrying `Origin` as a preflight, even from an
/// origin it does not allow; this one answers only allowed origins' preflights and leaves other
/// requests' headers alone.
struct AllowedOriginsMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Any origin (`*` configured).
    let anyOrigin: Bool
    /// Serialized origins (`https://viewer.example:8443`), lower-cased, compared byte for byte as
    /// Fetch compares origins (§3.2.2: `Origin` is the serialization of the request's origin).
    let origins: Set<String>

    init(origins: [String]) {
        anyOrigin = origins.contains("*")
        self.origins = Set(origins.map { $0.lowercased() })
    }

    /// Fetch §3.2.3: a preflight response lists the methods and headers a page may use.
    /// `Authorization` is listed by name: the `*` wildcard never covers it.
    static var allowHeaders: String { "Accept, Authorization, Content-Type, X-Requested-With" }
    static var allowMethods: String { "GET, POST, DELETE, HEAD, OPTIONS" }
    /// Response headers a page's script may read beyond the CORS-safelisted ones.
    static var exposeHeaders: String { "Content-Type, Content-Length, Content-Location, Warning, Allow, WWW-Authenticate" }

    /// The `Access-Control-Allow-Origin` value for a request from `origin`, nil when it is not
    /// allowed: then the response carries no CORS header and the browser keeps it from the page
    /// (Fetch §4.9, CORS check). `*` suffices for bearer tokens: Fetch counts only cookies, HTTP
    /// authentication and client certificates as credentials (§3.2.5), and none are used here.
    func allowedOrigin(_ origin: String) -> String? {
        if anyOrigin { return "*" }
        return origins.contains(origin.lowercased()) ? origin : nil
    }

    /// The CORS headers of the answer to a request from `origin`: `Access-Control-Allow-Origin`
    /// when allowed; `Vary: Origin` when the answer depends on it; then what a preflight may use
    /// (`preflight`: Fetch §3.2.2, OPTIONS with `Access-Control-Request-Method`) or the headers
    /// a page may read. Also what the stored-frame fast path sends.
    func fields(origin: String, preflight: Bool) -> HTTPFields {
        let allowed = allowedOrigin(origin)
        var headers: HTTPFields = [:]
        if let allowed { headers[.accessControlAllowOrigin] = allowed }
        // A list (not `*`) makes the answer depend on Origin: caches must key on it (Fetch §3.2,
        // "CORS protocol and HTTP caches"), also for the origins refused.
        if !anyOrigin { headers[.vary] = "Origin" }
        guard allowed != nil else { return headers }
        if preflight {
            headers[.accessControlAllowMethods] = Self.allowMethods
            headers[.accessControlAllowHeaders] = Self.allowHeaders
            headers[.accessControlMaxAge] = "600"
        } else {
            headers[.accessControlExposeHeaders] = Self.exposeHeaders
        }
        return headers
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let origin = request.headers[.origin] else { return try await next(request, context) }
        // A refused origin's preflight goes on to the router's plain OPTIONS answer, without CORS headers.
        if request.method == .options, request.headers[.accessControlRequestMethod] != nil, allowedOrigin(origin) != nil {
            return Response(status: .noContent, headers: fields(origin: origin, preflight: true))
        }
        let headers = fields(origin: origin, preflight: false)
        do {
            var response = try await next(request, context)
            response.headers.append(contentsOf: headers)
            return response
        } catch var error as DICOMwebError {
            error.headers.append(contentsOf: headers)
            throw error
        } catch let error as any HTTPResponseError {
            // Errors of middlewares outside ErrorBodyMiddleware (say authentication's 401) carry the headers too.
            var response = try error.response(from: request, context: context)
            response.headers.append(contentsOf: headers)
            return response
        }
    }
}

extension DICOMwebConfiguration {
    /// The configured origins, or the default: none when authentication is on, since a page on
    /// any site could otherwise use a token the browser holds (or probe a service on the
    /// intranet); `*` only for development, authentication off and listening on loopback.
    public var effectiveCORSOrigins: [String] {
        if let corsOrigins { return corsOrigins }
        return !authenticationEnabled && Self.isLoopback(host) ? ["*"] : []
    }

    public static func isLoopback(_ host: String) -> Bool {
        host.lowercased() == "localhost" || CIDR.contains(CIDR.loopback, address: host)
    }

    /// `*`, or an origin as a browser sends it: `scheme://host[:port]`, no path (Fetch §3.2.2
    /// and RFC 6454 §6.2). Returns the origin lower-cased, without a trailing `/`; nil when malformed.
    public static func corsOrigin(_ text: String) -> String? {
        if text == "*" { return text }
        var origin = text.lowercased()
        if origin.hasSuffix("/") { origin.removeLast() }
        guard let sep = origin.range(of: "://"), !origin[sep.upperBound...].isEmpty,
              origin[..<sep.lowerBound].allSatisfy(DICOMwebService.schemeCharacters.contains), !origin[..<sep.lowerBound].isEmpty,
              origin[sep.upperBound...].allSatisfy({ DICOMwebService.hostCharacters.contains($0) }) else { return nil }
        return origin
    }
}
