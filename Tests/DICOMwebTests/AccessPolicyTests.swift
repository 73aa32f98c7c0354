import AccessControl
@testable import DICOMweb
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ImageSetStore
import NIOCore
import TestSupport
import XCTest
import StoreTestSupport

/// The route policy (Docs/security.md, "Roles and routes"): every registered route × every role ×
/// {no credentials, wrong credentials}, API keys and their revocation, the gateway's read-back.
final class AccessPolicyTests: DICOMwebTestCase, @unchecked Sendable {
    static let sop = "1.2.826.0.1.3680043.9.7433.2.1.1"
    static let victimStudy = "1.2.826.0.1.3680043.9.7433.3"
    static let victimSeries = "1.2.826.0.1.3680043.9.7433.3.1"
    static let victimSOP = "1.2.826.0.1.3680043.9.7433.3.1.1"

    /// Creates a key of each role and returns them by role.
    func makeKeys() async throws -> [Role: String] {
        var keys: [Role: String] = [:]
        for role in Role.allCases {
            let key = APIKey.generate()
            try await store.accessKeys.createAPIKey(APIKeyRecord(name: "test-\(role.rawValue)", role: role, keyHash: APIKey.hash(key), created: Date()))
            keys[role] = key
        }
        return keys
    }

    /// The app with keys cached for `lifetime`; `body` gets the client and the registered routes (method, pattern).
    func withApp(lifetime: TimeInterval = 5, _ body: @Sendable (any TestClientProtocol, [(HTTPRequest.Method, String)]) async throws -> Void) async throws {
        var configuration = DICOMwebConfiguration()
        configuration.authentication.apiKeyCacheLifetime = lifetime
        let router = buildRouter(store: store, configuration: configuration)
        let routes = router.routes.map { ($0.method, $0.path.description) }
        try await Application(router: router).test(.router) { try await body($0, routes) }
    }

    static func bearer(_ key: String?) async -> HTTPFields {
        key.map { [.authorization: "Bearer \($0)"] } ?? [:]
    }

    func stow(_ client: any TestClientProtocol, key: String?, _ instance: [UInt8], path: String = "/dicomweb/studies") async throws -> HTTPResponse.Status {
        var headers = await Self.bearer(key)
        headers[.contentType] = "multipart/related; type=\"application/dicom\"; boundary=XyZ-boundary"
        return try await client.execute(uri: path, method: .post, headers: headers, body: Self.multipart([instance])) { $0.status }
    }

    /// A concrete request path for a route pattern, on the instance the gateway stored.
    func concrete(_ pattern: String, imageSet: String, frame: String) async -> String {
        pattern.replacingOccurrences(of: "{study}", with: Self.study).replacingOccurrences(of: "{series}", with: Self.series)
            .replacingOccurrences(of: "{sop}", with: Self.sop).replacingOccurrences(of: "{frames}", with: "1")
            .replacingOccurrences(of: "{id}", with: imageSet).replacingOccurrences(of: "{frame}", with: frame)
            .replacingOccurrences(of: "**", with: "7FE00010")
    }

    /// A subscription to a port nothing answers on (the matrix's `{id}`), or a fresh one to delete.
    func subscription(fresh: Bool = false) async throws -> String {
        if !fresh, let first = try await store.subscriptions.subscriptions().first { return first.id }
        let s = Subscription(id: Subscription.newID(), url: "http://127.0.0.1:9/hook", eventTypes: [], studyInstanceUID: nil, patientID: nil,
                             secret: Subscription.generateSecret(), created: Date(), cursor: 0, state: .disabled)
        try await store.subscriptions.createSubscription(s)
        return s.id
    }

    /// Every registered route is in the policy table; a route that is not is refused even to an admin.
    func testEveryRegisteredRouteIsInThePolicyTable() async throws {
        let router = buildRouter(store: store, configuration: DICOMwebConfiguration())
        XCTAssertFalse(router.routes.isEmpty)
        for route in router.routes {
            XCTAssertNotNil(RoutePolicy.access(method: route.method.rawValue, path: route.path.description),
                            "\(route.method) \(route.path) is registered but not in RoutePolicy.entries (and Docs/security.md)")
        }
        // Fail closed: a route added without a policy entry answers 403, here to the anonymous admin.
        router.get("/unlisted") { _, _ in "open" }
        try await Application(router: router).test(.router) { client in
            try await client.execute(uri: "/unlisted", method: .get) { r in
                XCTAssertEqual(r.status, .forbidden)
                XCTAssertTrue(r.headers[.wwwAuthenticate]?.contains("insufficient_scope") == true)
            }
        }
    }

    /// Docs/security.md's "Roles and routes" table is this table: same routes, same roles.
    func testDocsTableIsThePolicyTable() async throws {
        let doc = try String(contentsOf: Corpus.packageRoot.appendingPathComponent("Docs/security.md"), encoding: .utf8)
        var documented: [String: String] = [:]
        for line in doc.split(separator: "\n") where line.hasPrefix("| GET ") || line.hasPrefix("| POST ") || line.hasPrefix("| DELETE ") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            documented["\(cells[0]) \(cells[1])"] = cells[2]
        }
        let code = Dictionary(RoutePolicy.entries.map { ("\($0.method) \($0.path)", RoutePolicy.describe($0.access)) }, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(documented, code)
    }

    /// The matrix: each route with no credentials and a wrong key is 401 (unless open to everyone),
    /// and with each role's key 2xx where the table allows that role, 403 where it does not.
    func testRouteRoleMatrix() async throws {
        let keys = try await makeKeys()
        try await withApp { client, routes in
            // The gateway stores the instance every path names, so its read-back routes answer 2xx.
            let stored = try await self.stow(client, key: keys[.gateway], try Self.instance(sop: Self.sop))
            XCTAssertEqual(stored, .ok)
            let imageSet = try await XCTUnwrapAsync(try await self.store.index.imageSets(ImageSetFilter()).first?.id)
            let row = try await XCTUnwrapAsync(try await self.store.index.instance(sopInstanceUID: Self.sop)?.id)
            var checked = 0
            for (routeMethod, pattern) in routes {
                let access = try XCTUnwrap(RoutePolicy.access(method: routeMethod.rawValue, path: pattern))
                for method in routeMethod == .get ? [HTTPRequest.Method.get, .head] : [routeMethod] {
                    for (who, key) in [("no credentials", nil), ("wrong key", "tsk_" + String(repeating: "A", count: 43))] + Role.allCases.map({ ($0.rawValue, keys[$0]) }) {
                        var path = await self.concrete(pattern, imageSet: imageSet, frame: "\(row).1")
                        let role = Role(rawValue: who)
                        var allowed = access == .everyone
                        if !allowed, let role {
                            allowed = await RoutePolicy.allows(access, Principal(name: "test-\(role.rawValue)", roles: [role], kind: .apiKey)) { true }
                        }
                        if method == .delete && !path.hasPrefix("/imagesets") {
                            // Deletions act on a study of their own, stored again before each one an admin makes.
                            path = path.replacingOccurrences(of: Self.study, with: Self.victimStudy).replacingOccurrences(of: Self.series, with: Self.victimSeries)
                                .replacingOccurrences(of: Self.sop, with: Self.victimSOP)
                            if allowed {
                                _ = try await self.stow(client, key: keys[.admin], try Self.instance(sop: Self.victimSOP, study: Self.victimStudy, series: Self.victimSeries))
                            }
                        }
                        // The change feed's stream never ends, and this client reads bodies whole: its HEAD
                        // answers as its GET would (ChangeFeedStreamTests reads the GET from a real server).
                        if allowed && method == .get && pattern == "/changefeed/stream" { continue }
                        var headers = await Self.bearer(key)
                        var body: ByteBuffer? = nil
                        if pattern.hasPrefix("/subscriptions") {
                            // Webhook subscriptions: an existing one, a victim of its own for each DELETE an admin makes.
                            var id = try await self.subscription()
                            if method == .delete && allowed { id = try await self.subscription(fresh: true) }
                            path = pattern.replacingOccurrences(of: "{id}", with: id)
                            if pattern == "/subscriptions" && method == .post {
                                headers[.contentType] = "application/json"
                                body = ByteBuffer(string: #"{"url": "http://127.0.0.1:9/hook"}"#)
                            }
                        } else if method == .post {
                            path = pattern.contains("{study}") ? "/dicomweb/studies/\(Self.study)" : "/dicomweb/studies"
                            headers[.contentType] = "multipart/related; type=\"application/dicom\"; boundary=XyZ-boundary"
                            body = Self.multipart([try Self.instance(sop: Self.sop)])
                        }
                        let status = try await client.execute(uri: path, method: method, headers: headers, body: body) { $0.status }
                        let context = "\(method) \(path) as \(who) (\(RoutePolicy.describe(access)))"
                        if allowed {
                            XCTAssertEqual(status.kind, .successful, context)
                        } else if role == nil {
                            XCTAssertEqual(status, .unauthorized, context)
                        } else {
                            XCTAssertEqual(status, .forbidden, context)
                        }
                        checked += 1
                    }
                }
            }
            XCTAssertGreaterThan(checked, 200)
        }
    }

    /// A gateway reads back the instances its STOW-RS responses referenced, and nothing else.
    func testGatewayReadsBackOnlyWhatItStored() async throws {
        let keys = try await makeKeys()
        try await withApp { client, _ in
            let other = "1.2.826.0.1.3680043.9.7433.2.1.2"
            let byGateway = try await self.stow(client, key: keys[.gateway], try Self.instance(sop: Self.sop))
            let byAdmin = try await self.stow(client, key: keys[.admin], try Self.instance(sop: other))
            XCTAssertEqual([byGateway, byAdmin], [.ok, .ok])
            let base = "/dicomweb/studies/\(Self.study)/series/\(Self.series)/instances/"
            let gateway = await Self.bearer(keys[.gateway])
            for (path, expected) in [(base + Self.sop, HTTPResponse.Status.ok), (base + Self.sop + "/metadata", .ok),
                                     (base + other, .forbidden), (base + other + "/metadata", .forbidden),
                                     (base + Self.sop + "/frames/1", .forbidden), ("/dicomweb/studies", .forbidden),
                                     ("/dicomweb/studies/\(Self.study)", .forbidden)] {
                try await client.execute(uri: path, method: .get, headers: gateway) { r in XCTAssertEqual(r.status, expected, path) }
            }
        }
        // Recorded per principal: another gateway does not inherit the first one's instances.
        await XCTAssertTrueAsync(try await store.accessKeys.hasStored(Principal(name: "test-gateway", roles: [.gateway], kind: .apiKey), sopInstanceUID: Self.sop))
        await XCTAssertFalseAsync(try await store.accessKeys.hasStored(Principal(name: "gateway-2", roles: [.gateway], kind: .apiKey), sopInstanceUID: Self.sop))
        await XCTAssertFalseAsync(try await store.accessKeys.hasStored(Principal(name: "test-gateway", roles: [.gateway], kind: .token), sopInstanceUID: Self.sop))
    }

    /// RFC 6750 §3: a bare challenge without credentials, `invalid_token` for a bad key,
    /// `insufficient_scope` (403) for a valid key without the role; bodies stay `{"error": ...}`.
    func testChallengesAndErrorBodies() async throws {
        let keys = try await makeKeys()
        try await withApp { client, _ in
            try await client.execute(uri: "/dicomweb/studies", method: .get) { r in
                XCTAssertEqual(r.status, .unauthorized)
                XCTAssertEqual(r.headers[.wwwAuthenticate], "Bearer realm=\"tessera\"")
                XCTAssertEqual(r.headers[.contentType], "application/json")
                XCTAssertNotNil((try Self.json(r.body) as? [String: Any])?["error"] as? String)
            }
            try await client.execute(uri: "/dicomweb/studies", method: .get, headers: Self.bearer("tsk_nope")) { r in
                XCTAssertEqual(r.status, .unauthorized)
                XCTAssertTrue(r.headers[.wwwAuthenticate]?.hasPrefix("Bearer realm=\"tessera\", error=\"invalid_token\", error_description=\"") == true)
            }
            try await client.execute(uri: "/dicomweb/studies", method: .get, headers: [.authorization: "Basic dXNlcjpwYXNz"]) { r in
                XCTAssertEqual(r.status, .unauthorized)
            }
            try await client.execute(uri: "/dicomweb/studies/\(Self.study)", method: .delete, headers: Self.bearer(keys[.viewer])) { r in
                XCTAssertEqual(r.status, .forbidden)
                XCTAssertTrue(r.headers[.wwwAuthenticate]?.contains("error=\"insufficient_scope\"") == true)
                XCTAssertNotNil((try Self.json(r.body) as? [String: Any])?["error"] as? String)
            }
            // The scheme is case-insensitive (RFC 9110 §11.1); /health needs nothing; an unknown path is 401 before 404.
            try await client.execute(uri: "/dicomweb/studies", method: .get, headers: [.authorization: "bearer \(keys[.viewer]!)"]) { r in
                XCTAssertEqual(r.status, .ok)
            }
            try await client.execute(uri: "/health", method: .get) { r in XCTAssertEqual(r.status, .ok) }
            try await client.execute(uri: "/nowhere", method: .get) { r in XCTAssertEqual(r.status, .unauthorized) }
            try await client.execute(uri: "/nowhere", method: .get, headers: Self.bearer(keys[.viewer])) { r in XCTAssertEqual(r.status, .notFound) }
        }
    }

    /// A revoked key keeps working only until the server's copy of the keys expires, then is 401;
    /// within the lifetime no query is made (the key still works just after its revocation).
    /// An index that cannot be read (PostgreSQL away for a moment) must not turn authentication
    /// off: the keys count as present, and no key authenticates until they can be read (fail closed).
    func testUnreadableKeysKeepAuthenticationOn() async throws {
        struct Unreachable: AccessKeyIndex {
            struct Down: Error {}
            func createAPIKey(_ record: APIKeyRecord, audit: AuditContext?) async throws { throw Down() }
            func apiKeys() async throws -> [APIKeyRecord] { throw Down() }
            func activeAPIKeys() async throws -> [APIKeyRecord] { throw Down() }
            func revokeAPIKey(name: String, at: Date, audit: AuditContext?) async throws -> Bool { throw Down() }
            func recordStoredInstances(by principal: Principal, sopInstanceUIDs: [String]) async throws { throw Down() }
            func hasStored(_ principal: Principal, sopInstanceUID: String) async throws -> Bool { throw Down() }
        }
        let authenticator = RequestAuthenticator(keys: Unreachable(), configuration: AuthenticationConfiguration())
        await XCTAssertTrueAsync(await authenticator.isEnabled())
        do {
            _ = try await authenticator.authenticate(authorization: nil)
            XCTFail("an anonymous request was let in while the keys could not be read")
        } catch {
            XCTAssertEqual(error.reason, "no-credentials")
        }
    }

    func testRevokedKeyStopsWithinTheCacheLifetime() async throws {
        let keys = try await makeKeys()
        try await withApp(lifetime: 0.5) { client, _ in
            let viewer = await Self.bearer(keys[.viewer])
            try await client.execute(uri: "/dicomweb/studies", method: .get, headers: viewer) { r in XCTAssertEqual(r.status, .ok) }
            await XCTAssertTrueAsync(try await self.store.accessKeys.revokeAPIKey(name: "test-viewer", at: Date()))
            try await client.execute(uri: "/dicomweb/studies", method: .get, headers: viewer) { r in XCTAssertEqual(r.status, .ok, "served from the cache") }
            try await Task.sleep(for: .milliseconds(700))
            try await client.execute(uri: "/dicomweb/studies", method: .get, headers: viewer) { r in XCTAssertEqual(r.status, .unauthorized) }
            // Authentication stays on when the last keys go: a server never opens itself.
            for role in [Role.gateway, .admin] { _ = try await self.store.accessKeys.revokeAPIKey(name: "test-\(role.rawValue)", at: Date()) }
            try await Task.sleep(for: .milliseconds(700))
            try await client.execute(uri: "/dicomweb/studies", method: .get) { r in XCTAssertEqual(r.status, .unauthorized) }
        }
    }

    /// With no key and no OIDC provider every request is the anonymous admin, DELETE included.
    func testNoKeysMeansAnonymousAdmin() async throws {
        try await withApp { client, _ in
            let stored = try await self.stow(client, key: nil, try Self.instance(sop: Self.sop))
            XCTAssertEqual(stored, .ok)
            try await client.execute(uri: "/dicomweb/studies/\(Self.study)", method: .delete) { r in XCTAssertEqual(r.status.kind, .successful) }
        }
        let authenticator = RequestAuthenticator(keys: store.accessKeys, configuration: AuthenticationConfiguration())
        await XCTAssertFalseAsync(await authenticator.isEnabled())
        let principal = try await authenticator.authenticate(authorization: nil)
        XCTAssertEqual(principal, RequestAuthenticator.anonymous)
        XCTAssertEqual(RequestAuthenticator.anonymous.kind, .anonymous)
    }
}
