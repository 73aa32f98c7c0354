import AsyncHTTPClient
import ImageSetStore

/// Blobs in an S3-compatible bucket: the same `BlobStore` the file store fills (Docs/deployment.md).
public enum ObjectStorageNamespace {}
