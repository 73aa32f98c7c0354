import Foundation
import ImageSetStore
import Logging
import PostgresNIO

/// The index on PostgreSQL: the same `ImageSetIndex` the embedded SQLite index fills, for replicas
/// sharing one database (Docs/store.md, "PostgreSQL index"). Every method behaves as SQLiteIndex's
/// does (the same suite runs against both); what differs is how writers coordinate: SQLite has one
/// writer per folder, here several processes write at once, so each write transaction takes
/// PostgreSQL advisory locks (see `lockStudies`) instead of relying on a process-local mutex.
public final class PostgresIndex: Sendable {
    let client: PostgresClient
    let logger: Logger
    /// Drives the client's connection pool (`PostgresClient.run()`) for the index's lifetime.
    let runner: Task<Void, Never>

    init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
        // Immediate: the pool is running before the first lease (else PostgresNIO warns that it is not).
        runner = Task.immediate { await client.run() }
    }

    /// Connects to `url` (libpq style: `postgresql://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=disable|prefer|require]`)
    /// and migrates the database to this binary's schema. The password is `password`, else the URL's,
    /// else `PGPASSWORD`. Refuses a database whose schema is newer than this binary knows.
    public static func connect(url: String, password: String? = nil, logger: Logger) async throws -> PostgresIndex {
        let (config, sslMode) = try configuration(url: url, password: password ?? ProcessInfo.processInfo.environment["PGPASSWORD"])
        try await probe(config, sslMode: sslMode, url: url, logger: logger)
        let index = PostgresIndex(client: PostgresClient(configuration: config, backgroundLogger: logger), logger: logger)
        do {
            try await index.migrate()
        } catch {
            await index.close()
            throw error
        }
        return index
    }

    /// Closes the pool's connections; the index is unusable afterwards.
    public func close() async {
        runner.cancel()
        await runner.value
    }

    deinit { runner.cancel() }

    /// The client configuration a libpq-style URL describes.
    enum SSLMode { case disable, prefer, require }

    static func configuration(url: String, password: String?) throws -> (PostgresClient.Configuration, SSLMode) {
        guard let c = URLComponents(string: url), let scheme = c.scheme, ["postgresql", "postgres"].contains(scheme.lowercased()) else {
            throw PostgresIndexError("the index URL \(redacted(url)) is not a PostgreSQL URL; expected postgresql://USER@HOST:PORT/DATABASE")
        }
        guard let host = c.host, !host.isEmpty else {
            throw PostgresIndexError("the index URL \(redacted(url)) names no host; expected postgresql://USER@HOST:PORT/DATABASE")
        }
        guard let user = c.user, !user.isEmpty else {
            throw PostgresIndexError("the index URL \(redacted(url)) names no user; expected postgresql://USER@HOST:PORT/DATABASE")
        }
        if let port = c.port, !(1...65535).contains(port) {
            throw PostgresIndexError("the index URL \(redacted(url)) has port \(port), outside 1-65535")
        }
        let path = c.path.hasPrefix("/") ? String(c.path.dropFirst()) : c.path
        let database = path.isEmpty ? user : (path.removingPercentEncoding ?? path)
        let query = Dictionary((c.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { $1 })
        let tls: PostgresClient.Configuration.TLS, mode: SSLMode
        switch query["sslmode"] ?? "prefer" {
        case "disable": (tls, mode) = (.disable, .disable)
        case "prefer", "allow": (tls, mode) = (.prefer(.makeClientConfiguration()), .prefer)
        case "require", "verify-ca", "verify-full": (tls, mode) = (.require(.makeClientConfiguration()), .require)
        case let other: throw PostgresIndexError("the index URL's sslmode \(other) is not one of disable, prefer, require")
        }
        var config = PostgresClient.Configuration(host: host, port: c.port ?? 5432, username: user.removingPercentEncoding ?? user,
                                                  password: password ?? c.password?.removingPercentEncoding, database: database, tls: tls)
        config.options.maximumConnections = 20
        // The commit and the audit append read their heads FOR UPDATE and rely on READ COMMITTED's
        // newest committed version; a role or database set to REPEATABLE READ or SERIALIZABLE would
        // make a replica's append fail (SQLSTATE 40001). Set per connection: no statement per transaction.
        config.options.additionalStartupParameters = [("default_transaction_isolation", "read committed")]
        // plan_cache_mode stays `auto`: forcing generic plans would reach postgres-nio's unnamed
        // statements too (they are cached plans, not one-shot ones), and QIDO's LIKE prefixes,
        // ANY lists and LIMITs need plans made for their values. The commit's named statements
        // (PostgresIndex+Prepared.swift) get their generic plan after five custom ones per connection.
        return (config, mode)
    }

    /// One connection before the pool: a wrong host, port, password or database fails here, with the
    /// server's reason, where the pool would keep retrying and a start-up would wait.
    static func probe(_ config: PostgresClient.Configuration, sslMode: SSLMode, url: String, logger: Logger) async throws {
        let tls: PostgresConnection.Configuration.TLS
        switch sslMode {
        case .disable: tls = .disable
        case .prefer: tls = .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
        case .require: tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
        }
        var probe = PostgresConnection.Configuration(host: config.host ?? "localhost", port: config.port ?? 5432, username: config.username,
                                                     password: config.password, database: config.database, tls: tls)
        probe.options.connectTimeout = .seconds(10)
        do {
            let conn = try await PostgresConnection.connect(configuration: probe, id: 0, logger: logger)
            try await conn.close()
        } catch {
            throw PostgresIndexError("cannot open the PostgreSQL index at \(redacted(url)): \(describe(error))")
        }
    }

    /// The URL without its password, for error messages.
    static func redacted(_ url: String) -> String {
        guard var c = URLComponents(string: url), c.password != nil else { return url }
        c.password = "***"
        return c.string ?? url
    }

    // MARK: Locks

    /// Advisory locks, in the two-int key space (apart from studies' bigint keys): "TESR" and a role.
    static let lockClass: Int32 = 0x5445_5352
    enum LockRole: Int32 { case migration = 0, writers = 1 }
    enum WriterLocks: PreparedTag { static let name = "writer_locks" }

    /// Serialises writers of the same studies across processes: a shared lock on "writers" (which
    /// pruning every image set takes exclusively), then one transaction lock per study, in key order,
    /// so that two transactions never wait for each other in a cycle. Held until the transaction ends.
    /// One statement (it was two round trips of the commit's twelve): the CASE takes the writers lock
    /// first and only then evaluates its ELSE, the study locks (an InitPlan, evaluated where it is
    /// first referenced; PostgreSQL's CASE evaluates only the branch it takes, §4.2.14).
    /// It also says, for the transaction, which schema this writer maintains (`writerSchemaCheck`).
    static func lockStudies(_ studies: some Sequence<String>, on conn: PostgresConnection, logger: Logger) async throws {
        let list = Array(Set(studies))
        _ = try await rows("""
            SELECT CASE WHEN pg_advisory_xact_lock_shared(\(lockClass), \(LockRole.writers.rawValue)) IS NULL THEN -1 ELSE
                (SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT DISTINCT hashtextextended(s, 0) AS k FROM unnest(\(list)::text[]) AS s ORDER BY k) AS keys)
            END AS locked, set_config('tessera.writer_schema', \(String(knownVersion)), true) AS writer_schema
            """, prepared: WriterLocks.self, on: conn, logger: logger)
    }

    // MARK: Helpers

    static func rows(_ query: PostgresQuery, on conn: PostgresConnection, logger: Logger) async throws -> [PostgresRandomAccessRow] {
        var out: [PostgresRandomAccessRow] = []
        for try await row in try await conn.query(query, logger: logger) { out.append(row.makeRandomAccess()) }
        return out
    }

    func rows(_ query: PostgresQuery) async throws -> [PostgresRandomAccessRow] {
        do {
            return try await client.withConnection { try await Self.rows(query, on: $0, logger: logger) }
        } catch {
            throw Self.clear(error)
        }
    }

    func read<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await client.withConnection { try await body($0) }
        } catch {
            throw Self.clear(error)
        }
    }

    /// `onConnectionsLoop`: the transaction runs with the connection's event loop as its task executor
    /// (`EventLoopTaskExecutor`), for transactions of several short statements (a commit, an audit
    /// append); not for long loops over results, which would hold up that loop's other connections.
    @discardableResult
    func write<T: Sendable>(onConnectionsLoop: Bool = false, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        do {
            guard onConnectionsLoop else { return try await client.withTransaction(logger: logger) { try await body($0) } }
            let logger = self.logger
            return try await client.withConnection { conn in
                try await withTaskExecutorPreference(EventLoopTaskExecutor.of(conn.eventLoop)) {
                    try await conn.withTransaction(logger: logger) { try await body($0) }
                }
            }
        } catch let error as PostgresTransactionError {
            // The closure's own error says what went wrong; the wrapper only says where.
            throw Self.clear(error.closureError ?? error.commitError ?? error.beginError ?? error)
        } catch {
            throw Self.clear(error)
        }
    }

    /// PSQLError's description is deliberately generic; the server's message and SQLSTATE say what
    /// happened without the query's arguments (patient data).
    static func clear(_ error: any Error) -> any Error {
        guard let psql = error as? PSQLError else { return error }
        return PostgresIndexError(describe(psql))
    }

    static func describe(_ error: any Error) -> String {
        guard let psql = error as? PSQLError else { return "\(error)" }
        if let info = psql.serverInfo {
            return "PostgreSQL: \(info[.message] ?? "error")" + (info[.detail].map { " (\($0))" } ?? "") + " [SQLSTATE \(info[.sqlState] ?? "?")]"
        }
        return "PostgreSQL: \(psql.code)" + (psql.underlying.map { ": \($0)" } ?? "")
    }

    static func newImageSetID() -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<2).map { _ in
            let hex = String(g.next() as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }.joined()
    }

    /// The SQLSTATE of a server error (`53100` disk full, `40P01` deadlock…), if it is one.
    static func sqlState(_ error: any Error) -> String? {
        (error as? PSQLError)?.serverInfo?[.sqlState]
    }
}

public struct PostgresIndexError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension PostgresRandomAccessRow {
    func get<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws -> T {
        try self[column].decode(T.self)
    }
}
