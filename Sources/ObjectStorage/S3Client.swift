import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// A failed S3 request: the operation, the HTTP status and S3's error code and message (from the
/// `<Error>` body), or status 0 and the transport error when no response came.
public struct S3Error: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let status: Int
    public let code: String
    public let message: String
    public var requestID: String? = nil

    public init(operation: String, status: Int, code: String, message: String, requestID: String? = nil) {
        self.operation = operation
        self.status = status
        self.code = code
        self.message = message
        self.requestID = requestID
    }

    public var description: String {
        let request = requestID.map { " (request \($0))" } ?? ""
        return status == 0 ? "S3 \(operation) failed: \(code): \(message)\(request)"
            : "S3 \(operation) failed: HTTP \(status) \(code): \(message)\(request)"
    }
}

/// One object of a listing.
public struct S3Object: Sendable {
    public let key: String
    public let size: Int
    public let lastModified: Date
}

/// The few S3 calls the blob store needs, signed with SigV4, over AsyncHTTPClient. Path-style
/// addressing (`ENDPOINT/BUCKET/KEY`) with an explicit endpoint, which is what S3-compatible servers
/// (MinIO, Ceph, moto) expect; virtual-hosted style (`BUCKET.s3.REGION.amazonaws.com`) on AWS itself.
public struct S3Client: Sendable {
    public let endpoint: URL?
    public let region: String
    public let signer: SigV4Signer
    let http: HTTPClient
    /// Per attempt: a request still unanswered after this fails (and is retried when idempotent).
    public var timeout: TimeAmount = .seconds(60)
    /// Attempts of an idempotent request on a connection error or a 5xx, backing off between them.
    public var maxAttempts = 4
    public var retryBaseDelay: Duration = .milliseconds(100)
    /// With a custom endpoint, path-style addressing; set false for a server that wants virtual hosts.
    public var pathStyle: Bool
    public var logger = Logger(label: "tessera.s3")

    public init(endpoint: URL?, region: String, credentials: S3Credentials, httpClient: HTTPClient = .shared) {
        self.endpoint = endpoint
        self.region = region
        self.signer = SigV4Signer(credentials: credentials, region: region)
        self.http = httpClient
        self.pathStyle = endpoint != nil
    }

    /// `/key/with/slashes`, each segment UriEncoded: what goes on the wire and into the signature.
    public static func encodePath(_ key: String) -> String { "/" + SigV4Signer.uriEncode(key, keepSlash: true) }

    struct Response {
        let status: Int
        let headers: HTTPHeaders
        let body: ByteBuffer
    }

    /// Where a request goes: scheme, Host header and encoded path for the bucket and key.
    func address(bucket: String, key: String) -> (base: String, host: String, path: String) {
        let keyPath = key.isEmpty ? (pathStyle ? "" : "/") : Self.encodePath(key)
        guard let endpoint, let host = endpoint.host else {
            return ("https://\(bucket).s3.\(region).amazonaws.com", "\(bucket).s3.\(region).amazonaws.com", keyPath)
        }
        let scheme = endpoint.scheme ?? "https"
        let defaultPort = scheme == "https" ? 443 : 80
        let hostHeader = (endpoint.port.map { $0 == defaultPort ? host : "\(host):\($0)" } ?? host)
        let basePath = endpoint.path.hasSuffix("/") ? String(endpoint.path.dropLast()) : endpoint.path
        if pathStyle {
            return ("\(scheme)://\(hostHeader)", hostHeader, basePath + "/" + SigV4Signer.uriEncode(bucket, keepSlash: false) + keyPath)
        }
        return ("\(scheme)://\(bucket).\(hostHeader)", "\(bucket).\(hostHeader)", basePath + keyPath)
    }

    /// Sends one request, signed afresh each attempt; retries idempotent ones on a transport error or
    /// a 5xx (and 429 SlowDown). A status outside `accept` becomes an `S3Error` from its XML body.
    func send(_ method: HTTPMethod, bucket: String, key: String = "", query: [(String, String)] = [],
              headers: [(String, String)] = [], body: ByteBuffer? = nil, payloadHash: String? = nil,
              idempotent: Bool = true, accept: Set<Int> = [200], maxResponse: Int = 1 << 24,
              operation: String) async throws -> Response {
        let (base, host, path) = address(bucket: bucket, key: key)
        let queryString = SigV4Signer.canonicalQuery(query)
        let url = base + path + (queryString.isEmpty ? "" : "?" + queryString)
        let hash = payloadHash ?? (body.map { SigV4Signer.hex(SHA256Digest.of($0)) } ?? SigV4Signer.emptyPayloadSHA256)
        var attempt = 0
        while true {
            attempt += 1
            var request = HTTPClientRequest(url: url)
            request.method = method
            for (name, value) in signer.sign(method: method.rawValue, host: host, path: path, query: query, headers: headers,
                                             payloadHash: hash, date: Date()) {
                request.headers.add(name: name, value: value)
            }
            if let body { request.body = .bytes(body) }
            let retryable: Bool
            let failure: S3Error
            do {
                let response = try await http.execute(request, timeout: timeout)
                let status = Int(response.status.code)
                let collected = try await response.body.collect(upTo: accept.contains(status) ? maxResponse : 1 << 20)
                if accept.contains(status) { return Response(status: status, headers: response.headers, body: collected) }
                failure = Self.error(operation: operation, status: status, headers: response.headers, body: collected)
                retryable = status >= 500 || status == 429
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                failure = S3Error(operation: operation, status: 0, code: "RequestFailed", message: "\(error)")
                retryable = true
            }
            guard idempotent, retryable, attempt < maxAttempts, !Task.isCancelled else { throw failure }
            logger.debug("retrying after \(failure)", metadata: ["attempt": "\(attempt)"])
            // Exponential backoff with full jitter: replicas that failed together do not retry together.
            let ceiling = retryBaseDelay * (1 << (attempt - 1))
            try await Task.sleep(for: ceiling * Double.random(in: 0.5...1.0))
        }
    }

    static func error(operation: String, status: Int, headers: HTTPHeaders, body: ByteBuffer) -> S3Error {
        let xml = String(buffer: body)
        let requestID = S3XML.first("RequestId", in: xml) ?? headers.first(name: "x-amz-request-id")
        if let code = S3XML.first("Code", in: xml) {
            return S3Error(operation: operation, status: status, code: code, message: S3XML.first("Message", in: xml) ?? "", requestID: requestID)
        }
        // HEAD answers have no body: name the status.
        let code = switch status {
        case 301: "PermanentRedirect"
        case 403: "AccessDenied"
        case 404: "NotFound"
        case 412: "PreconditionFailed"
        case 500: "InternalError"
        case 503: "ServiceUnavailable"
        default: "HTTP\(status)"
        }
        return S3Error(operation: operation, status: status, code: code, message: HTTPResponseStatus(statusCode: status).reasonPhrase,
                       requestID: requestID)
    }

    // MARK: Objects

    /// PUT with the body's SHA-256 signed: S3 rejects the upload when the bytes it got differ.
    @discardableResult
    public func putObject(bucket: String, key: String, body: ByteBuffer, sha256: String? = nil,
                          contentType: String = "application/octet-stream") async throws -> String? {
        let r = try await send(.PUT, bucket: bucket, key: key, headers: [("Content-Type", contentType)], body: body,
                               payloadHash: sha256, operation: "PutObject \(bucket)/\(key)")
        return r.headers.first(name: "etag")
    }

    /// The object's size and ETag (`"…-N"` for one uploaded in N parts), or nil when there is none.
    public func headObject(bucket: String, key: String) async throws -> (size: Int, etag: String)? {
        let r = try await send(.HEAD, bucket: bucket, key: key, accept: [200, 404], operation: "HeadObject \(bucket)/\(key)")
        guard r.status == 200 else { return nil }
        return (r.headers.first(name: "content-length").flatMap { Int($0) } ?? 0, r.headers.first(name: "etag") ?? "")
    }

    /// The object's bytes, or those of `range` (a 206). Missing: an S3Error with code NoSuchKey.
    public func getObject(bucket: String, key: String, range: Range<Int>? = nil) async throws -> ByteBuffer {
        var headers: [(String, String)] = []
        if let range { headers.append(("Range", "bytes=\(range.lowerBound)-\(range.upperBound - 1)")) }
        let r = try await send(.GET, bucket: bucket, key: key, headers: headers, accept: range == nil ? [200] : [206, 200],
                               maxResponse: range.map { $0.count + 1 } ?? Int.max, operation: "GetObject \(bucket)/\(key)")
        // A server that ignores Range sends the whole object with 200: take the slice.
        if let range, r.status == 200 {
            guard range.upperBound <= r.body.readableBytes else { return r.body.getSlice(at: 0, length: 0)! }
            return r.body.getSlice(at: r.body.readerIndex + range.lowerBound, length: range.count)!
        }
        return r.body
    }

    /// S3 answers 204 whether or not the key existed.
    public func deleteObject(bucket: String, key: String) async throws {
        _ = try await send(.DELETE, bucket: bucket, key: key, accept: [200, 204], operation: "DeleteObject \(bucket)/\(key)")
    }

    /// A server-side copy of the object onto itself with its metadata replaced: the bytes stay, the
    /// Last-Modified time becomes now.
    public func touchObject(bucket: String, key: String) async throws {
        let r = try await send(.PUT, bucket: bucket, key: key,
                               headers: [("x-amz-copy-source", "/\(bucket)\(Self.encodePath(key))"), ("x-amz-metadata-directive", "REPLACE"),
                                         ("Content-Type", "application/octet-stream")],
                               operation: "CopyObject \(bucket)/\(key)")
        try Self.checkEmbeddedError(r, operation: "CopyObject \(bucket)/\(key)")
    }

    /// One page of ListObjectsV2 and the token of the next, nil on the last page.
    public func listObjects(bucket: String, prefix: String, continuationToken: String? = nil, maxKeys: Int? = nil) async throws
        -> (objects: [S3Object], next: String?) {
        var query = [("list-type", "2"), ("prefix", prefix)]
        if let continuationToken { query.append(("continuation-token", continuationToken)) }
        if let maxKeys { query.append(("max-keys", String(maxKeys))) }
        let r = try await send(.GET, bucket: bucket, query: query, operation: "ListObjectsV2 \(bucket)/\(prefix)")
        let xml = String(buffer: r.body)
        let objects = S3XML.all("Contents", in: xml).compactMap { item -> S3Object? in
            guard let key = S3XML.first("Key", in: item) else { return nil }
            return S3Object(key: key, size: S3XML.first("Size", in: item).flatMap { Int($0) } ?? 0,
                            lastModified: S3XML.first("LastModified", in: item).flatMap(S3XML.date) ?? .distantPast)
        }
        let truncated = S3XML.first("IsTruncated", in: xml) == "true"
        return (objects, truncated ? S3XML.first("NextContinuationToken", in: xml) : nil)
    }

    /// Every page of ListObjectsV2 under `prefix`.
    public func listAllObjects(bucket: String, prefix: String, pageSize: Int? = nil) async throws -> [S3Object] {
        var all: [S3Object] = []
        var token: String? = nil
        repeat {
            let page = try await listObjects(bucket: bucket, prefix: prefix, continuationToken: token, maxKeys: pageSize)
            all += page.objects
            token = page.next
        } while token != nil
        return all
    }

    // MARK: Multipart upload

    /// Not retried: a retry after a lost answer would leave an upload nobody completes or aborts.
    public func createMultipartUpload(bucket: String, key: String) async throws -> String {
        let op = "CreateMultipartUpload \(bucket)/\(key)"
        let r = try await send(.POST, bucket: bucket, key: key, query: [("uploads", "")],
                               headers: [("Content-Type", "application/octet-stream")], idempotent: false, operation: op)
        guard let id = S3XML.first("UploadId", in: String(buffer: r.body)) else {
            throw S3Error(operation: op, status: r.status, code: "MalformedResponse", message: "no UploadId in the answer")
        }
        return id
    }

    /// Returns the part's ETag, which CompleteMultipartUpload names.
    public func uploadPart(bucket: String, key: String, uploadID: String, partNumber: Int, body: ByteBuffer, sha256: String? = nil) async throws -> String {
        let op = "UploadPart \(bucket)/\(key) #\(partNumber)"
        let r = try await send(.PUT, bucket: bucket, key: key, query: [("partNumber", String(partNumber)), ("uploadId", uploadID)],
                               body: body, payloadHash: sha256, operation: op)
        guard let etag = r.headers.first(name: "etag") else {
            throw S3Error(operation: op, status: r.status, code: "MalformedResponse", message: "no ETag in the answer")
        }
        return etag
    }

    public func completeMultipartUpload(bucket: String, key: String, uploadID: String, parts: [(number: Int, etag: String)]) async throws {
        let op = "CompleteMultipartUpload \(bucket)/\(key)"
        let xml = "<CompleteMultipartUpload>" + parts.map {
            "<Part><PartNumber>\($0.number)</PartNumber><ETag>\(S3XML.escape($0.etag))</ETag></Part>"
        }.joined() + "</CompleteMultipartUpload>"
        let r = try await send(.POST, bucket: bucket, key: key, query: [("uploadId", uploadID)], headers: [("Content-Type", "application/xml")],
                               body: ByteBuffer(string: xml), operation: op)
        try Self.checkEmbeddedError(r, operation: op)
    }

    public func abortMultipartUpload(bucket: String, key: String, uploadID: String) async throws {
        _ = try await send(.DELETE, bucket: bucket, key: key, query: [("uploadId", uploadID)], accept: [200, 204],
                           operation: "AbortMultipartUpload \(bucket)/\(key)")
    }

    /// CompleteMultipartUpload and CopyObject can fail after their 200 has been sent: the error is in the body.
    static func checkEmbeddedError(_ r: Response, operation: String) throws {
        let xml = String(buffer: r.body)
        if xml.contains("<Error>"), let code = S3XML.first("Code", in: xml) {
            throw S3Error(operation: operation, status: r.status, code: code, message: S3XML.first("Message", in: xml) ?? "",
                          requestID: S3XML.first("RequestId", in: xml))
        }
    }

    // MARK: Buckets

    /// Creates the bucket; one that exists and is ours already is fine.
    public func createBucket(_ bucket: String) async throws {
        var body: ByteBuffer? = nil
        if region != "us-east-1" {
            body = ByteBuffer(string: "<CreateBucketConfiguration><LocationConstraint>\(region)</LocationConstraint></CreateBucketConfiguration>")
        }
        let r = try await send(.PUT, bucket: bucket, body: body, accept: [200, 409], operation: "CreateBucket \(bucket)")
        if r.status == 409 {
            let e = Self.error(operation: "CreateBucket \(bucket)", status: r.status, headers: r.headers, body: r.body)
            if e.code != "BucketAlreadyOwnedByYou" { throw e }
        }
    }

    public func deleteBucket(_ bucket: String) async throws {
        _ = try await send(.DELETE, bucket: bucket, accept: [200, 204], operation: "DeleteBucket \(bucket)")
    }
}
