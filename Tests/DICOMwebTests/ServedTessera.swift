import Foundation
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The real `tessera serve` binary on a free loopback port, for the tests of what only a process
/// shows: TLS, signals, the config file and exit statuses.
final class ServedTessera {
    let process = Process()
    let port: Int
    let data: String
    let stderrPath: String

    /// Starts `tessera serve ARGS --data (temporary)` and waits for `/health` (over https with `ca`).
    /// `port: false` leaves `--port` to the arguments (a config file); `port` is then the one given.
    /// `environment` is added to the test's own (credentials of the backends). `data`: the data folder
    /// of an earlier server (`stop(keepingData: true)`), for a restart.
    init(_ arguments: [String], port: Int? = nil, ca: String? = nil, addPort: Bool = true, environment: [String: String] = [:],
         data: String? = nil) throws {
        self.port = port ?? Self.freePort()
        self.data = data ?? FileManager.default.temporaryDirectory.appendingPathComponent("tessera-served-\(UUID().uuidString)").path
        stderrPath = self.data + ".stderr"
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: try Corpus.product("tessera"))
        process.currentDirectoryURL = Corpus.packageRoot  // the demo study: TestImages/demo
        process.arguments = ["serve", "--data", self.data] + (addPort ? ["--port", String(self.port)] : []) + arguments
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        try process.run()
        let scheme = ca == nil ? "http" : "https"
        for _ in 0..<300 {
            if (try? curl(["-sf", "\(scheme)://127.0.0.1:\(self.port)/health"] + (ca.map { ["--cacert", $0] } ?? [])))?.status == 0 { return }
            guard process.isRunning else { break }
            usleep(100_000)
        }
        stop()
        throw ServeTestError(description: "tessera serve did not start: \(stderr)")
    }

    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }
    var pid: Int32 { process.processIdentifier }

    /// Set by `stop(keepingData: true)`: a later server has the folder (deinit leaves it too).
    private var dataKept = false

    func stop(keepingData: Bool = false) {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        dataKept = dataKept || keepingData
        if !dataKept { try? FileManager.default.removeItem(atPath: data) }
        try? FileManager.default.removeItem(atPath: stderrPath)
    }

    /// SIGKILL: a replica dying without a chance to finish anything (and one that cannot hold up
    /// `swift test` by ignoring SIGTERM).
    func kill() {
        if process.isRunning { Glibc.kill(pid, SIGKILL) }
        stop()
    }

    deinit { stop() }

    /// A port nothing listens on now: bound to 0, read back, closed.
    static func freePort() -> Int { Corpus.freeLoopbackPort() }
}

struct ServeTestError: Error, CustomStringConvertible { let description: String }

/// curl's status, stdout and stderr.
func curl(_ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
    let r = try Corpus.runCapturing(try Corpus.tool("curl"), arguments)
    return (r.status, String(decoding: r.out, as: UTF8.self), String(decoding: r.err, as: UTF8.self))
}

/// `tessera serve ARGS` expected to fail at once: its exit status and standard error.
/// `environment`: variables set for it (through env(1)).
func serveFailing(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, err: String) {
    let data = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-refused-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: data) }
    let serve = [try Corpus.product("tessera"), "serve", "--data", data, "--no-demo", "--port", String(ServedTessera.freePort())] + arguments
    let r = try Corpus.runCapturing(try Corpus.tool("env"), environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" } + serve)
    return (r.status, String(decoding: r.err, as: UTF8.self))
}

/// A test CA, an intermediate and server certificates for 127.0.0.1 and localhost, made by
/// `openssl` in a temporary folder (EC P-256: quick to generate).
struct TestPKI {
    let folder: String
    var ca: String { folder + "/ca.pem" }

    init() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-pki-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try write("ca.ext", "basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign,cRLSign\n")
        try write("leaf.ext", "basicConstraints=CA:false\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
        try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key",
                     "-out", "ca.pem", "-subj", "/CN=Tessera Test Root CA", "-days", "2", "-addext", "basicConstraints=critical,CA:true",
                     "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        try sign("intermediate", issuer: "ca", serial: "0x0A", extensions: "ca.ext")
    }

    func write(_ name: String, _ text: String) throws {
        try text.write(toFile: folder + "/" + name, atomically: true, encoding: .utf8)
    }

    func openssl(_ arguments: [String]) throws {
        let r = try Corpus.runCapturing(try Corpus.tool("openssl"), arguments.map { $0.hasSuffix(".pem") || $0.hasSuffix(".key") || $0.hasSuffix(".csr") || $0.hasSuffix(".ext") ? folder + "/" + $0 : $0 })
        guard r.status == 0 else { throw ServeTestError(description: "openssl \(arguments.prefix(2)): \(String(decoding: r.err, as: UTF8.self))") }
    }

    /// NAME.key and NAME.pem, signed by ISSUER with the serial number given.
    func sign(_ name: String, issuer: String, serial: String, extensions: String = "leaf.ext") throws {
        try openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "\(name).key",
                     "-out", "\(name).csr", "-subj", "/CN=\(name)"])
        try openssl(["x509", "-req", "-in", "\(name).csr", "-CA", "\(issuer).pem", "-CAkey", "\(issuer).key", "-set_serial", serial,
                     "-days", "2", "-extfile", extensions, "-out", "\(name).pem"])
    }

    /// A server certificate signed by the intermediate; NAME-chain.pem holds it and the intermediate.
    func server(_ name: String, serial: String) throws -> (chain: String, key: String) {
        try sign(name, issuer: "intermediate", serial: serial)
        let chain = try String(contentsOfFile: "\(folder)/\(name).pem", encoding: .utf8) + String(contentsOfFile: "\(folder)/intermediate.pem", encoding: .utf8)
        try write("\(name)-chain.pem", chain)
        return ("\(folder)/\(name)-chain.pem", "\(folder)/\(name).key")
    }

    func remove() { try? FileManager.default.removeItem(atPath: folder) }
}
