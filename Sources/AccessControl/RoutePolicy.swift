import ImageSetStore

/// Which principals may use which route: the one table every request is looked up in
/// (Docs/security.md, "Roles and routes", has the same table). Paths are written as the router
/// prints its routes (`{study}` for a capture, `**` for the rest of the path); HEAD is looked up as
/// GET. A route that is registered but missing here is refused to everyone (and a test fails).
public enum RoutePolicy {
    public enum Access: Sendable, Hashable {
        /// No credentials needed, even with authentication on (load balancers' probes).
        case everyone
        /// A principal with one of these roles.
        case roles(Set<Role>)
        /// One of these roles, or the gateway role for an instance this principal stored (the
        /// route's `sop` parameter; its own STOW-RS responses referenced it).
        case rolesOrStoredByGateway(Set<Role>)
    }

    public struct Entry: Sendable, Hashable {
        public let method: String
        public let path: String
        public let access: Access
    }

    static let readers: Set<Role> = [.viewer, .admin]
    static let instance = "/dicomweb/studies/{study}/series/{series}/instances/{sop}"
    static let levels = ["/dicomweb/studies/{study}", "/dicomweb/studies/{study}/series/{series}", instance]

    public static let entries: [Entry] = {
        var e: [Entry] = []
        func add(_ method: String, _ paths: [String], _ access: Access) { e += paths.map { Entry(method: method, path: $0, access: access) } }
        add("GET", ["/health", "/ready"], .everyone)
        // STOW-RS
        add("POST", ["/dicomweb/studies", "/dicomweb/studies/{study}"], .roles([.gateway, .admin]))
        // QIDO-RS
        add("GET", ["/dicomweb/studies", "/dicomweb/series", "/dicomweb/instances", "/dicomweb/studies/{study}/series",
                    "/dicomweb/studies/{study}/instances", "/dicomweb/studies/{study}/series/{series}/instances"], .roles(readers))
        // WADO-RS: study and series retrieval and metadata; an instance and its metadata also for the gateway that stored it.
        add("GET", levels.dropLast() + levels.dropLast().map { $0 + "/metadata" }, .roles(readers))
        add("GET", [instance, instance + "/metadata"], .rolesOrStoredByGateway(readers))
        add("GET", [instance + "/frames/{frames}", instance + "/bulkdata/**"], .roles(readers))
        // Rendered resources and thumbnails
        add("GET", levels.map { $0 + "/rendered" } + [instance + "/frames/{frames}/rendered"], .roles(readers))
        add("GET", levels.map { $0 + "/thumbnail" } + [instance + "/frames/{frames}/thumbnail"], .roles(readers))
        // DELETE (PS3.18 §10.7)
        add("DELETE", levels, .roles([.admin]))
        // The image-set API
        add("GET", ["/imagesets", "/imagesets/{id}", "/imagesets/{id}/versions", "/imagesets/{id}/metadata",
                    "/imagesets/{id}/frames/{frame}"], .roles(readers))
        add("DELETE", ["/imagesets/{id}/versions"], .roles([.admin]))
        // The audit trail (section 2 of issue 12 adds the route).
        add("GET", ["/audit"], .roles([.admin]))
        // The change feed (Docs/events.md).
        add("GET", ["/changefeed", "/changefeed/latest", "/changefeed/stream"], .roles([.admin]))
        // Webhook subscriptions (Docs/events.md): they send events to any URL, so admin only.
        add("GET", ["/subscriptions", "/subscriptions/{id}"], .roles([.admin]))
        add("POST", ["/subscriptions", "/subscriptions/{id}/enable", "/subscriptions/{id}/disable"], .roles([.admin]))
        add("DELETE", ["/subscriptions/{id}"], .roles([.admin]))
        // Prometheus metrics (Docs/operations.md): admin, or a scraper with the metrics token (checked before this table).
        add("GET", ["/metrics"], .roles([.admin]))
        return e
    }()

    static let byRoute: [String: Access] = Dictionary(entries.map { ("\($0.method) \($0.path)", $0.access) }, uniquingKeysWith: { a, _ in a })

    /// The access rule of a registered route, nil when the table lacks it.
    public static func access(method: String, path: String) -> Access? {
        byRoute["\(method == "HEAD" ? "GET" : method) \(path)"]
    }

    /// Whether `principal` may use a route with this rule; `storedBy` answers whether the principal
    /// stored the route's instance, and is asked only when that decides it. An error there refuses.
    public static func allows(_ access: Access, _ principal: Principal, storedBy: () async throws -> Bool) async -> Bool {
        if let known = allowsByRole(access, principal) { return known }
        return (try? await storedBy()) ?? false
    }

    /// `allows` when it needs no lookup: nil when only the instance's gateway could tell.
    public static func allowsByRole(_ access: Access, _ principal: Principal) -> Bool? {
        switch access {
        case .everyone: return true
        case .roles(let roles): return !roles.isDisjoint(with: principal.roles)
        case .rolesOrStoredByGateway(let roles):
            if !roles.isDisjoint(with: principal.roles) { return true }
            return principal.has(.gateway) ? nil : false
        }
    }

    /// Who may, in words (the docs' table and `keys` help).
    public static func describe(_ access: Access) -> String {
        switch access {
        case .everyone: return "anyone, no credentials"
        case .roles(let r): return Role.allCases.filter(r.contains).map(\.rawValue).joined(separator: ", ")
        case .rolesOrStoredByGateway(let r):
            return Role.allCases.filter(r.contains).map(\.rawValue).joined(separator: ", ") + "; gateway: instances it stored"
        }
    }
}
