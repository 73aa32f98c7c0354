import Foundation
import ImageSetStore

// The AccessControl layer: authentication (API keys, OIDC JWTs) and the route policy. It sits
// between the store, which keeps key hashes and the audit trail, and DICOMweb, which asks it who a
// request comes from and whether that principal may do what the route does.

/// How requests are authenticated (Docs/security.md). Authentication is on when an OIDC issuer is
/// configured or any unrevoked API key exists; otherwise every request is an anonymous admin, and
/// `tessera serve` listens on loopback only.
public struct AuthenticationConfiguration: Sendable {
    public var oidc: OIDCConfiguration?
    /// How long the server keeps its copy of the API keys: a key created or revoked with
    /// `tessera keys` takes effect within this bound.
    public var apiKeyCacheLifetime: TimeInterval = 5
    public init() {}
}

/// Why a request was refused, with what RFC 6750 §3 says to answer: 401 for missing or invalid
/// credentials, 403 for valid ones that lack the role.
public struct AuthenticationFailure: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// No `Authorization: Bearer` at all: 401 with a bare challenge (RFC 6750 §3.1: no error code).
        case missingCredentials = "missing_credentials"
        /// 401, `error="invalid_token"`.
        case invalidToken = "invalid_token"
        /// 403, `error="insufficient_scope"`.
        case insufficientScope = "insufficient_scope"
    }
    public let kind: Kind
    /// A short, stable word for logs and the audit trail: "expired", "wrong-issuer", "revoked-or-unknown-key", ...
    public let reason: String
    public let description: String

    public init(_ kind: Kind, reason: String, _ description: String) {
        self.kind = kind
        self.reason = reason
        self.description = description
    }

    public var status: Int { kind == .insufficientScope ? 403 : 401 }

    /// The `WWW-Authenticate` value (RFC 6750 §3). The description is a quoted-string, so `"` and
    /// `\` are replaced and it is kept to visible ASCII.
    public var challenge: String {
        guard kind != .missingCredentials else { return "Bearer realm=\"tessera\"" }
        let text = String(description.unicodeScalars.map { s -> Character in
            (0x20...0x7E).contains(s.value) && s != "\"" && s != "\\" ? Character(s) : "'"
        }.prefix(200))
        return "Bearer realm=\"tessera\", error=\"\(kind.rawValue)\", error_description=\"\(text)\""
    }
}
