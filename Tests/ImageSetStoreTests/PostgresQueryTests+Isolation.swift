import Foundation
@testable import ImageSetStore
import PostgresNIO
import StoreTestSupport
@testable import PostgresIndex
import XCTest

extension PostgresQueryTests {
    /// The commit and the audit append read their heads FOR UPDATE and rely on READ COMMITTED
    /// (PostgreSQL §13.2.1); a database whose default is SERIALIZABLE still gets READ COMMITTED on
    /// every connection of the index's pool, and appends work there.
    func testTheIndexIsReadCommittedWhateverTheDatabaseDefault() async throws {
        let (index, _) = try await freshIndex("isolation", settings: ["default_transaction_isolation = 'serializable'"])
        let level = try await index.rows("SHOW transaction_isolation").map { try $0.get("transaction_isolation", as: String.self) }
        XCTAssertEqual(level, ["read committed"])
        try await index.appendAudit([AuditEvent(action: .search, principal: nil, success: true)])
        try await index.appendAudit([AuditEvent(action: .search, principal: nil, success: true)])
        await XCTAssertEqualAsync(try await index.auditHeadSequence(), 2)
    }
}
