import Foundation
@testable import ImageSetStore
import TestSupport
import XCTest
import StoreTestSupport

/// `tessera keys` and `tessera serve`'s secure-by-default rule, run as a user runs them.
final class KeysCLITests: XCTestCase {
    func testCreateListRevoke() async throws {
        let tessera = try Corpus.product("tessera")
        let data = try StoreFixtures.temporaryFolder("cli-keys")
        defer { try? FileManager.default.removeItem(atPath: data) }
        try? FileManager.default.removeItem(atPath: data)  // `keys create` makes the folder

        let created = try Corpus.runCapturing(tessera, ["keys", "create", "--role", "gateway", "--name", "ct-gateway", "--data", data])
        XCTAssertEqual(created.status, 0, String(decoding: created.err, as: UTF8.self))
        let key = String(decoding: created.out, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        // 256 bits, base64url: 43 characters after the prefix.
        XCTAssertTrue(key.hasPrefix(APIKey.prefix) && key.count == APIKey.prefix.count + 43, key)
        XCTAssertTrue(String(decoding: created.err, as: UTF8.self).contains("shown only this once"))

        // Only the hash is stored: the index holds SHA-256(key), and the key's text appears in no file of the folder.
        let records = try await Datastore.openAccessKeys(folder: data, create: false).apiKeys()
        XCTAssertEqual(records.map(\.name), ["ct-gateway"])
        XCTAssertEqual(records.first?.role, .gateway)
        XCTAssertEqual(records.first?.keyHash, APIKey.hash(key))
        for file in try FileManager.default.subpathsOfDirectory(atPath: data) {
            guard let bytes = FileManager.default.contents(atPath: data + "/" + file) else { continue }
            XCTAssertNil(bytes.range(of: Data(key.utf8)), "\(file) holds the key")
        }

        XCTAssertEqual(try Corpus.runCapturing(tessera, ["keys", "create", "--role", "gateway", "--name", "ct-gateway", "--data", data]).status, 1,
                       "names are unique")
        XCTAssertEqual(try Corpus.runCapturing(tessera, ["keys", "create", "--role", "viewer", "--name", "bad name!", "--data", data]).status, 1)
        XCTAssertEqual(try Corpus.runCapturing(tessera, ["keys", "create", "--role", "root", "--name", "x", "--data", data]).status, 64,
                       "an unknown role is a usage error")
        XCTAssertEqual(try Corpus.runCapturing(tessera, ["keys", "create", "--role", "viewer", "--name", "ohif", "--data", data]).status, 0)

        let list = try Corpus.runCapturing(tessera, ["keys", "list", "--data", data])
        let table = String(decoding: list.out, as: UTF8.self)
        XCTAssertEqual(list.status, 0)
        XCTAssertTrue(table.contains("ct-gateway") && table.contains("gateway") && table.contains("ohif") && table.contains("viewer"), table)
        XCTAssertFalse(table.contains(key), "list never shows a key")

        let revoke = try Corpus.runCapturing(tessera, ["keys", "revoke", "ct-gateway", "--data", data])
        XCTAssertEqual(revoke.status, 0, String(decoding: revoke.err, as: UTF8.self))
        XCTAssertEqual(try Corpus.runCapturing(tessera, ["keys", "revoke", "ct-gateway", "--data", data]).status, 1, "already revoked")
        XCTAssertEqual(try Corpus.runCapturing(tessera, ["keys", "revoke", "nobody", "--data", data]).status, 1)
        let json = try Corpus.runCapturing(tessera, ["keys", "list", "--data", data, "--json"])
        let items = try XCTUnwrap(try JSONSerialization.jsonObject(with: json.out) as? [[String: Any]])
        XCTAssertEqual(items.count, 2)
        XCTAssertNotNil(items.first { $0["name"] as? String == "ct-gateway" }?["revoked"] as? String)
        XCTAssertNil(items.first { $0["name"] as? String == "ohif" }?["revoked"] as? String)
        await XCTAssertEqualAsync(try await Datastore.openAccessKeys(folder: data, create: false).activeAPIKeys().map(\.name), ["ohif"])

        // Key changes are on the audit trail, each record in its change's transaction (issue 12 §2),
        // under the local user who ran the command; the refused revokes too, as failures.
        let trail = try SQLiteIndex(path: data + "/index.sqlite", folder: data).auditRecords(AuditFilter())
        XCTAssertEqual(trail.filter { $0.action == "key-create" }.map(\.detail), ["gateway key ct-gateway", "viewer key ohif"])
        XCTAssertEqual(trail.filter { $0.action == "key-revoke" }.map { "\($0.detail ?? "") \($0.success)" },
                       ["key ct-gateway true", "key ct-gateway false", "key nobody false"])
        XCTAssertTrue(trail.allSatisfy { $0.principalKind == "local" && $0.principalName == ProcessInfo.processInfo.userName })
        XCTAssertNil(try SQLiteIndex(path: data + "/index.sqlite", folder: data).verifyAuditTrail().problem)

        // list and revoke never create a folder.
        XCTAssertEqual(try Corpus.runCapturing(tessera, ["keys", "list", "--data", data + "-missing"]).status, 1)
        XCTAssertFalse(FileManager.default.fileExists(atPath: data + "-missing"))
    }

    /// With no key and no OIDC provider, a non-loopback --host is refused with one line; a key,
    /// or --insecure-no-auth (logged as a warning), lets it start.
    /// Replicas share their keys in the PostgreSQL index: `tessera keys --index URL` manages them there.
    func testKeysOnThePostgreSQLIndex() async throws {
        let tessera = try Corpus.product("tessera")
        let url = try await TestBackends.freshPostgresDatabase()
        let created = try Corpus.runCapturing(tessera, ["keys", "create", "--role", "viewer", "--name", "ohif", "--index", url])
        XCTAssertEqual(created.status, 0, String(decoding: created.err, as: UTF8.self))
        let key = String(decoding: created.out, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let index = try await TestBackends.postgresIndex(url: url)
        let active = try await index.activeAPIKeys()
        XCTAssertEqual(active.map(\.name), ["ohif"])
        XCTAssertEqual(active.first?.keyHash, APIKey.hash(key))
        let revoked = try Corpus.runCapturing(tessera, ["keys", "revoke", "ohif", "--index", url])
        XCTAssertEqual(revoked.status, 0, String(decoding: revoked.err, as: UTF8.self))
        await XCTAssertEqualAsync(try await index.activeAPIKeys().count, 0)
        await index.close()
        let both = try Corpus.runCapturing(tessera, ["keys", "list", "--index", url, "--data", "/tmp/x"])
        XCTAssertNotEqual(both.status, 0)
    }

    func testServeRefusesANonLoopbackHostWithoutAuthentication() throws {
        let tessera = try Corpus.product("tessera")
        let data = try StoreFixtures.temporaryFolder("cli-serve-auth")
        defer { try? FileManager.default.removeItem(atPath: data) }
        let serve = ["serve", "--data", data, "--no-demo", "--host", "0.0.0.0", "--port", "0"]

        let refused = try Corpus.runCapturing(tessera, serve)
        let err = String(decoding: refused.err, as: UTF8.self)
        XCTAssertEqual(refused.status, 1, err)
        XCTAssertEqual(err.split(separator: "\n").count, 1, err)
        XCTAssertTrue(err.hasPrefix("tessera: refusing to listen on 0.0.0.0 with authentication off"), err)

        let insecure = try Self.startThenStop(tessera, serve + ["--insecure-no-auth"], until: "serving")
        XCTAssertTrue(insecure.contains("warning") && insecure.contains("AUTHENTICATION IS OFF"), insecure)

        XCTAssertEqual(try Corpus.runCapturing(tessera, ["keys", "create", "--role", "admin", "--name", "ops", "--data", data]).status, 0)
        let withKey = try Self.startThenStop(tessera, serve, until: "serving")
        XCTAssertTrue(withKey.contains("authentication on"), withKey)
        XCTAssertFalse(withKey.contains("refusing"), withKey)
    }

    /// Starts a command, waits (at most 20 s) until its stderr contains `marker`, stops it with
    /// SIGTERM and returns its stderr.
    static func startThenStop(_ executable: String, _ arguments: [String], until marker: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let errURL = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-serve-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errURL) }
        process.standardError = try FileHandle(forWritingTo: errURL)
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(20)
        var text = ""
        while Date() < deadline, process.isRunning {
            text = String(decoding: (try? Data(contentsOf: errURL)) ?? Data(), as: UTF8.self)
            if text.contains(marker) { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        let wasRunning = process.isRunning
        if wasRunning { process.terminate() }
        process.waitUntilExit()
        XCTAssertTrue(wasRunning, "the server stopped by itself: \(text)")
        return String(decoding: (try? Data(contentsOf: errURL)) ?? Data(), as: UTF8.self)
    }
}
