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
        guard let authorization else {
            throw AuthenticationFailure(.missingCredentials, reason: "no-credentials", "this route needs Authorization: Bearer <API key or token>")
        }
        // The scheme is case-insensitive (RFC 9110 §11.1).
        let parts = authorization.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw AuthenticationFailure(.missingCredentials, reason: "not-bearer", "only Authorization: Bearer is accepted")
        }
        let token = parts[1].trimmingCharacters(in: .whitespaces)
        if token.hasPrefix(APIKey.prefix) { return try await apiKeys.principal(forKey: token) }
        guard let oidc else {
            throw AuthenticationFailure(.invalidToken, reason: "unknown-or-revoked-key", "the bearer token is not an API key of this server")
        }
        return try await oidc.principal(forToken: token)
    }
}
