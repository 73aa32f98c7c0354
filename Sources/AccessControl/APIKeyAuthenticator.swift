import Foundation
import ImageSetStore
import Logging

/// Authenticates API keys against the index's key table, through a copy of the unrevoked keys
/// that is re-read when older than `lifetime`. So a request costs a SHA-256 and a dictionary
/// lookup, never a query, and a key revoked by `tessera keys revoke` (another process) stops
/// working at most `lifetime` later.
public final class APIKeyAuthenticator: @unchecked Sendable {
    let index: any AccessKeyIndex
    let lifetime: TimeInterval
    let logger: Logger
    private let lock = NSLock()
    // Guarded by `lock`.
    private var byHash: [[UInt8]: APIKeyRecord] = [:]
    private var loadedAt: Date?

    public init(index: any AccessKeyIndex, lifetime: TimeInterval, logger: Logger = Logger(label: "tessera.auth")) {
        self.index = index
        self.lifetime = lifetime
        self.logger = logger
    }

    /// The unrevoked keys by hash, re-read when stale. A failed read leaves no key valid (fail closed).
    func current() -> [[UInt8]: APIKeyRecord] {
        lock.lock()
        defer { lock.unlock() }
        let now = Date()
        if let loadedAt, now.timeIntervalSince(loadedAt) < lifetime, now >= loadedAt { return byHash }
        do {
            byHash = Dictionary(try index.activeAPIKeys().map { ($0.keyHash, $0) }, uniquingKeysWith: { a, _ in a })
        } catch {
            logger.error("cannot read the API keys; no key authenticates until they can be read", metadata: ["error": "\(error)"])
            byHash = [:]
        }
        loadedAt = now
        return byHash
    }

    /// Whether any unrevoked key exists (as of the cached copy).
    public var hasActiveKeys: Bool { !current().isEmpty }

    public func principal(forKey key: String) throws(AuthenticationFailure) -> Principal {
        let digest = APIKey.hash(key)
        // The dictionary compares digests with ==, which may stop at the first differing byte; that
        // can only tell an attacker about the SHA-256 of the key they sent, which leads to no valid
        // key (finding one means inverting SHA-256). The final check is constant-time all the same.
        guard let record = current()[digest], APIKey.constantTimeEqual(record.keyHash, digest) else {
            throw AuthenticationFailure(.invalidToken, reason: "unknown-or-revoked-key", "the API key is unknown or revoked")
        }
        return Principal(name: record.name, roles: [record.role], kind: .apiKey)
    }
}
