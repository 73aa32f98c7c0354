import Foundation
import PostgresNIO
import Synchronization

/// Statements of a fixed text that every commit sends, prepared once per connection by name:
/// PostgreSQL parses and plans an unnamed statement on every call, and the commit's multi-row
/// statements are long. Each is written as an ordinary interpolated `PostgresQuery` (its text is the
/// same on every call, its binds differ); its first use records the text under the tag's name.
protocol PreparedTag {
    static var name: String { get }
}

extension PostgresIndex {
    /// The texts of the prepared statements, by name, as first used.
    static let preparedTexts = Mutex<[String: String]>([:])
    /// (connection id, statement name) pairs whose prepared execution failed once. postgres-nio keeps
    /// a failed preparation's error and returns it on every later call on that connection (a
    /// statement_timeout during a migration's lock, a cancelled backend), so such a pair runs unnamed
    /// from then on. An execution error (a constraint) marks it too: that costs planning, not results.
    static let unpreparable = Mutex<Set<Unpreparable>>([])
    static let unpreparableCapacity = 4096
    struct Unpreparable: Hashable {
        var connection: Int
        var name: String
    }

    struct Prepared<Tag: PreparedTag>: PostgresPreparedStatement {
        typealias Row = PostgresRandomAccessRow
        static var name: String { "tessera_" + Tag.name }
        static var sql: String { PostgresIndex.preparedTexts.withLock { $0[Tag.name] } ?? "" }
        let binds: PostgresBindings
        func makeBindings() -> PostgresBindings { binds }
        func decodeRow(_ row: PostgresRow) -> PostgresRandomAccessRow { row.makeRandomAccess() }
    }

    /// Runs `query` as the prepared statement `Tag`. A text other than the one recorded (which would
    /// be a bug) runs unnamed instead of under the wrong name.
    static func rows<Tag: PreparedTag>(_ query: PostgresQuery, prepared tag: Tag.Type, on conn: PostgresConnection,
                                       logger: Logger) async throws -> [PostgresRandomAccessRow] {
        let same = preparedTexts.withLock { texts in
            if let known = texts[Tag.name] { return known == query.sql }
            texts[Tag.name] = query.sql
            return true
        }
        let key = Unpreparable(connection: conn.id, name: Tag.name)
        guard same, !unpreparable.withLock({ $0.contains(key) }) else { return try await rows(query, on: conn, logger: logger) }
        var out: [PostgresRandomAccessRow] = []
        do {
            for try await row in try await conn.execute(Prepared<Tag>(binds: query.binds), logger: logger) { out.append(row) }
        } catch {
            // Bounded: the pool replaces connections (new ids) over a server's life. Emptied when
            // full, the pairs that still fail are found again, one failed call each.
            unpreparable.withLock { pairs in
                if pairs.count >= Self.unpreparableCapacity { pairs.removeAll() }
                pairs.insert(key)
            }
            throw error
        }
        return out
    }
}
