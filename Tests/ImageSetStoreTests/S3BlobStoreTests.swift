import Crypto
import Foundation
import ImageSetStore
import NIOCore
@testable import ObjectStorage
import StoreTestSupport
import TestSupport
import XCTest

/// S3BlobStore against a real S3-compatible server (moto, started by Tools/test through
/// Tools/services/s3, with signature checking on), and SigV4Signer against botocore.
final class S3BlobStoreTests: XCTestCase {
    var folder = ""
    override func setUpWithError() throws { folder = try StoreFixtures.temporaryFolder() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

    func makeStore() async throws -> S3BlobStore { try await TestBackends.s3BlobStore(staging: folder + "/staging") }

    static func random(_ count: Int, seed: UInt64) -> [UInt8] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<count).map { _ in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return UInt8(truncatingIfNeeded: state)
        }
    }

    // MARK: The signer

    /// AWS SigV4 (Authorization header, S3's single URI encoding, UNSIGNED-PAYLOAD, session token):
    /// every request of Tools/oracles/botocore_sigv4.py signed here gives botocore's header byte for byte.
    func testSignerMatchesBotocore() throws {
        struct Case: Decodable {
            let name, method, endpoint, bucket, key, body, accessKey, secret, region, path, host, amzDate, contentSHA256, authorization: String
            let query, headers: [[String]]
            let unsigned: Bool
            let token: String?
            let date: Double
        }
        let cases = try JSONDecoder().decode([Case].self, from: try Corpus.oracle("botocore_sigv4.py", []))
        XCTAssertGreaterThanOrEqual(cases.count, 12)
        for c in cases {
            let signer = SigV4Signer(credentials: S3Credentials(accessKeyID: c.accessKey, secretAccessKey: c.secret, sessionToken: c.token),
                                     region: c.region)
            let client = S3Client(endpoint: URL(string: c.endpoint)!, region: c.region, credentials: signer.credentials)
            let (_, host, path) = client.address(bucket: c.bucket, key: c.key)
            XCTAssertEqual(path, c.path, c.name)
            XCTAssertEqual(host, c.host, c.name)
            var body = [UInt8]()
            var hex = Array(c.body.utf8)[...]
            while !hex.isEmpty { body.append(UInt8(String(decoding: hex.prefix(2), as: UTF8.self), radix: 16)!); hex = hex.dropFirst(2) }
            let hash = c.unsigned ? SigV4Signer.unsignedPayload : SigV4Signer.hex(SHA256.hash(data: body))
            let signed = signer.sign(method: c.method, host: host, path: path, query: c.query.map { ($0[0], $0[1]) },
                                     headers: c.headers.map { ($0[0], $0[1]) }, payloadHash: hash, date: Date(timeIntervalSince1970: c.date))
            let headers = Dictionary(signed.map { ($0.0.lowercased(), $0.1) }, uniquingKeysWith: { a, _ in a })
            XCTAssertEqual(headers["x-amz-date"], c.amzDate, c.name)
            XCTAssertEqual(headers["x-amz-content-sha256"], c.contentSHA256, c.name)
            XCTAssertEqual(headers["x-amz-security-token"], c.token, c.name)
            XCTAssertEqual(headers["authorization"], c.authorization, c.name)
        }
    }

    // MARK: Every BlobStore operation

    func testEveryOperationAgainstTheServer() async throws {
        let store = try await makeStore()
        XCTAssertNil(store.localPath(try XCTUnwrap(BlobID(hex: String(repeating: "ab", count: 32)))))
        let bytes = Self.random(100_000, seed: 1)
        let staged = try store.stage(bytes: bytes)
        XCTAssertTrue(FileManager.default.fileExists(atPath: staged.path))
        let v1 = try await store.contains(staged.id)
        XCTAssertFalse(v1)
        let v2 = try await store.commit(staged)
        XCTAssertTrue(v2)
        try await store.sync()
        XCTAssertFalse(FileManager.default.fileExists(atPath: staged.path), "the staged file goes once uploaded")
        let v3 = try await store.contains(staged.id)
        XCTAssertTrue(v3)
        XCTAssertEqual(store.key(staged.id), "blobs/\(staged.id.hex.prefix(2))/\(staged.id.hex.dropFirst(2))")
        let v4 = try await store.client.headObject(bucket: store.bucket, key: store.key(staged.id))?.size
        XCTAssertEqual(v4, bytes.count)
        let v5 = try await store.read(staged.id)
        XCTAssertEqual(v5, bytes)
        let v6 = try await store.read(staged.id, range: 1000..<5000)
        XCTAssertEqual(v6, Array(bytes[1000..<5000]))
        let v7 = try await store.read(staged.id, range: 7..<7)
        XCTAssertEqual(v7, [])
        var buffer = ByteBuffer()
        try await store.read(staged.id, ranges: [0..<10, 50_000..<50_100, 99_990..<100_000], into: &buffer)
        XCTAssertEqual(Array(buffer.readableBytesView), Array(bytes[0..<10] + bytes[50_000..<50_100] + bytes[99_990..<100_000]))

        // The same bytes again: not new, the staged copy dropped.
        let again = try store.stage(bytes: bytes)
        let v8 = try await store.commit(again)
        XCTAssertFalse(v8)
        XCTAssertFalse(FileManager.default.fileExists(atPath: again.path))

        // Streamed and written through callbacks, as STOW stages them.
        let chunks = [Array(bytes[0..<3]), Array(bytes[3..<40])]
        let streamed = try await store.stage(AsyncThrowingStream { c in chunks.forEach { c.yield($0) }; c.finish() }, limit: 1000)
        let writer = try store.makeWriter(limit: 1000)
        try Array(bytes[0..<40]).withUnsafeBytes { try writer.write($0) }
        let written = try writer.finish()
        XCTAssertEqual(streamed.id, written.id)
        let v9 = try await store.commit(streamed)
        XCTAssertTrue(v9)
        store.discard(written)
        XCTAssertFalse(FileManager.default.fileExists(atPath: written.path))
        let v10 = try await store.read(streamed.id)
        XCTAssertEqual(v10, Array(bytes[0..<40]))
        let v11 = Set(try await store.list())
        XCTAssertEqual(v11, [staged.id, streamed.id])

        try await store.remove(staged.id)
        try await store.remove(staged.id)  // removing what is gone is no error, as on the file store
        let v12 = try await store.contains(staged.id)
        XCTAssertFalse(v12)
        do {
            _ = try await store.read(staged.id)
            XCTFail("a removed blob was read")
        } catch let e as BlobStoreError {
            XCTAssertEqual(e.kind, .notFound)
        }
        do {
            _ = try await store.read(streamed.id, range: 30..<41)
            XCTFail("a range beyond the end was read")
        } catch let e as BlobStoreError {
            XCTAssertEqual(e.kind, .io, "\(e)")
        }
        let v13 = try await store.list()
        XCTAssertEqual(v13, [streamed.id])
    }

    /// A 40 MiB blob goes up in 8 MiB parts (an ETag of five parts) and reads back byte for byte,
    /// whole and across part boundaries.
    func testMultipartUploadOfA40MiBBlob() async throws {
        let store = try await makeStore()
        let bytes = Self.random(40 << 20, seed: 2)
        let writer = try store.makeWriter(limit: 64 << 20)
        try bytes.withUnsafeBytes { try writer.write($0) }
        let staged = try writer.finish()
        let start = ContinuousClock.now
        let v14 = try await store.commit(staged)
        XCTAssertTrue(v14)
        let uploaded = ContinuousClock.now - start
        let head = try await store.client.headObject(bucket: store.bucket, key: store.key(staged.id))
        XCTAssertEqual(head?.size, bytes.count)
        XCTAssertTrue(head?.etag.hasSuffix("-5\"") == true, head?.etag ?? "no ETag")
        let readStart = ContinuousClock.now
        let back = try await store.read(staged.id)
        print("multipart: 40 MiB uploaded in \(uploaded), read back in \(ContinuousClock.now - readStart)")
        XCTAssertEqual(SHA256.hash(data: back), SHA256.hash(data: bytes))
        let boundary = 8 << 20
        let v15 = try await store.read(staged.id, range: boundary - 100..<boundary + 100)
        XCTAssertEqual(v15, Array(bytes[boundary - 100..<boundary + 100]))
        // Committing it again refreshes it without uploading it.
        let again = try store.stage(bytes: Array(bytes))
        let v16 = try await store.commit(again)
        XCTAssertFalse(v16)
    }

    /// Frames are read as byte ranges: any set of ranges, near or far apart, in order or not,
    /// gives exactly the bytes of those ranges, whichever GETs serve them.
    func testRangedReadsAreByteIdentical() async throws {
        var store = try await makeStore()
        let bytes = Self.random(1 << 20, seed: 3)
        let staged = try store.stage(bytes: bytes)
        _ = try await store.commit(staged)
        let sets: [[Range<Int>]] = [
            [0..<1],
            [0..<(1 << 20)],
            [100..<200, 200..<300, 308..<4000],  // fragments a few item-header bytes apart
            [10..<20, 500_000..<500_010, 1_048_000..<1_048_576],  // far apart
            [900_000..<900_500, 1000..<2000],  // backwards
            [5..<5, 6..<7],
        ]
        for gap in [0, 64 << 10, 1 << 20] {
            store.rangeMergeGap = gap
            for ranges in sets {
                var buffer = ByteBuffer()
                try await store.read(staged.id, ranges: ranges, into: &buffer)
                XCTAssertEqual(Array(buffer.readableBytesView), ranges.flatMap { Array(bytes[$0]) }, "\(ranges) gap \(gap)")
            }
        }
        XCTAssertEqual(S3BlobStore.coalesce([0..<10, 12..<20, 100..<110, 50..<60], gap: 5).map(\.count), [2, 1, 1])
    }

    /// ListObjectsV2 pages (PS: a page of 7 keys here, 1,000 on S3) are followed to the end; keys that
    /// are not blobs are left out.
    func testListFollowsContinuationTokens() async throws {
        var store = try await makeStore()
        store.listPageSize = 7
        var ids: Set<BlobID> = []
        for i in 0..<25 {
            let staged = try store.stage(bytes: Array("blob \(i)".utf8))
            ids.insert(staged.id)
            _ = try await store.commit(staged)
        }
        try await store.client.putObject(bucket: store.bucket, key: "blobs/not-a-blob", body: ByteBuffer(string: "x"))
        try await store.client.putObject(bucket: store.bucket, key: "elsewhere/ab/" + String(repeating: "c", count: 62), body: ByteBuffer(string: "x"))
        let page = try await store.client.listObjects(bucket: store.bucket, prefix: "blobs/", maxKeys: 7)
        XCTAssertEqual(page.objects.count, 7)
        XCTAssertNotNil(page.next)
        let listed = try await store.list()
        XCTAssertEqual(listed.count, 25)
        XCTAssertEqual(Set(listed), ids)
    }

    /// The sweep's candidates: blobs last written before a time. A commit of a blob that exists
    /// refreshes its time, so a sweep with a grace period cannot take it before the index row commits.
    func testListModifiedBeforeAndTheRefreshOfAnExistingBlob() async throws {
        let store = try await makeStore()
        let old = try store.stage(bytes: Array("old".utf8))
        let oldID = old.id
        _ = try await store.commit(old)
        try await Task.sleep(for: .milliseconds(1100))
        let cutoff = Date()
        try await Task.sleep(for: .milliseconds(1100))
        let new = try store.stage(bytes: Array("new".utf8))
        _ = try await store.commit(new)
        let v17 = try await store.list(modifiedBefore: cutoff)
        XCTAssertEqual(v17, [oldID])
        let v18 = try await store.list(modifiedBefore: Date.distantPast)
        XCTAssertEqual(v18, [])
        let v19 = Set(try await store.list(modifiedBefore: Date().addingTimeInterval(5)))
        XCTAssertEqual(v19, [oldID, new.id])
        let v20 = try await store.commit(try store.stage(bytes: Array("old".utf8)))
        XCTAssertFalse(v20)
        let v21 = try await store.list(modifiedBefore: cutoff)
        XCTAssertEqual(v21, [], "the duplicate commit refreshed the old blob")
        let v22 = try await store.read(oldID)
        XCTAssertEqual(v22, Array("old".utf8))
    }

    /// Figures for Docs/store.md: a 100 KB blob's commit (HEAD + PUT) and read, and a frame's ranges
    /// read with one GET spanning them against one GET per range, near together and far apart.
    func testMeasuredCosts() async throws {
        var store = try await makeStore()
        func time(_ n: Int, _ body: () async throws -> Void) async rethrows -> Duration {
            let start = ContinuousClock.now
            for _ in 0..<n { try await body() }
            return (ContinuousClock.now - start) / n
        }
        var seed: UInt64 = 100
        let put = try await time(20) {
            seed += 1
            _ = try await store.commit(try store.stage(bytes: Self.random(100_000, seed: seed)))
        }
        let small = try store.stage(bytes: Self.random(100_000, seed: 99))
        _ = try await store.commit(small)
        let get = try await time(20) {
            let bytes = try await store.read(small.id)
            XCTAssertEqual(bytes.count, 100_000)
        }
        let big = Self.random(8 << 20, seed: 98)
        let staged = try store.stage(bytes: big)
        _ = try await store.commit(staged)
        // Fragments of one frame (16 of 64 KiB, item headers of 8 bytes between), and 4 frames spread over 8 MiB.
        let near = (0..<16).map { i in (1000 + i * (65536 + 8))..<(1000 + i * (65536 + 8) + 65536) }
        let far = (0..<4).map { i in (i * (2 << 20))..<(i * (2 << 20) + 65536) }
        var lines = ["commit of 100 KB: \(put); read of 100 KB: \(get)"]
        for (name, ranges) in [("near", near), ("far", far)] {
            for (how, gap) in [("one GET per range", 0), ("one spanning GET", Int.max / 2)] {
                store.rangeMergeGap = gap
                let t = try await time(10) {
                    var buffer = ByteBuffer()
                    try await store.read(staged.id, ranges: ranges, into: &buffer)
                    XCTAssertEqual(buffer.readableBytes, ranges.reduce(0) { $0 + $1.count })
                }
                lines.append("\(name) ranges, \(how): \(t)")
            }
        }
        print("S3 costs against moto:\n  " + lines.joined(separator: "\n  "))
    }

    // MARK: Errors

    func testAMissingBucketIsAClearError() async throws {
        let base = try await makeStore()
        let store = try S3BlobStore(bucket: base.bucket + "-missing", prefix: "", endpoint: try TestBackends.s3Endpoint(), region: "us-east-1",
                                    credentials: TestBackends.s3Credentials, staging: folder + "/staging")
        let staged = try store.stage(bytes: [1, 2, 3])
        for attempt in ["commit", "read", "list"] {
            do {
                switch attempt {
                case "commit": _ = try await store.commit(staged)
                case "read": _ = try await store.read(staged.id)
                default: _ = try await store.list()
                }
                XCTFail("\(attempt) on a missing bucket succeeded")
            } catch let e as S3Error {
                XCTAssertEqual(e.status, 404, "\(attempt): \(e)")
                XCTAssertTrue(e.code == "NoSuchBucket" || e.code == "NotFound", "\(attempt): \(e)")
                XCTAssertTrue("\(e)".contains(store.bucket), "\(e)")
            }
        }
        store.discard(staged)
    }

    func testWrongCredentialsAreAClearError() async throws {
        let base = try await makeStore()
        let good = TestBackends.s3Credentials
        for (credentials, code) in [(S3Credentials(accessKeyID: "AKIAWRONGWRONGWRONG1", secretAccessKey: good.secretAccessKey), "InvalidAccessKeyId"),
                                    (S3Credentials(accessKeyID: good.accessKeyID, secretAccessKey: "wrong"), "SignatureDoesNotMatch")] {
            let store = try S3BlobStore(bucket: base.bucket, prefix: "blobs", endpoint: try TestBackends.s3Endpoint(), region: "us-east-1",
                                        credentials: credentials, staging: folder + "/staging")
            do {
                _ = try await store.list()
                XCTFail("listed with \(credentials.accessKeyID)")
            } catch let e as S3Error {
                XCTAssertEqual(e.status, 403, "\(e)")
                XCTAssertEqual(e.code, code, "\(e)")
                XCTAssertTrue("\(e)".contains("ListObjectsV2 \(base.bucket)"), "\(e)")
            }
        }
    }

    /// Nothing listens: the request is retried (bounded), then fails saying why.
    func testConnectionErrorsAreRetriedThenReported() async throws {
        var client = S3Client(endpoint: URL(string: "http://127.0.0.1:9")!, region: "us-east-1", credentials: TestBackends.s3Credentials)
        client.maxAttempts = 3
        client.retryBaseDelay = .milliseconds(10)
        // AsyncHTTPClient keeps reconnecting until the deadline: each attempt ends at its timeout.
        client.timeout = .seconds(1)
        do {
            _ = try await client.headObject(bucket: "tessera", key: "k")
            XCTFail("a request to a closed port succeeded")
        } catch let e as S3Error {
            XCTAssertEqual(e.status, 0)
            XCTAssertEqual(e.code, "RequestFailed")
            XCTAssertTrue("\(e)".hasPrefix("S3 HeadObject tessera/k failed"), "\(e)")
        }
    }

    /// A 5xx (S3's 503 SlowDown) is retried up to `maxAttempts`, then reported with S3's code and
    /// message; a request that is not idempotent (CreateMultipartUpload) is never retried.
    func testServerErrorsAreRetriedBoundedAndOnlyWhenIdempotent() async throws {
        for (failures, succeeds, attempts) in [(2, true, 3), (10, false, 4)] {
            let (process, port) = try Self.startFlakyServer(failures: failures)
            defer { Self.stop(process) }
            var client = S3Client(endpoint: URL(string: "http://127.0.0.1:\(port)")!, region: "us-east-1", credentials: TestBackends.s3Credentials)
            client.retryBaseDelay = .milliseconds(10)
            do {
                let body = try await client.getObject(bucket: "tessera", key: "k")
                XCTAssertTrue(succeeds, "GET succeeded after \(failures) failures")
                XCTAssertEqual(body.readableBytes, 0)
            } catch let e as S3Error {
                XCTAssertFalse(succeeds, "\(e)")
                XCTAssertEqual([e.status], [503])
                XCTAssertEqual(e.code, "SlowDown")
                XCTAssertEqual("\(e)", "S3 GetObject tessera/k failed: HTTP 503 SlowDown: Please reduce your request rate. (request FLAKY1)")
            }
            let count = try await client.getObject(bucket: "_count", key: "")
            XCTAssertEqual(String(buffer: count), "\(attempts)")
        }
        let (process, port) = try Self.startFlakyServer(failures: 1)
        defer { Self.stop(process) }
        let client = S3Client(endpoint: URL(string: "http://127.0.0.1:\(port)")!, region: "us-east-1", credentials: TestBackends.s3Credentials)
        do {
            _ = try await client.createMultipartUpload(bucket: "tessera", key: "k")
            XCTFail("CreateMultipartUpload succeeded on a 503")
        } catch let e as S3Error {
            XCTAssertEqual(e.code, "SlowDown")
        }
        let count = try await client.getObject(bucket: "_count", key: "")
        XCTAssertEqual(String(buffer: count), "1")
    }

    /// SIGKILL: SIGTERM may be ignored by what the test runner's environment passes on.
    static func stop(_ process: Process) {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    static func startFlakyServer(failures: Int) throws -> (Process, Int) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Corpus.python)
        process.arguments = [Corpus.packageRoot.appendingPathComponent("Tools/oracles/s3_flaky_server.py").path, String(failures)]
        let out = Pipe()
        process.standardOutput = out
        // Not the test's stderr: a server left running would hold swift test's pipe open.
        process.standardError = FileHandle.nullDevice
        try process.run()
        var line = Data()
        while !line.contains(0x0A) {
            let more = out.fileHandleForReading.availableData
            if more.isEmpty { throw S3Error(operation: "test", status: 0, code: "NoServer", message: "the flaky S3 server did not start") }
            line += more
        }
        return (process, Int(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))!)
    }

    func testS3LocationsAreParsedWithClearErrors() throws {
        XCTAssertEqual(try S3Location(parsing: "s3://my-bucket"), S3Location(bucket: "my-bucket", prefix: ""))
        XCTAssertEqual(try S3Location(parsing: "s3://my.bucket/tessera/blobs/"), S3Location(bucket: "my.bucket", prefix: "tessera/blobs"))
        for (text, why) in [("http://bucket/x", "not an s3:// URL"), ("s3://", "no bucket name"), ("s3:///x", "no bucket name"),
                            ("s3://Upper", "not a valid bucket name"), ("s3://ab", "not a valid bucket name"),
                            ("s3://-bucket", "not a valid bucket name"), ("s3://bucket/a//b", "empty, . or .."),
                            ("s3://bucket/a/../b", "empty, . or ..")] {
            XCTAssertThrowsError(try S3Location(parsing: text), text) { XCTAssertTrue("\($0)".contains(why), "\(text): \($0)") }
        }
        // Without the test server the S3 tests fail (never skip), saying what to run.
        XCTAssertThrowsError(try TestBackends.s3Endpoint(environment: [:])) { XCTAssertTrue("\($0)".contains("run the tests through Tools/test"), "\($0)") }
        XCTAssertThrowsError(try S3Credentials.fromEnvironment([:])) { XCTAssertTrue("\($0)".contains("AWS_ACCESS_KEY_ID"), "\($0)") }
        let c = try S3Credentials.fromEnvironment(["AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t"])
        XCTAssertEqual([c.accessKeyID, c.secretAccessKey, c.sessionToken], ["k", "s", "t"])
        XCTAssertEqual(S3Credentials.region(fromEnvironment: ["AWS_REGION": "eu-west-3"]), "eu-west-3")
        XCTAssertEqual(S3Credentials.region(fromEnvironment: [:]), "us-east-1")
    }
}
