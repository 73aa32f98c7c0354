import AccessControl
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
    @Option(name: .customLong("trusted-proxy"), help: ArgumentHelp("A proxy (CIDR or address) whose Host, Forwarded and X-Forwarded-* headers are believed; repeatable, replaces the default 127.0.0.0/8 and ::1.", valueName: "CIDR"))
    var trustedProxies: [CIDR] = []
    @OptionGroup var auth: AuthenticationOptions
    @OptionGroup var backends: BackendOptions
    @OptionGroup var changeFeed: ChangeFeedOptions
    @OptionGroup var webhooks: WebhookServeOptions
    @Option(name: .customLong("tls-cert"), help: ArgumentHelp("Serve HTTPS with this certificate (PEM; the leaf first, then its chain); reread on SIGHUP.", valueName: "FILE"))
    var tlsCert: String?
    @Option(name: .customLong("tls-key"), help: ArgumentHelp("The certificate's private key (PEM); reread on SIGHUP.", valueName: "FILE"))
    var tlsKey: String?
    @Flag(name: .customLong("http2-cleartext"), help: "Without TLS, also answer HTTP/2 with prior knowledge (h2c, for a proxy on a trusted network) beside HTTP/1.1. With TLS, HTTP/2 is offered by ALPN anyway.")
    var http2Cleartext = false
    @Flag(name: .customLong("no-frames-fast-path"), help: "Answer every frame request through the router: none on the stored-frame fast path (Docs/architecture.md).")
    var noFramesFastPath = false
    @Option(name: .customLong("public-url"), help: ArgumentHelp("Where clients reach the service, https://host[:port][/prefix]: the start of every link in responses.", valueName: "URL"))
    var publicURL: String?
    @Option(name: .customLong("cors-origin"), help: ArgumentHelp("An origin whose browser pages may read responses (https://viewer.example, * for any, none for none); repeatable. Default: * on loopback without authentication, else none.", valueName: "ORIGIN"))
    var corsOrigins: [String] = []
    // Not an option of the file itself: see ServeCommand+Config.swift.
    @Option(help: ArgumentHelp("A JSON file of these options, keys named as the long options (\"port\": 8443, \"cors-origin\": [...]); options given here win.", valueName: "FILE"))
    var config: String?
    // Limits (Docs/security.md, "Limits").
    @Option(help: "Seconds an open connection may wait for its next request (keep-alive).") var idleTimeout = 60.0
    @Option(help: "Seconds a request's headers may take from their first byte.") var headerTimeout = 10.0
    @Option(help: "Seconds a request body may send nothing before the connection is closed.") var bodyTimeout = 30.0
    @Option(help: "Connections served at once; more wait in the listen backlog.") var maxConnections = 4096
    @Option(help: "Decodes, transcodes and renderings at once (default: the cores).") var workThreads: Int?
    @Option(help: "Requests waiting for them before 503 (default: twice the cores).") var workQueue: Int?
    @Option(help: "Bytes kept free for the index when the disk fills (a reserve file in the data folder).") var diskReserve = 64 << 20
    @Option(help: "Most a deflated data set may inflate, times its stored size (at least 1 MiB).") var maximumInflationRatio = 16
    @Option(name: .customLong("audit-syslog"), help: ArgumentHelp("Also send each audit record as a DICOM audit message (IHE ATNA) to this syslog receiver (RFC 5424; UDP unless tcp://).", valueName: "[tcp://]HOST:PORT"))
    var auditSyslog: String?
    @Option(name: .customLong("audit-buffer"), help: "Read audit records queued at most while the disk is slow; beyond it they are dropped and counted (Docs/security.md).")
    var auditBuffer = 10_000
    @Flag(help: "Record no Prometheus metrics (GET /metrics then answers 404).") var noMetrics = false
    @Option(name: .customLong("metrics-token-file"), help: ArgumentHelp("A file holding a bearer token that reads GET /metrics without admin credentials (a Prometheus scraper's; Docs/operations.md).", valueName: "FILE"))
    var metricsTokenFile: String?

    func validate() throws {
        // A deadline of 0, less, NaN or beyond a day is a typo, and would close every connection or overflow the timer.
        for (name, seconds) in [("idle-timeout", idleTimeout), ("header-timeout", headerTimeout), ("body-timeout", bodyTimeout)]
        where !(seconds > 0 && seconds <= 86_400) {
            throw ValidationError("--\(name) is more than 0 and at most 86400 seconds")
        }
        guard maxConnections >= 1 else { throw ValidationError("--max-connections is at least 1") }
        if let workThreads, workThreads < 1 { throw ValidationError("--work-threads is at least 1") }
        if let workQueue, workQueue < 0 { throw ValidationError("--work-queue is 0 or more") }
        guard diskReserve >= 0 else { throw ValidationError("--disk-reserve is 0 or more bytes") }
        guard maximumInflationRatio >= 1 else { throw ValidationError("--maximum-inflation-ratio is at least 1") }
    }

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        if config == nil && !environment.keys.contains(where: { $0.hasPrefix(Self.environmentPrefix) }) {
            try await serve()
        } else {
            try await Self.merging(configFile: config, environment: environment, commandLine: Self.commandLine).serve()
        }
    }

    func serve() async throws {
        let transport = try transportConfiguration()
        LoggingSystem.bootstrap { label in
            var handler = LineLogHandler.standardError(label: label)
            handler.logLevel = .info
            return handler
        }
        let logger = Logger(label: "tessera")
        let store: Datastore
        do {
            store = try await backends.open(folder: data, diskReserve: diskReserve, maximumInflationRatio: maximumInflationRatio,
                                            auditBuffer: auditBuffer, logger: logger)
        } catch {
            logger.error("cannot open the store", metadata: ["folder": "\(data)", "index": "\(backends.index.map(Self.redacted) ?? "sqlite")",
                                                              "error": "\(error)"])
            throw ExitCode.failure
        }
        let sweeper = backends.sweeping(store, logger: logger)
        var config = DICOMwebConfiguration()
        let authenticator = try await auth.authenticator(store: store, host: host, configuration: &config.authentication, logger: logger)
        config.authenticationEnabled = await authenticator.isEnabled()
        if let retainVersions {
            guard retainVersions >= 0 else { throw ValidationError("--retain-versions is 0 (keep all) or more") }
            try await store.setRetainVersions(retainVersions == 0 ? nil : retainVersions)
        }
        let feedPruner = try await changeFeed.start(store, logger: logger)
        config.changeFeedHeartbeat = changeFeed.heartbeat
        let s = store.startup
        if s.orphanBlobsRemoved > 0 || s.stagedFilesRemoved > 0 || !s.missingBlobs.isEmpty {
            logger.warning("start-up sweep", metadata: ["orphansRemoved": "\(s.orphanBlobsRemoved)", "stagedRemoved": "\(s.stagedFilesRemoved)",
                                                     "missingBlobs": "\(s.missingBlobs.count)"])
        }
        if !noDemo, try await store.index.imageSets(ImageSetFilter()).isEmpty {
            let files = ((try? FileManager.default.contentsOfDirectory(atPath: demo)) ?? []).filter { $0.hasSuffix(".dcm") }.sorted()
            var stored = 0
            for f in files where await store.ingest(file: demo + "/" + f, reason: "demo").status == .stored { stored += 1 }
            logger.info("demo study loaded", metadata: ["instances": "\(stored)", "folder": "\(demo)"])
        }
        config.host = host
        config.port = port
        config.maximumRequestSize = maximumRequestSize
        config.framesFastPath = !noFramesFastPath
        if !trustedProxies.isEmpty { config.trustedProxies = trustedProxies }
        config.limits.idleTimeout = idleTimeout
        config.limits.headerTimeout = headerTimeout
        config.limits.bodyTimeout = bodyTimeout
        if let workThreads { config.limits.workConcurrency = workThreads }
        if let workQueue { config.limits.workQueue = workQueue }
        config.limits.maximumConnections = Self.connectionsWithinFileLimit(maxConnections, logger: logger)
        transport.apply(to: &config)
        try applyMetricsOptions(to: &config)
        let scheme = config.tls == nil ? "http" : "https"
        logger.info("serving", metadata: ["url": "\(config.publicURL.map(\.description) ?? "\(scheme)://\(host):\(port)")/dicomweb", "data": "\(data)",
                                          "corsOrigins": "\(config.effectiveCORSOrigins)"])
        let reloader = config.tls.map { Self.reloadOnHangUp($0, logger: logger) }
        var syslog: AuditSyslogForwarder?
        if let auditSyslog {
            guard let (transport, host, port) = AuditSyslogForwarder.parse(auditSyslog) else {
                throw ValidationError("--audit-syslog is HOST:PORT, udp://HOST:PORT or tcp://HOST:PORT")
            }
            syslog = try await AuditSyslogForwarder(store: store, host: host, port: port, transport: transport, logger: logger)
            syslog?.start()
        }
        let app = buildApplication(store: store, configuration: config, logger: logger, authenticator: authenticator)
        // Webhook delivery: tasks of its own, off every request's path (Docs/events.md, "Webhooks").
        let delivery = webhooks.start(store: store, logger: logger)
        // runService handles SIGINT/SIGTERM: the listener closes and in-flight requests finish.
        // The same shutdown whether the service ended or failed (a listener that cannot bind throws).
        let served: Result<Void, any Error>
        do { try await app.runService(); served = .success(()) } catch { served = .failure(error) }
        await delivery?.stop()  // cursors written, leases released: another replica takes over at once
        reloader?.cancel()
        feedPruner.cancel()
        sweeper?.cancel()
        await store.flushAudit()  // what reads queued goes on record before the process ends
        await syslog?.stop()
        try served.get()
    }
}

extension ServeCommand {
    /// A database URL without its password, for logs.
    static func redacted(_ url: String) -> String {
        guard var c = URLComponents(string: url), c.password != nil else { return url }
        c.password = "***"
        return c.string ?? "postgresql://***"
    }

    /// Raises the open-file limit to its hard maximum (each connection is a descriptor) and keeps
    /// `wanted` connections within it, with room for blobs, the index and the listener.
    static func connectionsWithinFileLimit(_ wanted: Int, logger: Logger) -> Int {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return wanted }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
            _ = getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        }
        let room = Int(clamping: limit.rlim_cur) - 128
        guard wanted > room else { return wanted }
        logger.warning("fewer connections than asked: the open-file limit is lower", metadata: [
            "maxConnections": "\(max(room, 16))", "asked": "\(wanted)", "openFileLimit": "\(limit.rlim_cur)"])
        return max(room, 16)
    }
}

/// `--trusted-proxy 10.0.0.0/8`, `--trusted-proxy ::1`: ArgumentParser rejects anything else.
extension CIDR: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
}
