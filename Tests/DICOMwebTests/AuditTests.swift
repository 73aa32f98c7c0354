@testable import DICOMweb
import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ImageSetStore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import XCTest
import StoreTestSupport

/// The audit middleware, GET /audit and the request log (Docs/security.md, "Audit trail").
final class AuditTests: DICOMwebTestCase, @unchecked Sendable {
    static let sop = "1.2.826.0.1.3680043.9.7433.2.1.1"
    static let path = "/dicomweb/studies/\(study)/series/\(series)/instances/\(sop)"

    func records(_ query: String = "") async throws -> [[String: Any]] {
        await store.flushAudit()
        let body = NIOLockedValueBox(ByteBuffer())
        try await withApp { client in
            try await client.execute(uri: "/audit?\(query)", method: .get) { r in
                XCTAssertEqual(r.status, .ok)
                body.withLockedValue { $0 = r.body }
            }
        }
        return (try Self.json(body.withLockedValue { $0 }) as? [String: Any])?["records"] as? [[String: Any]] ?? []
    }

    func testEveryRequestToPatientDataIsRecordedOnce() async throws {
        try await withApp { client in
            let (status, _) = try await self.stow(client, [try Self.instance(sop: Self.sop, extra: [Self.text(0x0010_0020, .LO, "PAT-77")])])
            XCTAssertEqual(status, .ok)
            try await client.execute(uri: Self.path + "/metadata", method: .get) { XCTAssertEqual($0.status, .ok) }
            try await client.execute(uri: "/dicomweb/studies?PatientID=PAT-77", method: .get) { XCTAssertEqual($0.status, .ok) }
            try await client.execute(uri: Self.path + "/frames/1", method: .get) { XCTAssertEqual($0.status, .ok) }
            try await client.execute(uri: "/dicomweb/studies/\(Self.study)/series/9.9.9/metadata", method: .get) { XCTAssertEqual($0.status, .notFound) }
            try await client.execute(uri: "/health", method: .get) { XCTAssertEqual($0.status, .ok) }
        }
        let all = try await records()
        XCTAssertEqual(all.map { $0["action"] as? String }, ["store", "metadata", "search", "frames", "metadata"], "one each; /health none")
        XCTAssertEqual(all.map { $0["status"] as? Int }, [200, 200, 200, 200, 404])
        XCTAssertEqual(all.map { $0["outcome"] as? String }, ["success", "success", "success", "success", "failure"])
        XCTAssertEqual(all[1]["patientIDs"] as? [String], ["PAT-77"], "the Patient ID of what was read")
        XCTAssertEqual(all[1]["sopInstanceUIDs"] as? [String], [Self.sop])
        XCTAssertEqual((all[1]["identity"] as? [String: Any])?["kind"] as? String, "anonymous", "authentication off: the anonymous user")
        XCTAssertNotNil(all[1]["requestID"] as? String)
        // Filters: patient, study; pages with `after` and `next`.
        let byPatient = try await records("patientID=PAT-77")
        XCTAssertEqual(byPatient.map { $0["action"] as? String }, ["store", "metadata", "search", "frames"])
        let page = try await records("studyInstanceUID=\(Self.study)&limit=2&after=1")
        XCTAssertEqual(page.map { $0["sequence"] as? Int }, [2, 3])
        await XCTAssertNilAsync(try await store.verifyAuditTrail().problem)
    }

    func testDeleteIsRecordedInItsTransactionNotTwice() async throws {
        try await withApp { client in
            _ = try await self.stow(client, [try Self.instance(sop: Self.sop)])
            try await client.execute(uri: "/dicomweb/studies/\(Self.study)", method: .delete) { XCTAssertEqual($0.status, .ok) }
            try await client.execute(uri: "/dicomweb/studies/\(Self.study)", method: .delete) { XCTAssertEqual($0.status, .notFound) }
        }
        let all = try await records("action=delete")
        XCTAssertEqual(all.map { $0["status"] as? Int }, [200, 404])
        XCTAssertEqual(all[0]["detail"] as? String, "1 instance(s) removed")
    }

    func testBadAuditQueriesAre400() async throws {
        try await withApp { client in
            for q in ["limit=0", "limit=1001", "after=-1", "from=yesterday", "action=peek"] {
                try await client.execute(uri: "/audit?\(q)", method: .get) { r in
                    XCTAssertEqual(r.status, .badRequest, q)
                    XCTAssertNotNil((try Self.json(r.body) as? [String: Any])?["error"], q)
                }
            }
        }
    }

    /// The real authentication (AccessControl) inside the audit middleware: refusals are on record
    /// with whoever tried, a missing or unknown credential as unauthenticated.
    func testRefusedRequestsAreRecordedWithWhoTried() async throws {
        let key = APIKey.generate()
        try await store.accessKeys.createAPIKey(APIKeyRecord(name: "viewer-key", role: .viewer, keyHash: APIKey.hash(key), created: Date()))
        let router = buildRouter(store: store, configuration: DICOMwebConfiguration())
        try await Application(router: router).test(.router) { client in
            try await client.execute(uri: "/dicomweb/studies", method: .get) { XCTAssertEqual($0.status, .unauthorized) }
            try await client.execute(uri: "/dicomweb/studies", method: .get, headers: [.authorization: "Bearer \(APIKey.generate())"]) {
                XCTAssertEqual($0.status, .unauthorized)
            }
            try await client.execute(uri: "/dicomweb/studies/1.2.3", method: .delete, headers: [.authorization: "Bearer \(key)"]) {
                XCTAssertEqual($0.status, .forbidden)
            }
            try await client.execute(uri: "/dicomweb/studies", method: .get, headers: [.authorization: "Bearer \(key)"]) { XCTAssertEqual($0.status, .ok) }
        }
        await store.flushAudit()
        let r = try await store.auditRecords(AuditFilter())
        XCTAssertEqual(r.map(\.action), ["authentication-failed", "authentication-failed", "delete", "search"])
        XCTAssertEqual(r.map(\.principalName), [nil, nil, "viewer-key", "viewer-key"], "nil: unauthenticated")
        XCTAssertEqual(r.map(\.status), [401, 401, 403, 200])
        XCTAssertEqual(r.map(\.success), [false, false, false, true])
        XCTAssertEqual(r[2].roles, ["viewer"])
    }

    func testClientAddressIsTheForwardedClientOnlyBehindATrustedProxy() async throws {
        _ = try await store.ingest(file: Self.fixture(sop: Self.sop))
        for (trusted, expected) in [(CIDR.loopback, ["203.0.113.7", "198.51.100.2"]), ([CIDR("10.0.0.0/8")!], ["127.0.0.1", "127.0.0.1"])] {
            var configuration = DICOMwebConfiguration()
            configuration.port = 0
            configuration.trustedProxies = trusted
            try await buildApplication(store: store, configuration: configuration, logger: Logger(label: "test")).test(.live) { client in
                try await client.execute(uri: Self.path + "/metadata", method: .get, headers: [HTTPField.Name("X-Forwarded-For")!: "203.0.113.7, 127.0.0.1"]) { _ in }
                try await client.execute(uri: Self.path + "/metadata", method: .get, headers: [HTTPField.Name("Forwarded")!: "for=198.51.100.2"]) { _ in }
            }
            await store.flushAudit()
            let last = try await store.auditRecords(AuditFilter()).suffix(2).map(\.clientAddress)
            XCTAssertEqual(last, expected, "trusted: \(trusted)")
        }
    }

    static func fixture(sop: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("audit-\(UUID().uuidString).dcm").path
        FileManager.default.createFile(atPath: path, contents: Data(try instance(sop: sop)))
        return path
    }

    /// Reads never wait for the audit sink: with the index's write lock held elsewhere, they answer
    /// at once; what does not fit the buffer is dropped, counted, and said to be lost afterwards.
    func testReadsAnswerWhileTheAuditSinkIsStuck() async throws {
        store = nil
        store = try Datastore(folder: folder, auditBufferCapacity: 3)
        _ = try await store.ingest(file: Self.fixture(sop: Self.sop))
        var unsafe = Configuration()
        unsafe.allowsUnsafeTransactions = true  // the lock is held across accesses, on purpose
        let other = try DatabaseQueue(path: folder + "/index.sqlite", configuration: unsafe)
        try other.inDatabase { try $0.execute(sql: "BEGIN IMMEDIATE") }
        let start = ContinuousClock.now
        try await withApp { client in
            for _ in 0..<12 {
                try await client.execute(uri: Self.path + "/metadata", method: .get) { XCTAssertEqual($0.status, .ok) }
            }
        }
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(5), "no read waited for the 30 s busy timeout")
        XCTAssertGreaterThan(store.auditRecordsDropped, 0)
        let dropped = store.auditRecordsDropped
        try other.inDatabase { try $0.execute(sql: "COMMIT") }
        let all = try await records()
        XCTAssertEqual(all.filter { $0["action"] as? String == "metadata" }.count, 12 - dropped)
        // One loss record per run of drops; together they count every dropped record.
        let losses = all.filter { $0["action"] as? String == "audit-records-dropped" }.compactMap { $0["detail"] as? String }
        XCTAssertTrue(losses.allSatisfy { $0.hasSuffix(" audit records dropped (the audit buffer was full or its writer failed)") }, "\(losses)")
        XCTAssertEqual(losses.compactMap { Int($0.prefix { $0 != " " }) }.reduce(0, +), dropped)
    }

    // MARK: Request log

    final class Captured: @unchecked Sendable {
        let lines = NIOLockedValueBox<[(String, Logger.Metadata)]>([])
    }

    struct CapturingHandler: LogHandler {
        let captured: Captured
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(level: Logger.Level, message: Logger.Message, metadata extra: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
            captured.lines.withLockedValue { $0.append(("\(message)", metadata.merging(extra ?? [:]) { $1 })) }
        }
    }

    func testRequestLogHasClientIdentitySizeAndTimeToTheLastByte() async throws {
        _ = try await store.ingest(file: Self.fixture(sop: Self.sop))
        let captured = Captured()
        let logger = Logger(label: "test") { _ in CapturingHandler(captured: captured) }
        let app = Application(router: buildRouter(store: store, configuration: DICOMwebConfiguration()), logger: logger)
        let size = NIOLockedValueBox(0)
        try await app.test(.router) { client in
            try await client.execute(uri: Self.path, method: .get) { r in
                XCTAssertEqual(r.status, .ok)
                size.withLockedValue { $0 = r.body.readableBytes }
            }
        }
        try await app.test(.router) { client in
            // A refused query's message quotes the value, for the client; the log line never carries it.
            try await client.execute(uri: "/dicomweb/studies?PatientBirthDate=SECRET1937", method: .get) { r in
                XCTAssertEqual(r.status, .badRequest)
                XCTAssertTrue(String(buffer: r.body).contains("SECRET1937"), "the test's premise: the message quotes the value")
            }
            try await client.execute(uri: Self.path, method: .head) { XCTAssertEqual($0.status, .ok) }
        }
        let lines = captured.lines.withLockedValue { $0 }
        let failed = try XCTUnwrap(lines.last { $0.0 == "request failed" })
        XCTAssertEqual(failed.1["status"]?.description, "400")
        XCTAssertFalse("\(failed.1)".contains("SECRET1937"), "patient data stays out of the log: \(failed.1)")
        XCTAssertEqual(lines.last { $0.0 == "request" }?.1["method"]?.description, "HEAD", "HEAD is logged too")
        let line = try XCTUnwrap(lines.first { $0.0 == "request" })
        XCTAssertEqual(line.1["bytes"]?.description, "\(size.withLockedValue { $0 })", "the streamed multipart body, counted")
        XCTAssertEqual(line.1["identity"]?.description, "anonymous", "authentication off: the anonymous admin")
        XCTAssertEqual(line.1["client"]?.description, "-", "in-process: no peer")
        XCTAssertEqual(line.1["status"]?.description, "200")
        let ms = try XCTUnwrap(Double(line.1["ms"]?.description ?? "")), headers = try XCTUnwrap(Double(line.1["headersMs"]?.description ?? ""))
        XCTAssertGreaterThanOrEqual(ms, headers, "the last byte comes after the headers")
    }
}
