import Foundation

/// An OpenID Connect provider whose access tokens Tessera accepts (Docs/security.md, "OIDC").
public struct OIDCConfiguration: Sendable {
    public enum JWKSSource: Sendable, Equatable {
        case file(String)
        case url(String)

        /// `https://…` and `http://…` are URLs, anything else a file path.
        public init(_ text: String) {
            let lower = text.lowercased()
            self = lower.hasPrefix("https://") || lower.hasPrefix("http://") ? .url(text) : .file(text)
        }
    }

    /// `iss` must equal this exactly.
    public var issuer: String
    /// `aud` (a string or an array) must contain this.
    public var audience: String
    public var jwks: JWKSSource
    /// Where the roles are in the claims: a dotted path (`roles`; Keycloak: `realm_access.roles`).
    /// The value is an array of strings or one space-separated string.
    public var rolesClaim = "roles"
    /// Role values are `gateway`, `viewer`, `admin` after this prefix is removed (e.g. `tessera-`);
    /// values without it are ignored.
    public var rolePrefix = ""
    /// Tolerance for `exp` and `nbf` against this server's clock.
    public var clockSkew: TimeInterval = 60
    /// The key set is re-read when older than this.
    public var jwksLifetime: TimeInterval = 600
    /// At most one re-read per this interval when a token names a key id the set lacks (key
    /// rotation), so a stream of made-up key ids cannot make Tessera hammer the provider.
    public var jwksMinimumRefetchInterval: TimeInterval = 30
    /// A verified token is remembered (by its SHA-256) for at most this long, and never past its
    /// `exp`, so that a viewer fetching hundreds of frames is not charged a signature check for each.
    public var verifiedTokenLifetime: TimeInterval = 60

    public init(issuer: String, audience: String, jwks: JWKSSource) {
        self.issuer = issuer
        self.audience = audience
        self.jwks = jwks
    }
}

/// Any JSON value, for claims whose place (the roles claim path) is configured.
enum JSONValue: Decodable, Sendable {
    case string(String), number(Double), bool(Bool), array([JSONValue]), object([String: JSONValue]), null

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    var string: String? { if case .string(let s) = self { return s }; return nil }
    var number: Double? { if case .number(let n) = self { return n }; return nil }

    /// The value at a dotted path (`realm_access.roles`).
    func at(path: String) -> JSONValue? {
        path.split(separator: ".").reduce(Optional(self)) { v, key in v?[String(key)] }
    }

    /// A string or an array of strings, as a list, each string whole (`aud`, RFC 7519 §4.1.3).
    var values: [String] {
        switch self {
        case .string(let s): [s]
        case .array(let a): a.compactMap(\.string)
        default: []
        }
    }

    /// A string or an array of strings, as a list (space-separated strings split, as `scope` is).
    var strings: [String] {
        switch self {
        case .string(let s): s.split(separator: " ").map(String.init)
        case .array(let a): a.compactMap(\.string)
        default: []
        }
    }
}
