import Crypto
import Foundation

/// An API key as the index keeps it: never the key itself, only its SHA-256.
public struct APIKeyRecord: Sendable, Hashable, Codable {
    public var name: String
    public var role: Role
    /// SHA-256 of the key's UTF-8 bytes.
    public var keyHash: [UInt8]
    public var created: Date
    public var revoked: Date?

    public init(name: String, role: Role, keyHash: [UInt8], created: Date, revoked: Date? = nil) {
        self.name = name
        self.role = role
        self.keyHash = keyHash
        self.created = created
        self.revoked = revoked
    }
}

public struct AccessKeyError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Where API keys and the gateways' stored-instance records live: the index (SQLiteIndex; a
/// PostgreSQL index fills the same protocol). Methods say what they are for, not how they store it.
public protocol AccessKeyIndex: Sendable {
    /// Adds a key; fails when a key of that name exists (revoked or not: a name means one key, in the audit trail too).
    /// With `audit`, a key-create record commits in the same transaction.
    func createAPIKey(_ record: APIKeyRecord, audit: AuditContext?) async throws
    /// Every key, revoked ones included, by name.
    func apiKeys() async throws -> [APIKeyRecord]
    /// The keys that authenticate: not revoked.
    func activeAPIKeys() async throws -> [APIKeyRecord]
    /// Revokes the key; false when no unrevoked key has that name.
    /// With `audit`, a key-revoke record commits in the same transaction.
    func revokeAPIKey(name: String, at: Date, audit: AuditContext?) async throws -> Bool
    /// Records that `principal` stored these instances (its STOW-RS response referenced them), so
    /// that a gateway may read back what it stored and nothing else.
    func recordStoredInstances(by principal: Principal, sopInstanceUIDs: [String]) async throws
    /// Whether `principal` stored the instance (see `recordStoredInstances`).
    func hasStored(_ principal: Principal, sopInstanceUID: String) async throws -> Bool
}

extension AccessKeyIndex {
    public func createAPIKey(_ record: APIKeyRecord) async throws { try await createAPIKey(record, audit: nil) }
    public func revokeAPIKey(name: String, at date: Date) async throws -> Bool { try await revokeAPIKey(name: name, at: date, audit: nil) }
}

/// API keys: generation, hashing and comparison.
public enum APIKey {
    /// Keys start with this, so that they are told apart from JWTs (which have two dots) and
    /// found by secret scanners.
    public static let prefix = "tsk_"

    /// A new key: 256 random bits from the system's CSPRNG, base64url without padding.
    public static func generate() -> String { randomToken(prefix: prefix) }

    /// `prefix` and 256 random bits from the system's CSPRNG, base64url without padding (also webhook secrets).
    public static func randomToken(prefix: String) -> String {
        var g = SystemRandomNumberGenerator()
        let bytes = (0..<4).flatMap { _ in withUnsafeBytes(of: g.next() as UInt64) { Array($0) } }
        return prefix + Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// SHA-256 of the key. A plain, unsalted, fast hash is enough here, unlike for passwords: a key
    /// is 256 random bits, so there is no dictionary to try and no feasible brute force of the hash,
    /// and a salt or a slow KDF would only cost CPU on every request.
    public static func hash(_ key: String) -> [UInt8] { Array(SHA256.hash(data: Array(key.utf8))) }

    /// Compares two digests in time that depends only on their lengths, not on where they differ.
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in a.indices { diff |= a[i] ^ b[i] }
        return diff == 0
    }

    /// Names are what audit records and `keys list` show: 1–64 of letters, digits, `.`, `_`, `-`.
    public static func validateName(_ name: String) throws {
        let ok = (1...64).contains(name.utf8.count) && name.utf8.allSatisfy {
            (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) || $0 == 0x2E || $0 == 0x5F || $0 == 0x2D
        }
        guard ok else { throw AccessKeyError("a key name is 1 to 64 letters, digits, '.', '_' or '-'") }
    }
}

extension Datastore {
    /// The API keys of a data folder (`openIndex`).
    public static func openAccessKeys(folder: String, create: Bool) throws -> any AccessKeyIndex {
        try openIndex(folder: folder, create: create)
    }
}
