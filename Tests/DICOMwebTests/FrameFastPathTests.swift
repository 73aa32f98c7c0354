import AccessControl
import DICOMCore
@testable import DICOMweb
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ImageSetStore
import Logging
import NIOCore
import StoreTestSupport
import XCTest

/// Issue 15 §1, the stored-frame fast path (StoredFrameFastPath): a viewer's single stored frame
/// answered on the event loop below Hummingbird, its bytes by sendfile. Every FrameCacheTests test
/// runs again here on a live server, so through the fast path: each frame byte-identical to what
/// pydicom finds in the file with the same part headers (PS3.18 §8.6.1.2, §10.4.1.1.2), a replaced
/// or deleted instance never served (§10.7). Then what the middlewares do, done on this path too:
/// authentication and the route policy, the audit record, CORS, HTTP/1.1 order and the deadlines.
final class FrameFastPathTests: FrameCacheTests, @unchecked Sendable {
    var metrics = ServerMetrics()
    var configure: @Sendable (inout DICOMwebConfiguration) -> Void = { _ in }

    override func setUp() async throws {
        try await super.setUp()
        metrics = ServerMetrics()
    }

    /// A live server (`tessera serve`'s application): requests cross a real connection, where the fast path sits.
    override func withApp(_ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        var configuration = DICOMwebConfiguration()
        configuration.port = 0
        // The key copy outlives a slow test machine's test: re-reading it sends a request to the router.
        configuration.authentication.apiKeyCacheLifetime = 60
        configuration.metrics = metrics
        configure(&configuration)
        try await buildApplication(store: store, configuration: configuration, logger: Logger(label: "test")).test(.live, body)
    }

    /// Requests the fast path answered (`served`) or handed to the router (`declined`), from the metrics.
    func fastPath(_ outcome: String) -> Int {
        var bytes: [UInt8] = []
        metrics.registry.emit(into: &bytes)
        let text = String(decoding: bytes, as: UTF8.self)
        let line = text.split(separator: "\n").first { $0.hasPrefix("tessera_frames_fast_path_total{outcome=\"\(outcome)\"}") }
        return line.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
    }

    /// The inherited tests ask each frame at least twice: the second is the fast path's on SQLite.
    /// On PostgreSQL (replicas write the index) it never answers: which row is current is asked of the index each time.
    override func tearDown() async throws {
        if TestBackends.indexIsPostgres {
            XCTAssertEqual(fastPath("served"), 0, "no generation, no fast path")
        }
        try await super.tearDown()
    }

    func testTheSecondRequestIsTheFastPathsWithTheRoutersHeadersAndBytes() async throws {
        try XCTSkipIf(TestBackends.indexIsPostgres, "PostgreSQL has no local generation: the router answers every request")
        let sop = "1.2.826.0.1.3680043.9.7433.2.1.1510"
        configure = { $0.corsOrigins = ["https://viewer.example"] }
        try await withApp { client in
            _ = try await self.stow(client, [try Self.instance(sop: sop)])
            try await self.settle()
            var answers: [(HTTPFields, [UInt8])] = []
            for k in 0..<3 {
                let headers: HTTPFields = [.accept: Self.asStored, .origin: "https://viewer.example"]
                try await client.execute(uri: self.framesURI(Self.study, Self.series, sop, "1"), method: .get, headers: headers) { r in
                    XCTAssertEqual(r.status, .ok)
                    // The boundary is each response's own: compare with it replaced.
                    let type = r.headers[.contentType] ?? ""
                    let boundary = String(type.split(separator: "=").last ?? "")
                    var fields = r.headers
                    fields[.contentType] = type.replacingOccurrences(of: boundary, with: "B")
                    // The body holds the boundary twice.
                    fields[.contentLength] = (r.headers[.contentLength].flatMap { Int($0) }).map { "\($0 - 2 * (boundary.utf8.count - 1))" }
                    fields[.date] = nil
                    answers.append((fields, Self.replacing(Array(boundary.utf8), with: Array("B".utf8), in: Array(r.body.readableBytesView))))
                }
                XCTAssertEqual(self.fastPath("served"), k, "request \(k + 1): the first fills the frame location cache")
            }
            XCTAssertEqual(Array(answers[1].0), Array(answers[0].0), "the same headers, in the same order")
            XCTAssertEqual(answers[1].1, answers[0].1, "the same body")
            XCTAssertEqual(answers[2].1, answers[0].1)
            XCTAssertEqual(answers[1].0[.accessControlAllowOrigin], "https://viewer.example")
            XCTAssertEqual(answers[1].0[.vary], "Origin")
            let (original, _) = try Self.pixels()
            let parts = try Self.parts(ByteBuffer(bytes: answers[1].1), contentType: "multipart/related; boundary=B")
            XCTAssertEqual(parts.first?.body, original)
        }
    }

    /// The series metadata documents a STOW leaves pending, rebuilt now rather than by the
    /// background refresh a moment later (whose commit moves the index generation, so that the
    /// next frame request would go to the router again); and until the generation holds still
    /// for 0.2 s, since a refresh already under way may commit after this one found nothing.
    func settle() async throws {
        for _ in 0..<50 {
            let before = store.index.localChangeGeneration
            _ = try await store.flushMetadata()
            try await Task.sleep(for: .milliseconds(200))
            if store.index.localChangeGeneration == before { return }
        }
    }

    static func replacing(_ needle: [UInt8], with replacement: [UInt8], in bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [], i = 0
        while i < bytes.count {
            if i + needle.count <= bytes.count, bytes[i..<i + needle.count].elementsEqual(needle) {
                out += replacement
                i += needle.count
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return out
    }

    /// What the fast path cannot answer exactly as the router would goes to the router: HEAD, a
    /// frame list, a transcoding, a frame beyond the last, `imageSetId`, a malformed UID,
    /// `Connection: close`. Each gets the router's answer.
    func testWhatTheFastPathDoesNotAnswerTheRouterDoes() async throws {
        try XCTSkipIf(TestBackends.indexIsPostgres, "PostgreSQL has no local generation")
        let sop = "1.2.826.0.1.3680043.9.7433.2.1.1511"
        try await withApp { client in
            _ = try await self.stow(client, [try Self.instance(sop: sop)])
            try await self.settle()
            let frame1 = self.framesURI(Self.study, Self.series, sop, "1")
            _ = try await self.frameOne(client, sop: sop)
            let served = self.fastPath("served")
            let cases: [(String, HTTPRequest.Method, HTTPFields, HTTPResponse.Status)] = [
                (frame1, .head, [.accept: Self.asStored], .ok),
                (self.framesURI(Self.study, Self.series, sop, "1,1"), .get, [.accept: Self.asStored], .badRequest),
                (frame1, .get, [.accept: "multipart/related; type=\"image/jp2\""], .ok),
                (self.framesURI(Self.study, Self.series, sop, "2"), .get, [.accept: Self.asStored], .notFound),
                (frame1 + "?imageSetId=0123456789abcdef0123456789abcdef", .get, [.accept: Self.asStored], .notFound),
                (self.framesURI(Self.study, Self.series, "1.2.3.04", "1"), .get, [.accept: Self.asStored], .badRequest),
                (frame1, .get, [.accept: "image/png"], .notAcceptable),
                // RFC 9110 §15.5.16, as RequestLimitsMiddleware refuses any coded request.
                (frame1, .get, [.accept: Self.asStored, .contentEncoding: "gzip"], .unsupportedMediaType),
            ]
            for (uri, method, headers, status) in cases {
                try await client.execute(uri: uri, method: method, headers: headers) { r in
                    XCTAssertEqual(r.status, status, "\(method) \(uri) \(headers)")
                    if method == .head { XCTAssertEqual(r.body.readableBytes, 0) }
                }
            }
            // `Connection: close` (the test client drops the field: sent by hand): answered, then closed.
            let connection = try RawConnection(port: try XCTUnwrap(client.port))
            try connection.send("GET \(frame1) HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: \(Self.asStored)\r\nConnection: close\r\n\r\n")
            XCTAssertEqual(try connection.responses(1).first?.status, 200)
            XCTAssertEqual(self.fastPath("served"), served, "none of these is the fast path's")
            // While a plain request for the frame is.
            _ = try await self.frameOne(client, sop: sop)
            XCTAssertEqual(self.fastPath("served"), served + 1)
            // A blob shorter than its frame ranges (damaged on disk): the router's 500, not a 200 the
            // kernel can never finish sending.
            let location = try XCTUnwrap(self.store.cachedFrameLocation(study: Self.study, series: Self.series, sop: sop, scope: .primary))
            let blob = try XCTUnwrap(self.store.blobs.localPath(location.instance.framesBlob))
            XCTAssertEqual(truncate(blob, 1000), 0)
            await XCTAssertEqualAsync(try await self.frameOne(client, sop: sop).0, .internalServerError)
            XCTAssertEqual(self.fastPath("served"), served + 1)
        }
    }

    /// The route policy (Docs/security.md, "Roles and routes") holds on the fast path: a viewer's
    /// key is answered there once the key copy is loaded; no credentials, an unknown key and a
    /// gateway's key get the router's 401, 401 and 403 (RFC 6750 §3), however warm the cache.
    /// Each fast answer is audited like the router's: who, from where (behind a trusted proxy, the
    /// forwarded client), which instance, success.
    func testCredentialsRolesAndTheAuditTrailHoldOnTheFastPath() async throws {
        try XCTSkipIf(TestBackends.indexIsPostgres, "PostgreSQL has no local generation")
        var keys: [Role: String] = [:]
        for role in [Role.viewer, .gateway, .admin] {
            let key = APIKey.generate()
            try await store.accessKeys.createAPIKey(APIKeyRecord(name: "fast-\(role.rawValue)", role: role, keyHash: APIKey.hash(key), created: Date()))
            keys[role] = key
        }
        let (viewer, gateway, admin) = (keys[.viewer]!, keys[.gateway]!, keys[.admin]!)
        let sop = "1.2.826.0.1.3680043.9.7433.2.1.1512"
        try await withApp { client in
            var stow: HTTPFields = [.authorization: "Bearer \(gateway)"]
            stow[.contentType] = "multipart/related; type=\"application/dicom\"; boundary=XyZ-boundary"
            try await client.execute(uri: "/dicomweb/studies", method: .post, headers: stow, body: Self.multipart([try Self.instance(sop: sop)])) {
                XCTAssertEqual($0.status, .ok)
            }
            try await self.settle()
            let uri = self.framesURI(Self.study, Self.series, sop, "1")
            func get(_ headers: HTTPFields) async throws -> HTTPResponse.Status {
                var h = headers
                h[.accept] = Self.asStored
                return try await client.execute(uri: uri, method: .get, headers: h) { $0.status }
            }
            for _ in 0..<3 { await XCTAssertEqualAsync(try await get([.authorization: "Bearer \(viewer)"]), .ok) }
            XCTAssertEqual(self.fastPath("served"), 2)
            await XCTAssertEqualAsync(try await get([:]), .unauthorized)
            await XCTAssertEqualAsync(try await get([.authorization: "Bearer \(APIKey.generate())"]), .unauthorized)
            await XCTAssertEqualAsync(try await get([.authorization: "Bearer \(gateway)"]), .forbidden)
            await XCTAssertEqualAsync(try await get([.authorization: "Basic dXNlcjpwYXNz"]), .unauthorized)
            XCTAssertEqual(self.fastPath("served"), 2, "refusals are the router's")
            await XCTAssertEqualAsync(try await get([.authorization: "Bearer \(viewer)", HTTPField.Name("X-Forwarded-For")!: "203.0.113.9"]), .ok)
            XCTAssertEqual(self.fastPath("served"), 3)
            await self.store.flushAudit()
            var audit: [[String: Any]] = []
            try await client.execute(uri: "/audit", method: .get, headers: [.authorization: "Bearer \(admin)"]) { r in
                audit = (try Self.json(r.body) as? [String: Any])?["records"] as? [[String: Any]] ?? []
            }
            // A request without valid credentials is recorded as a failed authentication, the 403 as a refused read.
            let frames = audit.filter { $0["action"] as? String == "frames" }
            XCTAssertEqual(frames.count, 5, "every authenticated request audited, answered here or by the router")
            let refused = audit.filter { $0["action"] as? String == "authentication-failed" }
            XCTAssertEqual(refused.count, 3)
            XCTAssertEqual(frames.filter { $0["outcome"] as? String == "success" }.count, 4)
            let last = try XCTUnwrap(frames.last { $0["outcome"] as? String == "success" })
            XCTAssertEqual(last["clientAddress"] as? String, "203.0.113.9", "the client a trusted proxy forwarded for")
            XCTAssertEqual((last["identity"] as? [String: Any])?["name"] as? String, "fast-viewer")
            XCTAssertEqual(last["status"] as? Int, 200)
            XCTAssertEqual(last["sopInstanceUIDs"] as? [String], [sop])
            XCTAssertEqual(last["patientIDs"] as? [String], frames.first { $0["outcome"] as? String == "success" }?["patientIDs"] as? [String])
            XCTAssertEqual(Set((frames + refused).compactMap { $0["requestID"] as? String }).count, 8, "each its own request id")
        }
    }

    /// HTTP/1.1 answers requests in the order they came (RFC 9112 §9.3.2): pipelined on one
    /// connection, frames the fast path answers and requests the router answers come back in order.
    func testPipelinedRequestsAreAnsweredInOrder() async throws {
        try XCTSkipIf(TestBackends.indexIsPostgres, "PostgreSQL has no local generation")
        let sops = ["1.2.826.0.1.3680043.9.7433.2.1.1513", "1.2.826.0.1.3680043.9.7433.2.1.1514"]
        try await withApp { client in
            _ = try await self.stow(client, try sops.map { try Self.instance(sop: $0) })
            try await self.settle()
            for sop in sops { _ = try await self.frameOne(client, sop: sop) }
            let served = self.fastPath("served")
            let connection = try RawConnection(port: try XCTUnwrap(client.port))
            func get(_ path: String, accept: String = Self.asStored) -> String {
                "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: \(accept)\r\n\r\n"
            }
            let frame0 = self.framesURI(Self.study, Self.series, sops[0], "1"), frame1 = self.framesURI(Self.study, Self.series, sops[1], "1")
            let metadata = "/dicomweb/studies/\(Self.study)/series/\(Self.series)/instances/\(sops[1])/metadata"
            try connection.send(get(frame0) + get("/health", accept: "*/*") + get(frame1) + get(metadata, accept: "application/dicom+json") + get(frame0))
            let responses = try connection.responses(5)
            XCTAssertEqual(responses.map(\.status), [200, 200, 200, 200, 200])
            XCTAssertTrue(responses[0].headers["content-type"]?.hasPrefix("multipart/related") == true)
            XCTAssertTrue(String(decoding: responses[1].body, as: UTF8.self).contains("status"), "the health answer second")
            XCTAssertEqual(responses[3].headers["content-type"], "application/dicom+json")
            XCTAssertTrue(String(decoding: responses[3].body, as: UTF8.self).contains(sops[1]))
            let (original, _) = try Self.pixels()
            for k in [0, 2, 4] {
                let parts = try Self.parts(ByteBuffer(bytes: responses[k].body), contentType: responses[k].headers["content-type"] ?? "")
                XCTAssertEqual(parts.first?.body, original, "response \(k + 1)")
            }
            // The first is answered here; the rest were parsed while /health was the router's, so went up.
            XCTAssertEqual(self.fastPath("served"), served + 1)
        }
    }

    /// The connection deadlines (Docs/security.md, "Limits") see the fast path's requests: a
    /// connection kept busy with frames is not closed for idleness, and one left idle is.
    func testTheIdleDeadlineCountsFastPathRequests() async throws {
        try XCTSkipIf(TestBackends.indexIsPostgres, "PostgreSQL has no local generation")
        let sop = "1.2.826.0.1.3680043.9.7433.2.1.1515"
        configure = { $0.limits.idleTimeout = 1 }
        try await withApp { client in
            _ = try await self.stow(client, [try Self.instance(sop: sop)])
            try await self.settle()
            _ = try await self.frameOne(client, sop: sop)
            let served = self.fastPath("served")
            let connection = try RawConnection(port: try XCTUnwrap(client.port))
            let request = "GET \(self.framesURI(Self.study, Self.series, sop, "1")) HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: \(Self.asStored)\r\n\r\n"
            for _ in 0..<6 {
                try connection.send(request)
                XCTAssertEqual(try connection.responses(1).first?.status, 200)
                try await Task.sleep(for: .milliseconds(400))
            }
            XCTAssertEqual(self.fastPath("served"), served + 6)
            try await Task.sleep(for: .milliseconds(1800))
            XCTAssertTrue(connection.isClosedByPeer(), "idle for longer than the idle deadline")
        }
    }
}

/// A plain TCP connection to the live server, for what the test client does not do: pipelining
/// several requests in one write, and watching an idle connection.
final class RawConnection {
    let fd: Int32
    private var pending: [UInt8] = []

    struct Response {
        let status: Int
        let headers: [String: String]
        let body: [UInt8]
    }

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard fd >= 0, connected == 0 else { throw POSIXError(.ECONNREFUSED) }
    }

    deinit { close(fd) }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        guard bytes.withUnsafeBytes({ Foundation.send(fd, $0.baseAddress, $0.count, 0) }) == bytes.count else { throw POSIXError(.EIO) }
    }

    private func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { throw POSIXError(.ECONNRESET) }
        pending += chunk[..<n]
    }

    /// The next `count` responses, framed by Content-Length.
    func responses(_ count: Int) throws -> [Response] {
        var out: [Response] = []
        while out.count < count {
            let end = Array("\r\n\r\n".utf8)
            var headEnd: Int?
            while headEnd == nil {
                headEnd = pending.indices.dropLast(3).first { Array(pending[$0..<$0 + 4]) == end }
                if headEnd == nil { try fill() }
            }
            let lines = String(decoding: pending[..<headEnd!], as: UTF8.self).components(separatedBy: "\r\n")
            let status = Int(lines[0].split(separator: " ")[1]) ?? 0
            var headers: [String: String] = [:]
            for line in lines.dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
            let length = Int(headers["content-length"] ?? "0") ?? 0
            let start = headEnd! + 4
            while pending.count < start + length { try fill() }
            out.append(Response(status: status, headers: headers, body: Array(pending[start..<start + length])))
            pending.removeFirst(start + length)
        }
        return out
    }

    /// Whether the server has closed the connection (a read returns end of file at once).
    func isClosedByPeer() -> Bool {
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, Int32(MSG_DONTWAIT)) == 0
    }
}
