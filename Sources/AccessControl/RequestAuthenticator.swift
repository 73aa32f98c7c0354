import Foundation
import ImageSetStore
import Logging

/// Who a request comes from: an API key, an OIDC token, or — with authentication off — the
/// anonymous admin. Authentication is on when an OIDC provider is configured or an unrevoked API
/// key exists; once on, it stays on for the life of the process, so that revoking the last key
/// of a server on a public address locks it rather than opening it.
public final class RequestAuthenticator: @unchecked Sendable {
    public let apiKeys: APIKeyAuthenticator
    public let oidc: OIDCAuthenticator?
    private let lock = NSLock()
    private var wasEnabled = false

    /// Every request's principal while authentication is off (loopback development).
    public static let anonymous = Principal(name: "anonymous", roles: [.admin], kind: .anonymous)

    public init(keys: any AccessKeyIndex, configuration: AuthenticationConfiguration, logger: Logger = Logger(label: "tessera.auth")) {
        apiKeys = APIKeyAuthenticator(index: keys, lifetime: configuration.apiKeyCacheLifetime, logger: logger)
        oidc = configuration.oidc.map { OIDCAuthenticator(configuration: $0, logger: logger) }
    }

    public func isEnabled() async -> Bool {
        if oidc != nil { return true }
        if lock.withLock({ wasEnabled }) { return true }
        guard await apiKeys.hasActiveKeys() else { return false }
        lock.withLock { wasEnabled = true }
        return true
    }

    /// The principal of a request with this `Authorization` header value.
    public func authenticate(authorization: String?) async throws(AuthenticationFailure) -> Principal {
        guard await isEnabled() else { return Self.anonymous }
        let token = try Self.bearerToken(authorization)
        if token.hasPrefix(APIKey.prefix) { return try await apiKeys.principal(forKey: token) }
        guard let oidc else {
            throw AuthenticationFailure(.invalidToken, reason: "unknown-or-revoked-key", "the bearer token is not an API key of this server")
        }
        return try await oidc.principal(forToken: token)
    }

    /// What `authenticate` would answer, when it can be known without waiting: from the API keys'
    /// current copy or a token verified earlier. Nil when `authenticate` must run (a stale copy,
    /// an unverified token) or would refuse: the caller then takes the path that runs it, which
    /// also says why it refuses. For the stored-frame fast path, which answers on the event loop.
    public func cachedPrincipal(authorization: String?) -> Principal? {
        let enabled: Bool
        if oidc != nil || lock.withLock({ wasEnabled }) {
            enabled = true
        } else if let active = apiKeys.cachedHasActiveKeys() {
            enabled = active
        } else {
            return nil
        }
        guard enabled else { return Self.anonymous }
        guard let token = try? Self.bearerToken(authorization) else { return nil }
        if token.hasPrefix(APIKey.prefix) { return apiKeys.cachedPrincipal(forKey: token) }
        return oidc?.cachedPrincipal(forToken: token)
    }

    /// The token of `Authorization: Bearer TOKEN`; the scheme is case-insensitive (RFC 9110 §11.1).
    static func bearerToken(_ authorization: String?) throws(AuthenticationFailure) -> String {
        guard let authorization else {
            throw AuthenticationFailure(.missingCredentials, reason: "no-credentials", "this route needs Authorization: Bearer <API key or token>")
        }
        let parts = authorization.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw AuthenticationFailure(.missingCredentials, reason: "not-bearer", "only Authorization: Bearer is accepted")
        }
        return parts[1].trimmingCharacters(in: .whitespaces)
    }
}
