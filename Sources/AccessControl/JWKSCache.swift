import AsyncHTTPClient
import Foundation
import JWTKit
import Logging
import NIOCore

/// One signing key of the provider's JWKS, as a jwt-kit collection holding it alone, so that the
/// key a token is checked with is exactly the one its `kid` names (jwt-kit falls back to a default
/// key for an unknown kid; Tessera never does).
struct VerificationKey: Sendable {
    let kid: String?
    let kty: String
    let crv: String?
    let alg: String?
    let keys: JWTKeyCollection

    /// Whether a token header's `alg` fits this key: its type and curve, and its `alg` when the JWK names one.
    func accepts(_ tokenAlg: String) -> Bool {
        if let alg, alg != tokenAlg { return false }
        switch tokenAlg {
        case "RS256": return kty == "RSA"
        case "ES256": return kty == "EC" && crv == "P-256"
        case "EdDSA": return kty == "OKP" && crv == "Ed25519"
        default: return false
        }
    }
}

/// The provider's key set, from a file or a URL: read on first use, re-read when older than
/// `lifetime`, and re-read at most once per `minimumRefetchInterval` when a token names a key id
/// it lacks (rotation). Reads in flight are shared.
actor JWKSCache {
    let source: OIDCConfiguration.JWKSSource
    let lifetime: TimeInterval
    let minimumRefetchInterval: TimeInterval
    let logger: Logger
    private var keys: [VerificationKey] = []
    private var loadedAt: Date?
    private var lastAttempt: Date?
    private var inFlight: Task<Void, Never>?
    /// How many times the set was read (tests check the rate limit with it).
    private(set) var fetchCount = 0

    init(source: OIDCConfiguration.JWKSSource, lifetime: TimeInterval, minimumRefetchInterval: TimeInterval, logger: Logger) {
        self.source = source
        self.lifetime = lifetime
        self.minimumRefetchInterval = minimumRefetchInterval
        self.logger = logger
    }

    /// The key a token's `kid` names; with no `kid`, the set's only key. Nil when there is none
    /// even after the one re-read the rate limit allows.
    func key(kid: String?) async -> VerificationKey? {
        if loadedAt.map({ Date().timeIntervalSince($0) >= lifetime }) ?? true { await refresh(force: false) }
        if let k = find(kid) { return k }
        await refresh(force: true)
        return find(kid)
    }

    private func find(_ kid: String?) -> VerificationKey? {
        guard let kid else { return keys.count == 1 ? keys[0] : nil }
        return keys.first { $0.kid == kid }
    }

    /// Reads the set unless a read was attempted less than `minimumRefetchInterval` ago (`force`:
    /// for an unknown kid) or it is still fresh. A failed read keeps the keys already known.
    private func refresh(force: Bool) async {
        if let inFlight { await inFlight.value; return }
        if let lastAttempt, Date().timeIntervalSince(lastAttempt) < minimumRefetchInterval { return }
        if !force, let loadedAt, Date().timeIntervalSince(loadedAt) < lifetime { return }
        lastAttempt = Date()
        let task = Task { await self.load() }
        inFlight = task
        await task.value
        inFlight = nil
    }

    /// Reads the set now; throws when it cannot be read or holds no usable signing key
    /// (`tessera serve` calls this at start-up to refuse a bad configuration).
    func loadNow() async throws {
        lastAttempt = Date()
        try await install(try await Self.read(source))
    }

    private func load() async {
        do { try await install(try await Self.read(source)) } catch {
            logger.error("cannot read the OIDC key set (JWKS); keeping the keys known so far",
                         metadata: ["jwks": "\(source)", "error": "\(error)"])
        }
    }

    private func install(_ data: Data) async throws {
        let parsed = try await Self.parse(data)
        guard !parsed.isEmpty else { throw JWKSError("the JWKS holds no RS256, ES256 or EdDSA signing key") }
        keys = parsed
        loadedAt = Date()
        fetchCount += 1
    }

    static func read(_ source: OIDCConfiguration.JWKSSource) async throws -> Data {
        switch source {
        case .file(let path):
            return try Data(contentsOf: URL(fileURLWithPath: path))
        case .url(let url):
            let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
            guard response.status == .ok else { throw JWKSError("GET \(url): HTTP \(response.status.code)") }
            return Data(try await response.body.collect(upTo: 1 << 20).readableBytesView)
        }
    }

    /// The signing keys of a JWKS document. Symmetric (`oct`) keys, encryption keys (`use: enc`)
    /// and key types or algorithms jwt-kit cannot read are skipped, never fatal: providers list
    /// keys Tessera has no use for.
    static func parse(_ data: Data) async throws -> [VerificationKey] {
        guard let doc = try JSONSerialization.jsonObject(with: data) as? [String: Any], let list = doc["keys"] as? [[String: Any]] else {
            throw JWKSError("the JWKS is not a JSON object with a \"keys\" array")
        }
        var out: [VerificationKey] = []
        for entry in list {
            guard let kty = entry["kty"] as? String, ["RSA", "EC", "OKP"].contains(kty), (entry["use"] as? String) != "enc" else { continue }
            if let alg = entry["alg"] as? String, !["RS256", "ES256", "EdDSA"].contains(alg) { continue }
            guard var jwk = try? JSONDecoder().decode(JWK.self, from: JSONSerialization.data(withJSONObject: entry)) else { continue }
            let kid = entry["kid"] as? String
            if jwk.keyIdentifier == nil { jwk.keyIdentifier = JWKIdentifier(string: "tessera-only-key") }
            let collection = JWTKeyCollection()
            guard (try? await collection.add(jwk: jwk, isDefault: true)) != nil else { continue }
            out.append(VerificationKey(kid: kid, kty: kty, crv: entry["crv"] as? String, alg: entry["alg"] as? String, keys: collection))
        }
        return out
    }
}

struct JWKSError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
