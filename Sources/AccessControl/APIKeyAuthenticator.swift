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
    private var lastReadFailed = false

    public init(index: any AccessKeyIndex, lifetime: TimeInterval, logger: Logger = Logger(label: "tessera.auth")) {
        self.index = index
        self.lifetime = lifetime
        self.logger = logger
    }

    /// The unrevoked keys by hash, re-read when stale, and whether the last read failed. A failed read
    /// leaves no key valid and counts as keys existing (fail closed: authentication stays on).
    func current() async -> (keys: [[UInt8]: APIKeyRecord], failed: Bool) {
        let now = Date()
        if let cached = fresh(now: now) { return cached }
        // Concurrent requests that find the copy stale may each re-read it; the last one read wins.
        var fresh: [[UInt8]: APIKeyRecord] = [:]
        var failed = false
        do {
            fresh = Dictionary(try await index.activeAPIKeys().map { ($0.keyHash, $0) }, uniquingKeysWith: { a, _ in a })
        } catch {
            failed = true
            logger.error("cannot read the API keys; no key authenticates until they can be read", metadata: ["error": "\(error)"])
        }
        lock.withLock {
            byHash = fresh
            lastReadFailed = failed
            loadedAt = now
        }
        return (fresh, failed)
    }

    /// The copy while it is younger than `lifetime`; nil when it must be re-read.
    func fresh(now: Date = Date()) -> (keys: [[UInt8]: APIKeyRecord], failed: Bool)? {
        lock.withLock {
            if let loadedAt, now.timeIntervalSince(loadedAt) < lifetime, now >= loadedAt { return (byHash, lastReadFailed) }
            return nil
        }
    }

    /// `hasActiveKeys` as the current copy answers it; nil when the copy must be re-read first.
    public func cachedHasActiveKeys() -> Bool? {
        fresh().map { $0.failed || !$0.keys.isEmpty }
    }

    /// Whether any unrevoked key exists (as of the cached copy), or the keys cannot be read: an
    /// index that is away for a moment must not turn authentication off.
    public func hasActiveKeys() async -> Bool {
        let (keys, failed) = await current()
        return failed || !keys.isEmpty
    }

    public func principal(forKey key: String) async throws(AuthenticationFailure) -> Principal {
        try Self.principal(forKey: key, in: await current().keys)
    }

    /// The principal of `key` from the current copy, nil when it must be re-read first or the key
    /// is not in it (the caller then asks `principal(forKey:)`, which says why).
    public func cachedPrincipal(forKey key: String) -> Principal? {
        guard let keys = fresh()?.keys else { return nil }
        return try? Self.principal(forKey: key, in: keys)
    }

    static func principal(forKey key: String, in keys: [[UInt8]: APIKeyRecord]) throws(AuthenticationFailure) -> Principal {
        let digest = APIKey.hash(key)
        // The dictionary compares digests with ==, which may stop at the first differing byte; that
        // can only tell an attacker about the SHA-256 of the key they sent, which leads to no valid
        // key (finding one means inverting SHA-256). The final check is constant-time all the same.
        guard let record = keys[digest], APIKey.constantTimeEqual(record.keyHash, digest) else {
            throw AuthenticationFailure(.invalidToken, reason: "unknown-or-revoked-key", "the API key is unknown or revoked")
        }
        return Principal(name: record.name, roles: [record.role], kind: .apiKey)
    }
}
