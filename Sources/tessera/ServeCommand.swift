import ArgumentParser
import DICOMweb
import Foundation
import Hummingbird
import ImageSetStore
import Logging

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve DICOMweb (STOW-RS, QIDO-RS, WADO-RS) and the image-set API from a data folder."
    )

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on.") var port = 8080
    @Option(help: "The data folder (created when missing).") var data = ".data"
    @Option(help: "Largest STOW-RS request, in bytes.") var maximumRequestSize = 8 << 30
    @Option(help: "Folder of the demo study loaded into an empty data folder.") var demo = "TestImages/demo"
    @Flag(help: "Do not load the demo study into an empty data folder.") var noDemo = false
    @Option(help: "Versions per image set that DELETE and replacement keep, freeing older blobs (0: keep all). Stored in the data folder.")
    var retainVersions: Int?
    @Option(name: .customLong("trusted-proxy"), help: ArgumentHelp("A proxy (CIDR or address) whose Forwarded / X-Forwarded-* headers are believed; repeatable, replaces the default 127.0.0.0/8 and ::1.", valueName: "CIDR"))
    var trustedProxies: [CIDR] = []
    @Option(name: .customLong("audit-syslog"), help: ArgumentHelp("Also send each audit record as a DICOM audit message (IHE ATNA) to this syslog receiver (RFC 5424; UDP unless tcp://).", valueName: "[tcp://]HOST:PORT"))
    var auditSyslog: String?
    @Option(name: .customLong("audit-buffer"), help: "Read audit records queued at most while the disk is slow; beyond it they are dropped and counted (Docs/security.md).")
    var auditBuffer = 10_000

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .info
            return handler
        }
        let logger = Logger(label: "tessera")
        let store: Datastore
        do { store = try Datastore(folder: data, auditBufferCapacity: auditBuffer) } catch {
            logger.error("cannot open the data folder", metadata: ["folder": "\(data)", "error": "\(error)"])
            throw ExitCode.failure
        }
        if let retainVersions {
            guard retainVersions >= 0 else { throw ValidationError("--retain-versions is 0 (keep all) or more") }
            try store.setRetainVersions(retainVersions == 0 ? nil : retainVersions)
        }
        let s = store.startup
        if s.orphanBlobsRemoved > 0 || s.stagedFilesRemoved > 0 || !s.missingBlobs.isEmpty {
            logger.warning("start-up sweep", metadata: ["orphansRemoved": "\(s.orphanBlobsRemoved)", "stagedRemoved": "\(s.stagedFilesRemoved)",
                                                     "missingBlobs": "\(s.missingBlobs.count)"])
        }
        if !noDemo, try store.index.imageSets(ImageSetFilter()).isEmpty {
            let files = ((try? FileManager.default.contentsOfDirectory(atPath: demo)) ?? []).filter { $0.hasSuffix(".dcm") }.sorted()
            var stored = 0
            for f in files where await store.ingest(file: demo + "/" + f, reason: "demo").status == .stored { stored += 1 }
            logger.info("demo study loaded", metadata: ["instances": "\(stored)", "folder": "\(demo)"])
        }
        var config = DICOMwebConfiguration()
        config.host = host
        config.port = port
        config.maximumRequestSize = maximumRequestSize
        if !trustedProxies.isEmpty { config.trustedProxies = trustedProxies }
        logger.info("serving", metadata: ["url": "http://\(host):\(port)/dicomweb", "data": "\(data)"])
        var syslog: AuditSyslogForwarder?
        if let auditSyslog {
            guard let (transport, host, port) = AuditSyslogForwarder.parse(auditSyslog) else {
                throw ValidationError("--audit-syslog is HOST:PORT, udp://HOST:PORT or tcp://HOST:PORT")
            }
            syslog = try AuditSyslogForwarder(store: store, host: host, port: port, transport: transport, logger: logger)
            syslog?.start()
        }
        let app = buildApplication(store: store, configuration: config, logger: logger)
        // runService handles SIGINT/SIGTERM: the listener closes and in-flight requests finish.
        try await app.runService()
        store.flushAudit()  // what reads queued goes on record before the process ends
        syslog?.stop()
    }
}

/// `--trusted-proxy 10.0.0.0/8`, `--trusted-proxy ::1`: ArgumentParser rejects anything else.
extension CIDR: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
}
