import AccessControl
@testable import DICOMweb
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ImageSetStore
import NIOConcurrencyHelpers
import NIOCore
import StoreTestSupport
import XCTest

/// GET /changefeed, /changefeed/latest and the stream's refusals (Docs/api.md, "Change feed"),
/// in-process; the stream itself is in ChangeFeedStreamTests (it needs a client that reads as it goes).
final class ChangeFeedRouteTests: DICOMwebTestCase, @unchecked Sendable {
    func get(_ client: any TestClientProtocol, _ uri: String, headers: HTTPFields = [:]) async throws -> (HTTPResponse.Status, Any?) {
        try await client.execute(uri: uri, method: .get, headers: headers) { r in (r.status, try? Self.json(r.body)) }
    }

    func testPagesFollowTheCursorAndLatestNamesTheHead() async throws {
        try await withApp { client in
            let (status, _) = try await self.stow(client, [try Self.instance(sop: "\(Self.series).1"), try Self.instance(sop: "\(Self.series).2")])
            XCTAssertEqual(status, .ok)
            let (s, all) = try await self.get(client, "/changefeed")
            XCTAssertEqual(s, .ok)
            let events = try XCTUnwrap(all as? [[String: Any]])
            // One STOW-RS request, one transaction: the set, two instances, one version.
            XCTAssertEqual(events.map { $0["type"] as? String }, ["imageset.created", "instance.stored", "instance.stored", "imageset.version"])
            XCTAssertEqual(events.map { $0["sequence"] as? Int }, [1, 2, 3, 4])
            XCTAssertEqual(events[1]["sopInstanceUID"] as? String, "\(Self.series).1")
            XCTAssertEqual(events[1]["studyInstanceUID"] as? String, Self.study)
            XCTAssertNotNil(events[1]["time"] as? String)
            let (_, page) = try await self.get(client, "/changefeed?after=1&limit=2")
            XCTAssertEqual((page as? [[String: Any]])?.map { $0["sequence"] as? Int }, [2, 3])
            let (_, empty) = try await self.get(client, "/changefeed?after=4")
            XCTAssertEqual((empty as? [Any])?.count, 0)
            let (_, latest) = try await self.get(client, "/changefeed/latest")
            XCTAssertEqual((latest as? [String: Any])?["sequence"] as? Int, 4)
            XCTAssertEqual((latest as? [String: Any])?["oldestSequence"] as? Int, 1)
        }
        // Feed reads are on the audit trail like other reads.
        await store.flushAudit()
        let actions = try await store.auditRecords(AuditFilter()).map(\.action)
        XCTAssertEqual(actions.filter { $0 == "changefeed-read" }.count, 4)
    }

    func testBadParametersAre400AndAPrunedRangeIs410() async throws {
        try await withApp { client in
            for uri in ["/changefeed?after=-1", "/changefeed?after=abc", "/changefeed?limit=0", "/changefeed?limit=1001",
                        "/changefeed?limit=ten", "/changefeed/stream?after=1.5"] {
                let (s, body) = try await self.get(client, uri)
                XCTAssertEqual(s, .badRequest, uri)
                XCTAssertNotNil((body as? [String: Any])?["error"] as? String, uri)
            }
            let (s, body) = try await self.get(client, "/changefeed/stream", headers: [HTTPField.Name("Last-Event-ID")!: "x"])
            XCTAssertEqual(s, .badRequest)
            XCTAssertTrue(((body as? [String: Any])?["error"] as? String ?? "").contains("Last-Event-ID"))
            let (ok, page) = try await self.get(client, "/changefeed?limit=1000")
            XCTAssertEqual(ok, .ok, "1000 is the cap, allowed")
            XCTAssertEqual((page as? [Any])?.count, 0)
        }
        let stored = try await stowOne()
        XCTAssertEqual(stored, .ok)
        try await store.setChangeFeedRetention(days: 1)
        let removed = try await store.pruneChangeFeed(now: Date(timeIntervalSinceNow: 2 * 86_400))
        XCTAssertEqual(removed, 3)
        try await withApp { client in
            for uri in ["/changefeed?after=0", "/changefeed?after=2", "/changefeed/stream?after=1"] {
                let (s, body) = try await self.get(client, uri)
                XCTAssertEqual(s, .gone, uri)
                let message = (body as? [String: Any])?["error"] as? String ?? ""
                XCTAssertTrue(message.contains("the oldest sequence still held is 4"), message)
            }
            let (s, _) = try await self.get(client, "/changefeed?after=3")
            XCTAssertEqual(s, .ok, "reading from the oldest held on is fine")
            let (_, latest) = try await self.get(client, "/changefeed/latest")
            XCTAssertEqual((latest as? [String: Any])?["oldestSequence"] as? Int, 4)
            // A cursor beyond the head (an index restored to an earlier point) is refused, not read as
            // "nothing new": the numbers after the head will name other changes.
            for uri in ["/changefeed?after=4", "/changefeed/stream?after=99"] {
                let (ahead, body) = try await self.get(client, uri)
                XCTAssertEqual(ahead, .conflict, uri)
                let message = (body as? [String: Any])?["error"] as? String ?? ""
                XCTAssertTrue(message.contains("beyond the feed's latest sequence 3"), message)
            }
        }
    }

    func stowOne() async throws -> HTTPResponse.Status {
        let result = NIOLockedValueBox<HTTPResponse.Status>(.internalServerError)
        try await withApp { client in
            let (status, _) = try await self.stow(client, [try Self.instance(sop: "\(Self.series).9")])
            result.withLockedValue { $0 = status }
        }
        return result.withLockedValue { $0 }
    }

    /// Admins only (Docs/security.md's route table): a viewer or a gateway gets 403.
    func testOnlyAdminsReadTheFeed() async throws {
        var keys: [Role: String] = [:]
        for role in [Role.viewer, .gateway, .admin] {
            let key = APIKey.generate()
            try await store.accessKeys.createAPIKey(APIKeyRecord(name: "\(role.rawValue)-key", role: role, keyHash: APIKey.hash(key), created: Date()))
            keys[role] = key
        }
        let router = buildRouter(store: store, configuration: DICOMwebConfiguration())
        let known = keys
        try await Application(router: router).test(.router) { client in
            for uri in ["/changefeed", "/changefeed/latest", "/changefeed/stream"] {
                for role in [Role.viewer, .gateway] {
                    let (s, _) = try await self.get(client, uri, headers: [.authorization: "Bearer \(known[role]!)"])
                    XCTAssertEqual(s, .forbidden, "\(role) \(uri)")
                }
                let (s, _) = try await self.get(client, uri)
                XCTAssertEqual(s, .unauthorized, uri)
            }
            for uri in ["/changefeed", "/changefeed/latest"] {
                let (s, _) = try await self.get(client, uri, headers: [.authorization: "Bearer \(known[.admin]!)"])
                XCTAssertEqual(s, .ok, uri)
            }
        }
    }
}
