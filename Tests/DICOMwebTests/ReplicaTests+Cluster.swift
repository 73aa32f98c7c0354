import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import ObjectStorage
import StoreTestSupport
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Real processes: `tessera serve` replicas on one fresh PostgreSQL database and one fresh bucket of
/// the test services (Tools/test starts them: Tools/services/postgres and Tools/services/s3), behind
/// Debian's nginx (Tools/services/nginx). Missing services are a failure that says to run Tools/test.
final class ReplicaCluster: @unchecked Sendable {
    private(set) var replicas: [ServedTessera] = []
    let database: String
    let bucket: String
    let balancerFolder: String
    let balancerPort = ServedTessera.freePort()
    var balancer: String { "http://127.0.0.1:\(balancerPort)" }
    private let endpoint: URL
    private let environment: [String: String]

    private init(database: String, bucket: String, endpoint: URL) {
        self.database = database
        self.bucket = bucket
        balancerFolder = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-nginx-\(UUID().uuidString)").path
        self.endpoint = endpoint
        let credentials = TestBackends.s3Credentials
        environment = ["AWS_ACCESS_KEY_ID": credentials.accessKeyID, "AWS_SECRET_ACCESS_KEY": credentials.secretAccessKey, "AWS_REGION": "us-east-1"]
    }

    /// `count` replicas (started one after the other: the first migrates the fresh database) and nginx.
    static func start(replicas count: Int = 2) async throws -> ReplicaCluster {
        let endpoint = try TestBackends.s3Endpoint()
        let database = try await TestBackends.freshPostgresDatabase()
        let bucket = "tessera-replicas-" + UUID().uuidString.lowercased().prefix(12)
        try await TestBackends.s3Client().createBucket(bucket)
        let cluster = ReplicaCluster(database: database, bucket: bucket, endpoint: endpoint)
        do {
            for _ in 0..<count { try cluster.addReplica() }
            if count > 0 { try cluster.balance() }
        } catch {
            cluster.stop()
            throw error
        }
        return cluster
    }

    /// A replica with the deployment guide's command line (Docs/deployment.md); `index` another URL
    /// of the same database (through a proxy).
    @discardableResult
    func addReplica(index: String? = nil, _ extra: [String] = []) throws -> ServedTessera {
        let arguments = ["--no-demo", "--index", index ?? database, "--blobs", "s3://\(bucket)/blobs", "--s3-endpoint", endpoint.absoluteString] + extra
        let replica = try ServedTessera(arguments, environment: environment)
        replicas.append(replica)
        return replica
    }

    /// (Re)writes nginx's configuration with every replica as an upstream and starts or reloads it.
    func balance() throws {
        let script = Corpus.packageRoot.appendingPathComponent("Tools/services/nginx").path
        let r = try Corpus.runCapturing(script, ["start", balancerFolder, String(balancerPort)] + replicas.map { "127.0.0.1:\($0.port)" })
        guard r.status == 0 else { throw ServeTestError(description: "Tools/services/nginx start: \(String(decoding: r.err, as: UTF8.self))") }
    }

    func url(_ replica: ServedTessera) -> String { "http://127.0.0.1:\(replica.port)" }

    /// Every process SIGKILLed (nginx's stop ends with SIGKILL too); the database and bucket stay for
    /// a post-mortem until the services' folder goes (TestBackends drops stale databases).
    func stop() {
        for replica in replicas { replica.kill() }
        let script = Corpus.packageRoot.appendingPathComponent("Tools/services/nginx").path
        _ = try? Corpus.runCapturing(script, ["stop", balancerFolder])
        try? FileManager.default.removeItem(atPath: balancerFolder)
    }

    /// What nginx logged per request (upstreams tried and their statuses), for failure messages.
    var accessLog: String { (try? String(contentsOfFile: balancerFolder + "/access.log", encoding: .utf8)) ?? "" }
}

/// A TCP forwarder on loopback (Python, SIGKILLed by `stop`): what a replica sees of PostgreSQL
/// when the network between them breaks.
final class TCPForwarder {
    let port: Int
    let target: Int
    private var process: Process?

    static let script = """
        import socket, sys, threading
        server = socket.socket(); server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", int(sys.argv[1]))); server.listen(64)
        def pump(a, b):
            try:
                while (data := a.recv(65536)): b.sendall(data)
            except OSError: pass
            for s in (a, b):
                try: s.shutdown(socket.SHUT_RDWR)
                except OSError: pass
        while True:
            client, _ = server.accept()
            upstream = socket.create_connection(("127.0.0.1", int(sys.argv[2])))
            for x, y in ((client, upstream), (upstream, client)): threading.Thread(target=pump, args=(x, y), daemon=True).start()
        """

    init(to target: Int, port: Int = ServedTessera.freePort()) throws {
        self.port = port
        self.target = target
        try start()
    }

    func start() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Corpus.python)
        p.arguments = ["-c", Self.script, String(port), String(target)]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        process = p
        for _ in 0..<100 where !listening() { usleep(50_000) }
    }

    private func listening() -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        return withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
    }

    func stop() {
        guard let p = process else { return }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        process = nil
    }

    deinit { stop() }
}

/// One HTTP exchange, read whole.
struct Answer {
    let status: Int
    let headers: HTTPHeaders
    let body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }
    var json: Any? { try? JSONSerialization.jsonObject(with: Data(body)) }

    /// The parts of a multipart/related answer.
    func parts() throws -> [(headers: String, body: [UInt8])] {
        try DICOMwebTestCase.parts(ByteBuffer(bytes: body), contentType: headers.first(name: "content-type") ?? "")
    }

    /// SOP Instance UIDs of a STOW-RS response's ReferencedSOPSequence (0008,1199) (PS3.18 §10.5.3).
    var referencedSOPs: Set<String> {
        guard let object = json as? [String: Any], let sequence = object["00081199"] as? [String: Any],
              let items = sequence["Value"] as? [[String: Any]] else { return [] }
        return Set(items.compactMap { (($0["00081155"] as? [String: Any])?["Value"] as? [String])?.first })
    }

    /// SOP Instance UIDs (0008,0018) of a QIDO-RS or metadata JSON array.
    var sopInstanceUIDs: [String] {
        ((json as? [[String: Any]]) ?? []).compactMap { (($0["00080018"] as? [String: Any])?["Value"] as? [String])?.first }
    }
}

enum HTTP {
    static let dicom = "multipart/related; type=\"application/dicom\"; transfer-syntax=*"
    static let octets = "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*"

    static func send(_ method: HTTPMethod, _ url: String, accept: String? = nil, contentType: String? = nil, body: ByteBuffer? = nil,
                     timeout: TimeAmount = .seconds(60)) async throws -> Answer {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let accept { request.headers.add(name: "Accept", value: accept) }
        if let contentType { request.headers.add(name: "Content-Type", value: contentType) }
        if let body { request.body = .bytes(body) }
        let response = try await HTTPClient.shared.execute(request, timeout: timeout)
        let bytes = try await response.body.collect(upTo: 256 << 20)
        return Answer(status: Int(response.status.code), headers: response.headers, body: Array(bytes.readableBytesView))
    }

    static func get(_ url: String, accept: String = "application/dicom+json") async throws -> Answer {
        try await send(.GET, url, accept: accept)
    }

    /// STOW-RS of Part 10 instances as one multipart/related request (PS3.18 §10.5).
    static func stow(_ base: String, _ instances: [[UInt8]], timeout: TimeAmount = .seconds(60)) async throws -> Answer {
        try await send(.POST, base + "/dicomweb/studies", accept: "application/dicom+json",
                       contentType: "multipart/related; type=\"application/dicom\"; boundary=XyZ-boundary",
                       body: DICOMwebTestCase.multipart(instances), timeout: timeout)
    }
}
