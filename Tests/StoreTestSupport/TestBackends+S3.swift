import Foundation
import ObjectStorage

/// The S3-compatible server of a test run: Tools/test starts moto (Tools/services/s3) and exports
/// TESSERA_TEST_S3_ENDPOINT and the access key it made. Missing is an error, never a skip.
extension TestBackends {
    public struct S3NotConfigured: Error, CustomStringConvertible {
        public let description = "TESSERA_TEST_S3_ENDPOINT is not set: run the tests through Tools/test, which starts an S3-compatible server "
            + "(or `eval \"$(Tools/services/s3 start DIR)\"` before swift test)"
    }

    public static func s3Endpoint(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> URL {
        guard let text = environment["TESSERA_TEST_S3_ENDPOINT"], let url = URL(string: text), url.host != nil else {
            throw S3NotConfigured()
        }
        return url
    }

    public static var s3Credentials: S3Credentials {
        let env = ProcessInfo.processInfo.environment
        return S3Credentials(accessKeyID: env["TESSERA_TEST_S3_ACCESS_KEY_ID"] ?? "testing",
                             secretAccessKey: env["TESSERA_TEST_S3_SECRET_ACCESS_KEY"] ?? "testing")
    }

    /// A client of the test server, for making and inspecting buckets.
    public static func s3Client() throws -> S3Client {
        S3Client(endpoint: try s3Endpoint(), region: "us-east-1", credentials: s3Credentials)
    }

    /// A blob store on a fresh bucket of the test server, blobs under `blobs/`, staged in `staging`.
    public static func s3BlobStore(staging: String) async throws -> S3BlobStore {
        let bucket = "tessera-test-" + UUID().uuidString.lowercased().prefix(18)
        try await s3Client().createBucket(bucket)
        return try S3BlobStore(bucket: bucket, prefix: "blobs", endpoint: try s3Endpoint(), region: "us-east-1",
                               credentials: s3Credentials, staging: staging)
    }
}
