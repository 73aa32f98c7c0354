import ImageSetStore
import PostgresNIO

/// The index on PostgreSQL: the same `ImageSetIndex` the embedded SQLite index fills, for replicas
/// sharing one database (Docs/deployment.md).
public enum PostgresIndexNamespace {}
