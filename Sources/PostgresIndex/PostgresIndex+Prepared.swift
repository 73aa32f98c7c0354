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
        guard same else { return try await rows(query, on: conn, logger: logger) }
        var out: [PostgresRandomAccessRow] = []
        for try await row in try await conn.execute(Prepared<Tag>(binds: query.binds), logger: logger) { out.append(row) }
        return out
    }
}
