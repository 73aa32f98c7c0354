@testable import AccessControl
@testable import DICOMweb
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ImageSetStore
import JWTKit
import XCTest

/// OIDC bearer JWTs (RFC 7519; RFC 6750 §3 for the challenges): the tests sign their own tokens
/// and serve their own JWKS on loopback (a Hummingbird app on port 0) or from a file.
final class OIDCTests: DICOMwebTestCase, @unchecked Sendable {
    static let issuer = "https://idp.test/realms/tessera"
    static let audience = "tessera"
    static let octSecret = "a symmetric key of at least 32 bytes"

    struct Claims: JWTPayload {
        var iss: String? = OIDCTests.issuer
        var aud: [String]? = [OIDCTests.audience]
        var sub: String? = "alice"
        var exp: Double? = Date().timeIntervalSince1970 + 300
        var nbf: Double? = nil
        var roles: [String]? = ["viewer"]
        var realm_access: [String: [String]]? = nil
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    /// The JWKS document the loopback provider serves; tests change it to rotate keys.
    final class Published: @unchecked Sendable {
        private let lock = NSLock()
        private var _json = ""
        var json: String {
            get { lock.lock(); defer { lock.unlock() }; return _json }
            set { lock.lock(); _json = newValue; lock.unlock() }
        }
    }

    static func b64url(_ data: some DataProtocol) -> String {
        Data(data).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    let rsa = try! Insecure.RSA.PrivateKey(pem: TestRSAKeys.provider)
    let stranger = try! Insecure.RSA.PrivateKey(pem: TestRSAKeys.stranger)
    let es256 = ES256PrivateKey()
    let ed25519 = try! EdDSA.PrivateKey()

    func rsaJWK(_ key: Insecure.RSA.PrivateKey, kid: String) throws -> [String: String] {
        let (n, e) = try key.publicKey.getKeyPrimitives()
        return ["kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": Self.b64url(n), "e": Self.b64url(e)]
    }

    func jwks(_ keys: [[String: String]]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: ["keys": keys]), as: UTF8.self)
    }

    /// k1 (RSA), e1 (P-256), d1 (Ed25519), plus an HMAC key that must be ignored.
    func providerKeys() throws -> [[String: String]] {
        let p = try XCTUnwrap(es256.publicKey.parameters)
        return [try rsaJWK(rsa, kid: "k1"), ["kty": "EC", "crv": "P-256", "kid": "e1", "x": p.x, "y": p.y],
                ["kty": "OKP", "crv": "Ed25519", "kid": "d1", "x": Self.b64url(ed25519.publicKey.rawRepresentation)],
                ["kty": "oct", "kid": "h1", "k": Self.b64url(Data(Self.octSecret.utf8))]]
    }

    func sign(_ claims: Claims = Claims(), rsa key: Insecure.RSA.PrivateKey? = nil, kid: String = "k1") async throws -> String {
        let c = JWTKeyCollection()
        await c.add(rsa: key ?? rsa, digestAlgorithm: .sha256, kid: JWKIdentifier(string: kid))
        return try await c.sign(claims, kid: JWKIdentifier(string: kid))
    }

    /// Serves `published` at http://127.0.0.1:PORT/jwks and runs `body` against Tessera configured for it.
    func withProvider(_ published: Published, refetch: TimeInterval = 30, rolesClaim: String = "roles", prefix: String = "",
                      _ body: @Sendable (any TestClientProtocol, RequestAuthenticator) async throws -> Void) async throws {
        let router = Router()
        router.get("/jwks") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: published.json)))
        }
        let provider = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await provider.test(.live) { providerClient in
            let port = try XCTUnwrap(providerClient.port)
            var oidc = OIDCConfiguration(issuer: Self.issuer, audience: Self.audience, jwks: .url("http://127.0.0.1:\(port)/jwks"))
            oidc.jwksMinimumRefetchInterval = refetch
            oidc.rolesClaim = rolesClaim
            oidc.rolePrefix = prefix
            try await self.withTessera(oidc, body)
        }
    }

    func withTessera(_ oidc: OIDCConfiguration, _ body: @Sendable (any TestClientProtocol, RequestAuthenticator) async throws -> Void) async throws {
        var configuration = DICOMwebConfiguration()
        configuration.authentication.oidc = oidc
        let authenticator = RequestAuthenticator(keys: store.accessKeys, configuration: configuration.authentication)
        let app = Application(router: buildRouter(store: store, configuration: configuration, authenticator: authenticator))
        try await app.test(.router) { try await body($0, authenticator) }
    }

    /// GET /dicomweb/studies with the token; checks the status and, for refusals, the RFC 6750 challenge.
    static func expect(_ client: any TestClientProtocol, _ token: String, _ status: HTTPResponse.Status, error: String? = nil,
                       saying: String? = nil, path: String = "/dicomweb/studies", method: HTTPRequest.Method = .get,
                       file: StaticString = #filePath, line: UInt = #line) async throws {
        try await client.execute(uri: path, method: method, headers: [.authorization: "Bearer \(token)"]) { r in
            XCTAssertEqual(r.status, status, String(buffer: r.body), file: file, line: line)
            guard let error else { return }
            let challenge = r.headers[.wwwAuthenticate] ?? ""
            XCTAssertTrue(challenge.hasPrefix("Bearer realm=\"tessera\", error=\"\(error)\", error_description=\""), challenge, file: file, line: line)
            if let saying { XCTAssertTrue(challenge.contains(saying), "\(challenge) lacks \(saying)", file: file, line: line) }
            XCTAssertNotNil((try? Self.json(r.body) as? [String: Any])?["error"] as? String, file: file, line: line)
        }
    }

    func testTokenCases() async throws {
        let published = Published()
        published.json = try jwks(try providerKeys())
        let now = Date().timeIntervalSince1970
        try await withProvider(published) { client, _ in
            try await Self.expect(client, try await self.sign(), .ok)
            // ES256 and EdDSA keys from the same set.
            let ec = JWTKeyCollection()
            await ec.add(ecdsa: self.es256, kid: "e1")
            try await Self.expect(client, try await ec.sign(Claims(), kid: "e1"), .ok)
            let ed = JWTKeyCollection()
            await ed.add(eddsa: self.ed25519, kid: "d1")
            try await Self.expect(client, try await ed.sign(Claims(), kid: "d1"), .ok)

            // exp and nbf with the default 60 s of clock skew (RFC 7519 §4.1.4, §4.1.5).
            var c = Claims()
            c.exp = now - 30
            try await Self.expect(client, try await self.sign(c), .ok)
            c.exp = now - 120
            try await Self.expect(client, try await self.sign(c), .unauthorized, error: "invalid_token", saying: "expired")
            c.exp = nil
            try await Self.expect(client, try await self.sign(c), .unauthorized, error: "invalid_token", saying: "no exp")
            c = Claims()
            c.nbf = now + 120
            try await Self.expect(client, try await self.sign(c), .unauthorized, error: "invalid_token", saying: "not valid yet")
            c.nbf = now + 30
            try await Self.expect(client, try await self.sign(c), .ok)

            c = Claims()
            c.iss = "https://evil.test/realms/tessera"
            try await Self.expect(client, try await self.sign(c), .unauthorized, error: "invalid_token", saying: "issuer")
            c = Claims()
            c.aud = ["another-service"]
            try await Self.expect(client, try await self.sign(c), .unauthorized, error: "invalid_token", saying: "audience")

            // A stranger's key under the provider's kid.
            try await Self.expect(client, try await self.sign(rsa: self.stranger), .unauthorized, error: "invalid_token", saying: "signature")
            // RS256 in the header, but the kid names the P-256 key.
            try await Self.expect(client, try await self.sign(kid: "e1"), .unauthorized, error: "invalid_token", saying: "algorithm")

            // alg: none (RFC 8725 §3.1).
            let none = JWTKeyCollection()
            await none.addUnsecuredNone(kid: "k1")
            try await Self.expect(client, try await none.sign(Claims(), kid: "k1"), .unauthorized, error: "invalid_token", saying: "algorithm")
            // Algorithm confusion (RFC 8725 §2.1): HS256 "signed" with the RSA public key's bytes as the secret.
            let confused = JWTKeyCollection()
            await confused.add(hmac: HMACKey(from: self.rsa.publicKey.pemRepresentation), digestAlgorithm: .sha256, kid: "k1")
            try await Self.expect(client, try await confused.sign(Claims(), kid: "k1"), .unauthorized, error: "invalid_token", saying: "algorithm")
            // The JWKS's symmetric key is never used either.
            let oct = JWTKeyCollection()
            await oct.add(hmac: HMACKey(from: Self.octSecret), digestAlgorithm: .sha256, kid: "h1")
            try await Self.expect(client, try await oct.sign(Claims(), kid: "h1"), .unauthorized, error: "invalid_token")
            try await Self.expect(client, "not.a.jwt", .unauthorized, error: "invalid_token")

            // Valid tokens without the role the route needs: 403 insufficient_scope.
            c = Claims()
            c.roles = []
            try await Self.expect(client, try await self.sign(c), .forbidden, error: "insufficient_scope", saying: "no role")
            c.roles = ["nurse"]
            try await Self.expect(client, try await self.sign(c), .forbidden, error: "insufficient_scope")
            try await Self.expect(client, try await self.sign(), .forbidden, error: "insufficient_scope",
                                  path: "/dicomweb/studies/\(Self.study)", method: .delete)
        }
    }

    /// A token naming a kid the set lacks makes one re-read (key rotation); another unknown kid
    /// within the rate limit makes none.
    func testUnknownKidRefetchesOnceThenIsRateLimited() async throws {
        let published = Published()
        published.json = try jwks([try rsaJWK(rsa, kid: "k1")])
        try await withProvider(published, refetch: 0.5) { client, authenticator in
            let oidc = try XCTUnwrap(authenticator.oidc)
            try await Self.expect(client, try await self.sign(), .ok)
            var reads = await oidc.keySetReads
            XCTAssertEqual(reads, 1)
            // The provider rotates: k2 (the second key) is published; a k2 token makes Tessera re-read.
            published.json = try self.jwks([try self.rsaJWK(self.rsa, kid: "k1"), try self.rsaJWK(self.stranger, kid: "k2")])
            try await Task.sleep(for: .milliseconds(600))
            try await Self.expect(client, try await self.sign(rsa: self.stranger, kid: "k2"), .ok)
            reads = await oidc.keySetReads
            XCTAssertEqual(reads, 2)
            // Made-up kids right after: refused without another read.
            for kid in ["k3", "k4", "k5"] {
                try await Self.expect(client, try await self.sign(rsa: self.stranger, kid: kid), .unauthorized, error: "invalid_token", saying: "no key with id")
            }
            reads = await oidc.keySetReads
            XCTAssertEqual(reads, 2)
            // A verified token is remembered, but never past its exp (plus the skew).
            var c = Claims()
            c.exp = Date().timeIntervalSince1970 + 10
            let token = try await self.sign(c)
            let first = try await oidc.principal(forToken: token)
            let again = try await oidc.principal(forToken: token, now: Date().addingTimeInterval(5))
            XCTAssertEqual([first.name, again.name], ["alice", "alice"])
            do {
                _ = try await oidc.principal(forToken: token, now: Date().addingTimeInterval(10 + 61))
                XCTFail("an expired token was served from the cache")
            } catch {
                XCTAssertEqual((error as? AuthenticationFailure)?.reason, "expired")
            }
        }
    }

    /// Keycloak puts roles at realm_access.roles; a prefix keeps only Tessera's. JWKS from a file.
    func testKeycloakClaimPathPrefixAndJWKSFile() async throws {
        let file = folder + "-jwks.json"
        defer { try? FileManager.default.removeItem(atPath: file) }
        try Data(try jwks([try rsaJWK(rsa, kid: "k1")]).utf8).write(to: URL(fileURLWithPath: file))
        var oidc = OIDCConfiguration(issuer: Self.issuer, audience: Self.audience, jwks: .init(file))
        XCTAssertEqual(oidc.jwks, .file(file))
        oidc.rolesClaim = "realm_access.roles"
        oidc.rolePrefix = "tessera-"
        try await withTessera(oidc) { client, _ in
            var c = Claims()
            c.roles = ["admin"]  // not where the roles are configured to be
            c.realm_access = ["roles": ["offline_access", "tessera-viewer"]]
            try await Self.expect(client, try await self.sign(c), .ok)
            c.realm_access = ["roles": ["viewer"]]  // without the prefix
            try await Self.expect(client, try await self.sign(c), .forbidden, error: "insufficient_scope")
        }
    }

    /// `aud` as one string is one audience (RFC 7519 §4.1.3): "other-app tessera" is not tessera's,
    /// though `scope`-like splitting would have made it so.
    func testAnAudienceStringIsNotSplit() throws {
        let oidc = OIDCAuthenticator(configuration: OIDCConfiguration(issuer: Self.issuer, audience: Self.audience, jwks: .init("/nonexistent")))
        let now = Date()
        func claims(_ aud: String) throws -> JSONValue {
            try JSONDecoder().decode(JSONValue.self, from: Data("""
                {"iss": "\(Self.issuer)", "aud": \(aud), "exp": \(Int(now.timeIntervalSince1970) + 60), "sub": "u", "roles": ["viewer"]}
                """.utf8))
        }
        XCTAssertThrowsError(try oidc.check(claims("\"other-app tessera\""), now: now))
        XCTAssertNoThrow(try oidc.check(claims("\"tessera\""), now: now))
        XCTAssertNoThrow(try oidc.check(claims("[\"other-app\", \"tessera\"]"), now: now))
    }

}
