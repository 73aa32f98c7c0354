import Foundation
import Synchronization
import ImageSetStore
import ObjectStorage
import PostgresIndex
import PostgresNIO
#if canImport(Glibc)
import Glibc
#endif

/// The backends a test run asks for, from `TESSERA_TEST_INDEX` and `TESSERA_TEST_BLOBS`.
public enum TestBackends {
    /// `TESSERA_TEST_INDEX=postgresql` runs the store's tests on PostgreSQL (on `TESSERA_TEST_POSTGRES`).
    public static var indexIsPostgres: Bool { ProcessInfo.processInfo.environment["TESSERA_TEST_INDEX"] == "postgresql" }

    /// A datastore on the backends the run asks for: on PostgreSQL, a fresh database of its own.
    /// Blobs stay files in `folder` (the S3 store has tests of its own, and the replica tests run
    /// both together); opening the same folder again reopens the same database, as a restart would.
    public static func datastore(folder: String, diskReserve: Int = 0, auditBufferCapacity: Int = 10_000) async throws -> Datastore {
        guard indexIsPostgres else { return try Datastore(folder: folder, diskReserve: diskReserve, auditBufferCapacity: auditBufferCapacity) }
        let known = databases.withLock { $0[folder] }
        let url: String
        if let known { url = known } else {
            url = try await freshPostgresDatabase()
            databases.withLock { $0[folder] = url }
        }
        let index = try await postgresIndex(url: url)
        return try await Datastore.open(folder: folder, index: index, blobs: try FileBlobStore(root: folder + "/blobs"), shared: false,
                                        diskReserve: diskReserve, auditBufferCapacity: auditBufferCapacity)
    }

    /// The database each test folder's store was opened on.
    static let databases = Mutex<[String: String]>([:])

    public static let logger = Logger(label: "tessera.test.postgres")

    /// The test cluster's URL (`Tools/services/postgres start DIR` prints it; Tools/test sets it).
    public static func postgresURL() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["TESSERA_TEST_POSTGRES"], !url.isEmpty else {
            throw PostgresIndexError("TESSERA_TEST_POSTGRES is not set: these tests need PostgreSQL; run them through Tools/test, "
                                     + "or `eval $(Tools/services/postgres start /tmp/tessera-pg)` first")
        }
        return url
    }

    public static func postgresIndex(url: String) async throws -> PostgresIndex {
        try await PostgresIndex.connect(url: url, logger: logger)
    }

    /// Creates an empty database with a random name on the test cluster and returns its URL.
    /// Databases this process made more than `keptDatabases` creations ago, and those of test
    /// processes no longer running, are dropped in the background: a whole suite would otherwise
    /// leave hundreds.
    public static func freshPostgresDatabase() async throws -> String {
        let url = try postgresURL()
        let pid = ProcessInfo.processInfo.processIdentifier
        let name = "tessera_test_\(pid)_\(UUID().uuidString.prefix(8).lowercased())"
        try await withAdminConnection(url: url) { conn in
            try await conn.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \"\(name)\""), logger: logger)
        }
        // Off the test's path: a DROP DATABASE takes a second or more (a checkpoint).
        Task.detached { try? await dropStaleDatabases(url: url, pid: pid) }
        return replacingDatabase(in: url, with: name)
    }

    static let keptDatabases = 8

    static func dropStaleDatabases(url: String, pid: Int32) async throws {
        try await withAdminConnection(url: url) { conn in
            var mine: [String] = [], dead: [String] = []
            for try await (datname,) in try await conn.query("""
                SELECT datname FROM pg_database WHERE datname LIKE 'tessera\\_test\\_%' ORDER BY oid
                """, logger: logger).decode((String,).self) {
                let parts = datname.split(separator: "_")
                guard parts.count == 4, let owner = Int32(parts[2]) else { continue }
                if owner == pid { mine.append(datname) } else if kill(owner, 0) != 0 && errno == ESRCH { dead.append(datname) }
            }
            for db in dead + mine.dropLast(keptDatabases) {
                try await conn.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \"\(db)\" WITH (FORCE)"), logger: logger)
            }
        }
    }

    /// Runs `sql` on the database at `url` (tests that reach under the index).
    public static func execute(_ sql: String, url: String) async throws {
        try await withAdminConnection(url: url) { conn in
            try await conn.query(PostgresQuery(unsafeSQL: sql), logger: logger)
        }
    }

    /// One connection of its own to the database at `url`, closed after `body`.
    public static func withConnection(url: String, _ body: (PostgresConnection) async throws -> Void) async throws {
        try await withAdminConnection(url: url, body)
    }

    static func withAdminConnection(url: String, _ body: (PostgresConnection) async throws -> Void) async throws {
        guard let c = URLComponents(string: url), let host = c.host, let user = c.user else {
            throw PostgresIndexError("TESSERA_TEST_POSTGRES=\(url) is not a postgresql://USER@HOST:PORT/DB URL")
        }
        let db = c.path.hasPrefix("/") ? String(c.path.dropFirst()) : c.path
        let config = PostgresConnection.Configuration(host: host, port: c.port ?? 5432, username: user,
                                                      password: c.password ?? ProcessInfo.processInfo.environment["PGPASSWORD"],
                                                      database: db.isEmpty ? user : db, tls: .disable)
        let conn = try await PostgresConnection.connect(configuration: config, id: 1, logger: logger)
        do {
            try await body(conn)
            try await conn.close()
        } catch {
            try? await conn.close()
            throw error
        }
    }

    static func replacingDatabase(in url: String, with name: String) -> String {
        guard var c = URLComponents(string: url) else { return url }
        c.path = "/" + name
        return c.string ?? url
    }
}
