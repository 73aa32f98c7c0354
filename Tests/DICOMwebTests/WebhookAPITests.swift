@testable import DICOMweb
import AccessControl
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ImageSetStore
import NIOCore
import StoreTestSupport
import XCTest

/// The subscription API (Docs/api.md, "Subscriptions"): validation, errors, secrets, access.
final class WebhookAPITests: DICOMwebTestCase, @unchecked Sendable {
    func post(_ client: any TestClientProtocol, _ body: String, headers: HTTPFields = [:]) async throws -> (HTTPResponse.Status, [String: Any], String) {
        var h = headers
        h[.contentType] = "application/json"
        return try await client.execute(uri: "/subscriptions", method: .post, headers: h, body: ByteBuffer(string: body)) { r in
            (r.status, (try? Self.json(r.body)) as? [String: Any] ?? [:], String(buffer: r.body))
        }
    }

    func testBadSubscriptionsAreRefusedSayingWhy() async throws {
        try await withApp { client in
            for (body, saying) in [
                ("not json", "JSON object"),
                (#"{"eventTypes": []}"#, "url is required"),
                (#"{"url": "ftp://example.org/x"}"#, "http or https"),
                (#"{"url": "file:///etc/passwd"}"#, "http or https"),
                (#"{"url": "http:///nohost"}"#, "no host"),
                (#"{"url": "https://user:pw@example.org/hook"}"#, "user or password"),
                (#"{"url": "https://example.org/hook", "eventTypes": ["instance.exploded"]}"#, "instance.exploded is not an event type"),
                (#"{"url": "https://example.org/hook", "eventTypes": "instance.stored"}"#, "array"),
                (#"{"url": "https://example.org/hook", "secret": "short"}"#, "16 to 512"),
                (#"{"url": "https://example.org/hook", "secret": 12345678901234567}"#, "secret is a string"),
                (#"{"url": "https://example.org/hook", "after": -1}"#, "after is a sequence"),
                (#"{"url": "https://example.org/hook", "colour": "blue"}"#, "unknown field colour"),
            ] {
                let (status, o, text) = try await self.post(client, body)
                XCTAssertEqual(status, .badRequest, body)
                XCTAssertTrue((o["error"] as? String)?.contains(saying) == true, "\(body): \(text)")
            }
            for (method, path) in [(HTTPRequest.Method.get, "/subscriptions/nope"), (.delete, "/subscriptions/nope"),
                                   (.post, "/subscriptions/nope/enable"), (.post, "/subscriptions/nope/disable")] {
                try await client.execute(uri: path, method: method) { r in
                    XCTAssertEqual(r.status, .notFound, "\(method) \(path)")
                    XCTAssertEqual((try Self.json(r.body) as? [String: Any])?["error"] as? String, "no subscription nope")
                }
            }
            await XCTAssertTrueAsync(try await self.store.subscriptions.subscriptions().isEmpty)
        }
    }

    /// A generated secret is in the POST's answer, once; no GET shows any secret, generated or given.
    func testSecretsAreShownOnceAndNeverByGET() async throws {
        try await withApp { client in
            let (created, o, _) = try await self.post(client, #"{"url": "https://example.org/a", "eventTypes": ["instance.stored", "instance.deleted"], "studyInstanceUID": "1.2.3"}"#)
            XCTAssertEqual(created, .created)
            let generated = try XCTUnwrap(o["secret"] as? String)
            XCTAssertTrue(generated.hasPrefix("whsec_"))
            XCTAssertEqual(o["eventTypes"] as? [String], ["instance.deleted", "instance.stored"])
            XCTAssertEqual(o["state"] as? String, "active")
            let given = "a-secret-of-my-own-choosing"
            let (_, mine, mineText) = try await self.post(client, #"{"url": "http://example.org/b", "secret": "\#(given)"}"#)
            XCTAssertNil(mine["secret"])
            XCTAssertFalse(mineText.contains(given))
            let ids = [try XCTUnwrap(o["id"] as? String), try XCTUnwrap(mine["id"] as? String)]
            var bodies: [String] = []
            for path in ["/subscriptions"] + ids.map({ "/subscriptions/\($0)" }) + ids.map({ "/subscriptions/\($0)/disable" }) {
                let method: HTTPRequest.Method = path.hasSuffix("disable") ? .post : .get
                bodies.append(try await client.execute(uri: path, method: method) { r in
                    XCTAssertEqual(r.status, .ok, path)
                    return String(buffer: r.body)
                })
            }
            for b in bodies {
                XCTAssertFalse(b.contains(generated))
                XCTAssertFalse(b.contains(given))
                XCTAssertFalse(b.contains("\"secret\""))
            }
            let list = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(bodies[0].utf8)) as? [String: Any])?["subscriptions"] as? [[String: Any]])
            XCTAssertEqual(list.map { $0["id"] as? String }, ids)
            XCTAssertEqual(list.first?["studyInstanceUID"] as? String, "1.2.3")
            XCTAssertEqual(list.first?["cursor"] as? Int, 0)
            XCTAssertEqual(list.first?["lag"] as? Int, 0)
            // The secret is kept for signing, as given.
            await XCTAssertEqualAsync(try await self.store.subscriptions.subscription(id: ids[1])?.secret, given)
            try await client.execute(uri: "/subscriptions/\(ids[0])", method: .delete) { XCTAssertEqual($0.status, .noContent) }
            try await client.execute(uri: "/subscriptions/\(ids[0])", method: .get) { XCTAssertEqual($0.status, .notFound) }
            // Managing where patients' events go is audited like key changes; reading them like reads.
            await self.store.flushAudit()
            let records = try await self.store.auditRecords(AuditFilter())
            XCTAssertEqual(records.filter { $0.action == "subscription-change" }.count, 5, "2 made, 2 disabled, 1 removed: \(records.map(\.action))")
            XCTAssertEqual(records.filter { $0.action == "subscription-read" }.count, 4, "\(records.map(\.action))")
            XCTAssertFalse(records.contains { ($0.detail ?? "").contains(given) || ($0.detail ?? "").contains(generated) })
        }
    }

    /// Only admins manage subscriptions: viewers and gateways get 403, no credentials 401.
    func testOnlyAdminsManageSubscriptions() async throws {
        var made: [Role: String] = [:]
        for role in Role.allCases {
            let key = APIKey.generate()
            try await store.accessKeys.createAPIKey(APIKeyRecord(name: "hooks-\(role.rawValue)", role: role, keyHash: APIKey.hash(key), created: Date()))
            made[role] = key
        }
        let keys = made
        var configuration = DICOMwebConfiguration()
        configuration.authenticationEnabled = true
        let app = Application(router: buildRouter(store: store, configuration: configuration))
        try await app.test(.router) { client in
            let body = #"{"url": "https://example.org/hook"}"#
            for (who, expected) in [(Role.viewer, HTTPResponse.Status.forbidden), (.gateway, .forbidden), (.admin, .created)] {
                let (status, _, text) = try await self.post(client, body, headers: [.authorization: "Bearer \(keys[who]!)"])
                XCTAssertEqual(status, expected, "\(who): \(text)")
                try await client.execute(uri: "/subscriptions", method: .get, headers: [.authorization: "Bearer \(keys[who]!)"]) { r in
                    XCTAssertEqual(r.status, who == .admin ? .ok : .forbidden, "\(who)")
                }
            }
            let (anonymous, _, _) = try await self.post(client, body)
            XCTAssertEqual(anonymous, .unauthorized)
        }
        await XCTAssertEqualAsync(try await store.subscriptions.subscriptions().count, 1)
    }
}
