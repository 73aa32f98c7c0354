import ArgumentParser
import Foundation
import ImageSetStore
import Logging
import ObjectStorage
import PostgresIndex

/// Where the index and the blobs live (Docs/deployment.md): the data folder by default (SQLite and
/// files, one process); PostgreSQL and an S3 bucket for replicas, which then share them and keep
/// only their own staging and disk reserve in `--data`.
struct BackendOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The index on PostgreSQL, postgresql://USER@HOST:PORT/DB (password from PGPASSWORD); several replicas may share it. Default: SQLite in the data folder.", valueName: "URL"))
    var index: String?
    @Option(help: ArgumentHelp("Blobs in an S3 bucket, s3://BUCKET/PREFIX (credentials and region from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION). Default: files in the data folder.", valueName: "URL"))
    var blobs: String?
    @Option(name: .customLong("s3-endpoint"), help: ArgumentHelp("An S3-compatible server (path-style addressing), e.g. http://127.0.0.1:9000. Default: AWS.", valueName: "URL"))
    var s3Endpoint: String?
    @Option(name: .customLong("orphan-grace"), help: "Seconds an unreferenced blob is kept before a replica's sweep removes it (shared backends).")
    var orphanGrace = 3600.0
    @Option(name: .customLong("sweep-interval"), help: "Seconds between sweeps of unreferenced blobs on shared backends (0: only at start-up).")
    var sweepInterval = 3600.0

    func validate() throws {
        guard orphanGrace >= 0 else { throw ValidationError("--orphan-grace is 0 or more seconds") }
        guard sweepInterval >= 0 else { throw ValidationError("--sweep-interval is 0 or more seconds") }
        if blobs != nil && index == nil {
            throw ValidationError("--blobs needs --index: blobs in a bucket with the index in one data folder would be one process's, in a bucket others can write")
        }
        if s3Endpoint != nil && blobs == nil { throw ValidationError("--s3-endpoint needs --blobs s3://BUCKET/PREFIX") }
    }

    /// The datastore these options describe.
    func open(folder: String, diskReserve: Int, maximumInflationRatio: Int, auditBuffer: Int, logger: Logger) async throws -> Datastore {
        guard let index else {
            return try Datastore(folder: folder, diskReserve: diskReserve, maximumInflationRatio: maximumInflationRatio, auditBufferCapacity: auditBuffer)
        }
        let postgres = try await PostgresIndex.connect(url: index, logger: logger)
        let blobStore: any BlobStore
        if let blobs {
            let location = try S3Location(parsing: blobs)
            var endpoint: URL?
            if let s3Endpoint {
                guard let url = URL(string: s3Endpoint), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
                    throw ValidationError("--s3-endpoint is an http:// or https:// URL")
                }
                endpoint = url
            }
            try DataFolderError.createFolder(folder)
            blobStore = try S3BlobStore(location: location, endpoint: endpoint, region: S3Credentials.region(fromEnvironment: ProcessInfo.processInfo.environment),
                                        credentials: try S3Credentials.fromEnvironment(), staging: folder + "/staging")
        } else {
            // A PostgreSQL index with blobs in this folder: one replica's files, which other replicas
            // cannot read; fine for one process, not for a replicated service.
            logger.warning("--index without --blobs: blobs stay in this data folder, which other replicas cannot read")
            try DataFolderError.createFolder(folder)
            blobStore = try FileBlobStore(root: folder + "/blobs")
        }
        return try await Datastore.open(folder: folder, index: postgres, blobs: blobStore, shared: blobs != nil, orphanGrace: orphanGrace,
                                        diskReserve: diskReserve, maximumInflationRatio: maximumInflationRatio, auditBufferCapacity: auditBuffer)
    }

    /// Sweeps unreferenced blobs in the background on shared backends: once as the server starts (it does
    /// not wait for it), then every `sweepInterval` seconds (0: that first sweep only).
    func sweeping(_ store: Datastore, logger: Logger) -> Task<Void, Never>? {
        guard store.shared else { return nil }
        return ServeCommand.housekeeping(every: sweepInterval, done: "orphan sweep", key: "removed", failed: "orphan sweep failed",
                                         logger: logger) { try await store.sweepOrphans() }
    }
}
