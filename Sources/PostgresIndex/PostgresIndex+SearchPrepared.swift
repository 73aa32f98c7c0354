import ImageSetStore
import PostgresNIO
import Synchronization

/// QIDO statements prepared by name, per connection. An unnamed statement is parsed and planned on
/// every call: at 1,000,000 instances that was 1.5–4 ms of a 2-series or 50-instance search whose
/// execution took 0.2–1 ms (PostgreSQL's log, parse + bind against execute). A search's text depends
/// on its shape (which conditions, which level), not on its values, so each distinct text seen gets
/// one of `searchSlots` statement names, first come first served; texts beyond them run unnamed.
///
/// Only shapes whose plan does not depend on the values are prepared. After five executions
/// PostgreSQL may switch a prepared statement to a generic plan, made without the values: fine for
/// `column = $1` and the path's UIDs, not for `LIKE $1` (a prefix pattern's index range needs the
/// pattern), a date range or an `ANY` list (their row estimates need the values). Those keep an
/// unnamed statement and a plan of their own on every call.
extension PostgresIndex {
    struct SearchSlot<let n: Int>: PreparedTag {
        static var name: String { "search_\(n)" }
    }

    static let searchSlots: [any PreparedTag.Type] = [
        SearchSlot<0>.self, SearchSlot<1>.self, SearchSlot<2>.self, SearchSlot<3>.self, SearchSlot<4>.self,
        SearchSlot<5>.self, SearchSlot<6>.self, SearchSlot<7>.self, SearchSlot<8>.self, SearchSlot<9>.self,
        SearchSlot<10>.self, SearchSlot<11>.self, SearchSlot<12>.self, SearchSlot<13>.self, SearchSlot<14>.self,
        SearchSlot<15>.self, SearchSlot<16>.self, SearchSlot<17>.self, SearchSlot<18>.self, SearchSlot<19>.self,
        SearchSlot<20>.self, SearchSlot<21>.self, SearchSlot<22>.self, SearchSlot<23>.self,
    ]
    /// Search texts by slot number, as first seen by this process.
    static let searchSlotOfText = Mutex<[String: Int]>([:])

    /// Whether `q`'s plan is the same whatever its values (above): every condition a single value
    /// matched exactly, and none a person name (always `LIKE`) or ModalitiesInStudy (a list).
    /// Only first pages: a connection's deep pages (large OFFSETs, costly plans) could make
    /// PostgreSQL's `auto` mode settle on the generic plan for the shape, which is 40× slower for a
    /// first page (Docs/store.md); an unnamed statement is planned for its values every time.
    static func preparable(_ q: SearchQuery) -> Bool {
        q.offset == 0 && q.conditions.allSatisfy { tag, condition in
            guard let (_, kind) = SearchQuery.matchable[tag] else { return true }  // not in the SQL
            guard case .equals(_, wildcard: false) = condition else { return false }
            return kind != .personName && kind != .modalitiesInStudy
        }
    }

    /// The statement slot for a search text, taking a free one for a new text; nil when all are taken.
    static func searchSlot(for sql: String) -> (any PreparedTag.Type)? {
        searchSlotOfText.withLock { slots in
            if let n = slots[sql] { return searchSlots[n] }
            guard slots.count < searchSlots.count else { return nil }
            slots[sql] = slots.count
            return searchSlots[slots.count - 1]
        }
    }

    static func searchRows(_ q: SearchQuery, on conn: PostgresConnection, logger: Logger) async throws -> [PostgresRandomAccessRow] {
        let (sql, binds) = searchSQL(q)
        let query = PostgresQuery(unsafeSQL: sql, binds: binds)
        guard preparable(q), let slot = searchSlot(for: sql) else { return try await rows(query, on: conn, logger: logger) }
        return try await rows(query, prepared: slot, on: conn, logger: logger)
    }
}
