import Crypto
import Foundation
import ImageSetStore
import JWTKit
import Logging

/// Verifies OIDC bearer JWTs (RFC 7519, RFC 9068 access tokens): the header's `alg` first (RS256,
/// ES256 or EdDSA: never `none`, never HMAC, so that a token "signed" with a public key as an HMAC
/// secret — algorithm confusion — is refused before any key is touched), then the signature with
/// the JWKS key its `kid` names, then `iss`, `aud`, `exp` and `nbf` (with `clockSkew`), then the
/// roles at the configured claim path. The principal's name is `sub`.
public final class OIDCAuthenticator: @unchecked Sendable {
    public let configuration: OIDCConfiguration
    let jwks: JWKSCache
    static let acceptedAlgorithms: Set<String> = ["RS256", "ES256", "EdDSA"]
    private let lock = NSLock()
    // Guarded by `lock`: SHA-256 of a verified token → its principal and until when it may be reused.
    private var verified: [[UInt8]: (principal: Principal, until: Date)] = [:]
    static let verifiedCapacity = 4096

    public init(configuration: OIDCConfiguration, logger: Logger = Logger(label: "tessera.auth")) {
        self.configuration = configuration
        jwks = JWKSCache(source: configuration.jwks, lifetime: configuration.jwksLifetime,
                         minimumRefetchInterval: configuration.jwksMinimumRefetchInterval, logger: logger)
    }

    /// Reads the key set now (start-up), throwing when it cannot be read or has no usable key.
    public func loadKeys() async throws { try await jwks.loadNow() }

    /// How many times the key set has been read.
    public var keySetReads: Int { get async { await jwks.fetchCount } }

    public func principal(forToken token: String, now: Date = Date()) async throws(AuthenticationFailure) -> Principal {
        let digest = Array(SHA256.hash(data: Array(token.utf8)))
        if let hit = cached(digest, now: now) { return hit }
        let (principal, exp) = try await verify(token, now: now)
        remember(digest, principal, until: min(exp.addingTimeInterval(configuration.clockSkew), now.addingTimeInterval(configuration.verifiedTokenLifetime)))
        return principal
    }

    /// The principal of a token verified earlier and still within its lifetime; nil when it would
    /// have to be verified (for callers that cannot wait: the stored-frame fast path).
    public func cachedPrincipal(forToken token: String, now: Date = Date()) -> Principal? {
        cached(Array(SHA256.hash(data: Array(token.utf8))), now: now)
    }

    private func cached(_ digest: [UInt8], now: Date) -> Principal? {
        lock.lock()
        defer { lock.unlock() }
        guard let hit = verified[digest] else { return nil }
        if hit.until > now { return hit.principal }
        verified[digest] = nil
        return nil
    }

    private func remember(_ digest: [UInt8], _ principal: Principal, until: Date) {
        lock.lock()
        defer { lock.unlock() }
        // Bounded: when full, expired entries go, and if none had expired, all of them.
        if verified.count >= Self.verifiedCapacity {
            let now = Date()
            verified = verified.filter { $0.value.until > now }
            if verified.count >= Self.verifiedCapacity { verified = [:] }
        }
        verified[digest] = (principal, until)
    }

    static func invalid(_ reason: String, _ text: String) -> AuthenticationFailure {
        AuthenticationFailure(.invalidToken, reason: reason, text)
    }

    func verify(_ token: String, now: Date) async throws(AuthenticationFailure) -> (Principal, Date) {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let headerData = Self.base64URLDecode(parts[0]),
              let header = try? JSONSerialization.jsonObject(with: headerData) as? [String: Any] else {
            throw Self.invalid("malformed-token", "the bearer token is neither an API key nor a JWT")
        }
        guard let alg = header["alg"] as? String, Self.acceptedAlgorithms.contains(alg) else {
            throw Self.invalid("algorithm-not-accepted", "the token's algorithm \(header["alg"].map { "\($0)" } ?? "(none)") is not accepted (RS256, ES256, EdDSA only)")
        }
        let kid = header["kid"] as? String
        guard let key = await jwks.key(kid: kid) else {
            throw Self.invalid("unknown-key", kid.map { "no key with id \($0) in the provider's key set" } ?? "the token names no key id (kid)")
        }
        guard key.accepts(alg) else { throw Self.invalid("algorithm-not-accepted", "the key \(kid ?? "") is not a key for the algorithm \(alg)") }
        let claims: JSONValue
        do {
            claims = try await key.keys.verify(token, as: Claims.self).value
        } catch {
            throw Self.invalid("bad-signature", "the token's signature does not verify with the provider's key")
        }
        return try check(claims, now: now)
    }

    func check(_ claims: JSONValue, now: Date) throws(AuthenticationFailure) -> (Principal, Date) {
        let c = configuration
        guard claims["iss"]?.string == c.issuer else { throw Self.invalid("wrong-issuer", "the token's issuer is not \(c.issuer)") }
        // Each audience whole: "other-app tessera" is one audience, not tessera's (RFC 7519 §4.1.3).
        guard claims["aud"]?.values.contains(c.audience) == true else {
            throw Self.invalid("wrong-audience", "the token's audience does not include \(c.audience)")
        }
        guard let exp = claims["exp"]?.number else { throw Self.invalid("no-expiry", "the token has no exp claim") }
        let expiry = Date(timeIntervalSince1970: exp)
        guard now.timeIntervalSince(expiry) <= c.clockSkew else { throw Self.invalid("expired", "the token expired") }
        if let nbf = claims["nbf"]?.number, Date(timeIntervalSince1970: nbf).timeIntervalSince(now) > c.clockSkew {
            throw Self.invalid("not-yet-valid", "the token is not valid yet (nbf)")
        }
        guard let sub = claims["sub"]?.string, !sub.isEmpty else { throw Self.invalid("no-subject", "the token has no sub claim") }
        let values = claims.at(path: c.rolesClaim)?.strings ?? []
        let roles = Set(values.compactMap { v -> Role? in
            guard v.hasPrefix(c.rolePrefix) else { return nil }
            return Role(rawValue: String(v.dropFirst(c.rolePrefix.count)))
        })
        return (Principal(name: sub, roles: roles, kind: .token), expiry)
    }

    static func base64URLDecode(_ s: Substring) -> Data? {
        var text = s.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while text.count % 4 != 0 { text += "=" }
        return Data(base64Encoded: text)
    }

    /// The claims as JSON; checked by `check`, with this server's clock and skew, not by jwt-kit.
    struct Claims: JWTPayload {
        let value: JSONValue
        init(from decoder: any Decoder) throws { value = try JSONValue(from: decoder) }
        func encode(to encoder: any Encoder) throws { throw JWKSError("verification only") }
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }
}
