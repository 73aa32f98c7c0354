import Foundation
import ImageSetStore
import StoreTestSupport
import TestSupport
import XCTest

/// `tessera subscriptions` as an admin runs it (Docs/events.md, "Webhooks"): the secret is printed
/// once when generated and never again; bad input is one line and exit status 1.
final class SubscriptionsCLITests: XCTestCase {
    func run(_ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
        let r = try Corpus.runCapturing(try Corpus.product("tessera"), ["subscriptions"] + arguments)
        return (r.status, String(decoding: r.out, as: UTF8.self), String(decoding: r.err, as: UTF8.self))
    }

    func testAddListShowDisableEnableRemove() async throws {
        let data = try StoreFixtures.temporaryFolder("cli-subscriptions")
        defer { try? FileManager.default.removeItem(atPath: data) }
        try? FileManager.default.removeItem(atPath: data)  // `add` makes the folder
        let added = try run(["add", "--url", "https://ris.example.org/hook", "--event-type", "instance.stored", "--study-uid", "1.2.3", "--data", data])
        XCTAssertEqual(added.status, 0, added.err)
        let lines = added.out.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 2)
        let (id, secret) = (lines[0], lines[1])
        XCTAssertTrue(secret.hasPrefix("whsec_"))
        XCTAssertTrue(added.err.contains("shown only this once"))
        let secretFile = data + "/../hook-secret-\(UUID().uuidString)"
        try "my-own-secret-of-enough-length\n".write(toFile: secretFile, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: secretFile) }
        let mine = try run(["add", "--url", "http://10.0.0.9:8000/in", "--secret-file", secretFile, "--after", "0", "--data", data])
        XCTAssertEqual(mine.status, 0, mine.err)
        XCTAssertEqual(mine.out.split(separator: "\n").count, 1, "a given secret is not printed")
        let mineID = mine.out.trimmingCharacters(in: .whitespacesAndNewlines)
        let stored = try await Datastore.openIndex(folder: data, create: false).subscription(id: mineID)
        XCTAssertEqual(stored?.secret, "my-own-secret-of-enough-length")

        let list = try run(["list", "--data", data])
        XCTAssertEqual(list.status, 0)
        XCTAssertTrue(list.out.contains(id) && list.out.contains("https://ris.example.org/hook") && list.out.contains("active"), list.out)
        let json = try run(["list", "--json", "--data", data])
        let items = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [[String: Any]])
        XCTAssertEqual(items.map { $0["id"] as? String }, [id, mineID])
        XCTAssertEqual(items.first?["eventTypes"] as? [String], ["instance.stored"])
        XCTAssertEqual(items.first?["studyInstanceUID"] as? String, "1.2.3")
        XCTAssertEqual(try run(["disable", id, "--data", data]).status, 0)
        let show = try run(["show", id, "--data", data])
        XCTAssertEqual(show.status, 0)
        let one = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(show.out.utf8)) as? [String: Any])
        XCTAssertEqual(one["state"] as? String, "disabled")
        XCTAssertEqual(one["lag"] as? Int, 0)
        XCTAssertEqual(try run(["enable", id, "--data", data]).status, 0)
        XCTAssertTrue(try run(["show", id, "--data", data]).out.contains("\"state\":\"active\""))
        for output in [list.out, json.out, show.out] {
            XCTAssertFalse(output.contains(secret) || output.contains("my-own-secret"), "no secret is listed or shown")
        }
        XCTAssertEqual(try run(["remove", id, "--data", data]).status, 0)
        let gone = try run(["show", id, "--data", data])
        XCTAssertEqual(gone.status, 1)
        XCTAssertTrue(gone.err.contains("no subscription \(id)"), gone.err)
    }

    func testBadInputIsOneLineAndStatusOne() throws {
        let data = try StoreFixtures.temporaryFolder("cli-subscriptions-bad")
        defer { try? FileManager.default.removeItem(atPath: data) }
        for (arguments, saying) in [(["--url", "ftp://example.org/x"], "http or https"),
                                    (["--url", "https://example.org/x", "--event-type", "study.exploded"], "not an event type"),
                                    (["--url", "https://u:p@example.org/x"], "user or password")] {
            let r = try run(["add"] + arguments + ["--data", data])
            XCTAssertEqual(r.status, 1, arguments.joined(separator: " "))
            XCTAssertTrue(r.err.contains(saying), r.err)
        }
        XCTAssertEqual(try run(["list", "--data", data + "/missing"]).status, 1)
    }
}
