import ImageSetStore
import PostgresIndex

extension TestBackends {
    /// One replica's datastore in-process: the index on the PostgreSQL database `url`, blobs in the
    /// folder `blobs`, both shared with the other replicas opened on them (no folder lock).
    public static func replicaDatastore(folder: String, url: String, blobs: String) async throws -> Datastore {
        try await Datastore.open(folder: folder, index: try await postgresIndex(url: url), blobs: try FileBlobStore(root: blobs), shared: true)
    }
}
