import AsyncHTTPClient
import Foundation
import ImageSetStore
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// Blobs in an S3-compatible bucket, under `PREFIX/ab/cdef…` (the first two hex digits of the
/// SHA-256, then the other 62): the same `BlobStore` the file store fills, for server replicas that
/// share one bucket (Docs/store.md, "Blobs on S3-compatible storage").
///
/// Staging stays local (a `FileBlobStore` in the scratch folder: hashing, the size limit and the
/// parse's memory map are the file store's); `commit` uploads the staged file and removes it.
public struct S3BlobStore: Sendable {
    public let bucket: String
    /// Without slashes at either end; "" puts blobs at the bucket's root.
    public let prefix: String
    public let client: S3Client
    let staging: FileBlobStore
    /// Above this size a commit is a multipart upload of `partSize` parts, read from the staged file
    /// one part at a time (never the whole blob in memory).
    public var multipartThreshold = 16 << 20
    public var partSize = 8 << 20
    /// Parts in flight at once: bounds the memory of a multipart upload to this many parts.
    public var multipartConcurrency = 4
    /// Two ranges of one read closer than this go as one GET spanning both (Docs/store.md: frames).
    public var rangeMergeGap = 64 << 10
    /// ListObjectsV2's page size; nil is the server's (1,000 on S3).
    public var listPageSize: Int? = nil

    public init(bucket: String, prefix: String, endpoint: URL?, region: String, credentials: S3Credentials,
                staging: String, httpClient: HTTPClient = .shared) throws {
        self.bucket = bucket
        self.prefix = prefix.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        self.client = S3Client(endpoint: endpoint, region: region, credentials: credentials, httpClient: httpClient)
        self.staging = try FileBlobStore(root: staging)
    }

    public init(location: S3Location, endpoint: URL?, region: String, credentials: S3Credentials, staging: String,
                httpClient: HTTPClient = .shared) throws {
        try self.init(bucket: location.bucket, prefix: location.prefix, endpoint: endpoint, region: region,
                      credentials: credentials, staging: staging, httpClient: httpClient)
    }

    private var listPrefix: String { prefix.isEmpty ? "" : prefix + "/" }

    public func key(_ id: BlobID) -> String {
        let h = id.hex
        return "\(listPrefix)\(h.prefix(2))/\(h.dropFirst(2))"
    }

    func id(fromKey key: String) -> BlobID? {
        guard key.hasPrefix(listPrefix) else { return nil }
        let parts = key.dropFirst(listPrefix.count).split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].utf8.count == 2, parts[1].utf8.count == 62 else { return nil }
        return BlobID(hex: String(parts[0] + parts[1]))
    }

    // MARK: Staging (local)

    public func stage(_ chunks: some AsyncSequence<[UInt8], any Error>, limit: Int) async throws -> StagedBlob {
        try await staging.stage(chunks, limit: limit)
    }

    public func stage(bytes: [UInt8]) throws -> StagedBlob { try staging.stage(bytes: bytes) }

    public func makeWriter(limit: Int) throws -> BlobWriter { try staging.makeWriter(limit: limit) }

    public func discard(_ staged: StagedBlob) { staging.discard(staged) }

    /// Staged files left by a process that stopped before committing them.
    public func removeStaged() -> Int { staging.removeStaged() }

    public func localPath(_ id: BlobID) -> String? { nil }

    // MARK: Commit

    /// Uploads the staged blob under its key and removes the staged file. Returns whether the key was new.
    ///
    /// A blob that is already there is still written to: CopyObject onto itself (metadata REPLACE),
    /// a server-side copy that moves its Last-Modified to now without sending the bytes again. Replicas
    /// share the bucket, and an orphan sweeper (`list(modifiedBefore:)`) removes unreferenced blobs
    /// older than its grace period; an existing blob may be exactly such an orphan (an ingest that
    /// died after its upload), and without the refresh this commit could see it, then lose it to the
    /// sweep before its index row commits. With the refresh, the blob is younger than the grace period
    /// for as long as this ingest can take. A HEAD first (rather than an unconditional PUT) keeps the
    /// bytes of a re-sent instance off the wire; an If-None-Match PUT would save the HEAD of new blobs
    /// but is not implemented by every S3-compatible server.
    public func commit(_ staged: StagedBlob) async throws -> Bool {
        let key = key(staged.id)
        if try await client.headObject(bucket: bucket, key: key) != nil {
            do {
                try await client.touchObject(bucket: bucket, key: key)
                staging.discard(staged)
                return false
            } catch let e as S3Error where e.status == 404 {
                // Swept between the HEAD and the copy: upload it after all.
            }
        }
        if staged.size > multipartThreshold {
            try await multipartUpload(staged, key: key)
        } else {
            let body = try staged.bytes.map { ByteBuffer(bytes: $0) } ?? Self.readFile(staged.path, offset: 0, count: staged.size)
            try await client.putObject(bucket: bucket, key: key, body: body, sha256: staged.id.hex)
        }
        staging.discard(staged)
        return true
    }

    /// Parts of `partSize`, `multipartConcurrency` at a time, each read from the staged file when its
    /// turn comes and signed with its own SHA-256; aborted on any failure so no parts linger (billed).
    func multipartUpload(_ staged: StagedBlob, key: String) async throws {
        let uploadID = try await client.createMultipartUpload(bucket: bucket, key: key)
        let partCount = (staged.size + partSize - 1) / partSize
        do {
            var etags = [String](repeating: "", count: partCount)
            for window in stride(from: 0, to: partCount, by: multipartConcurrency) {
                try await withThrowingTaskGroup(of: (Int, String).self) { group in
                    for index in window..<min(window + multipartConcurrency, partCount) {
                        let offset = index * partSize, count = min(partSize, staged.size - offset)
                        group.addTask { [client, bucket, path = staged.path] in
                            let body = try Self.readFile(path, offset: offset, count: count)
                            let hash = SigV4Signer.hex(SHA256Digest.of(body))
                            return (index, try await client.uploadPart(bucket: bucket, key: key, uploadID: uploadID, partNumber: index + 1,
                                                                       body: body, sha256: hash))
                        }
                    }
                    for try await (index, etag) in group { etags[index] = etag }
                }
            }
            try await client.completeMultipartUpload(bucket: bucket, key: key, uploadID: uploadID,
                                                     parts: etags.enumerated().map { ($0.offset + 1, $0.element) })
        } catch {
            try? await client.abortMultipartUpload(bucket: bucket, key: key, uploadID: uploadID)
            throw error
        }
    }

    /// An acknowledged PUT is durable: nothing is left to flush.
    public func sync() async throws {}

    // MARK: Reading

    public func contains(_ id: BlobID) async throws -> Bool {
        try await client.headObject(bucket: bucket, key: key(id)) != nil
    }

    public func read(_ id: BlobID) async throws -> [UInt8] {
        let body = try await get(id, range: nil)
        return Array(body.readableBytesView)
    }

    public func read(_ id: BlobID, range: Range<Int>) async throws -> [UInt8] {
        guard !range.isEmpty else { return [] }
        let body = try await get(id, range: range)
        return Array(body.readableBytesView)
    }

    /// Ranges in order; neighbours closer than `rangeMergeGap` share one GET (a frame's fragments sit
    /// a few item-header bytes apart: 16 fragments took 180-195 ms as 16 GETs, 17-38 ms as one,
    /// against moto), others get their own, all in flight at once (Docs/store.md has the figures).
    public func read(_ id: BlobID, ranges: [Range<Int>], into buffer: inout ByteBuffer) async throws {
        let wanted = ranges.filter { !$0.isEmpty }
        buffer.reserveCapacity(minimumWritableBytes: wanted.reduce(0) { $0 + $1.count })
        let groups = Self.coalesce(wanted, gap: rangeMergeGap)
        let spans = groups.map { $0.first!.lowerBound..<$0.map(\.upperBound).max()! }
        var bodies = [ByteBuffer?](repeating: nil, count: groups.count)
        if spans.count == 1 {
            bodies[0] = try await get(id, range: spans[0])
        } else {
            try await withThrowingTaskGroup(of: (Int, ByteBuffer).self) { tasks in
                for (i, span) in spans.enumerated() { tasks.addTask { (i, try await get(id, range: span)) } }
                for try await (i, body) in tasks { bodies[i] = body }
            }
        }
        for (group, (span, body)) in zip(groups, zip(spans, bodies)) {
            for r in group {
                var slice = body!.getSlice(at: body!.readerIndex + r.lowerBound - span.lowerBound, length: r.count)!
                buffer.writeBuffer(&slice)
            }
        }
    }

    /// Consecutive ranges that go forward with at most `gap` bytes between them, grouped.
    static func coalesce(_ ranges: [Range<Int>], gap: Int) -> [[Range<Int>]] {
        var groups: [[Range<Int>]] = []
        for r in ranges {
            if let last = groups.last?.last, r.lowerBound >= last.lowerBound, r.lowerBound <= last.upperBound + gap {
                groups[groups.count - 1].append(r)
            } else {
                groups.append([r])
            }
        }
        return groups
    }

    private func get(_ id: BlobID, range: Range<Int>?) async throws -> ByteBuffer {
        let body: ByteBuffer
        do {
            body = try await client.getObject(bucket: bucket, key: key(id), range: range)
        } catch let e as S3Error where e.status == 404 && e.code != "NoSuchBucket" {
            throw BlobStoreError(kind: .notFound, description: "blob \(id) is missing (\(e))")
        } catch let e as S3Error where e.code == "InvalidRange" {
            throw BlobStoreError(kind: .io, description: "blob \(id) is shorter than \(range?.upperBound ?? 0) bytes")
        }
        if let range, body.readableBytes != range.count {
            throw BlobStoreError(kind: .io, description: "blob \(id) is shorter than \(range.upperBound) bytes")
        }
        return body
    }

    // MARK: Removing and listing

    public func remove(_ id: BlobID) async throws {
        try await client.deleteObject(bucket: bucket, key: key(id))
    }

    public func list() async throws -> [BlobID] {
        try await client.listAllObjects(bucket: bucket, prefix: listPrefix, pageSize: listPageSize).compactMap { id(fromKey: $0.key) }
    }

    /// Blobs last written (or refreshed by a commit) before `date`: the candidates of an orphan sweep
    /// with a grace period.
    public func list(modifiedBefore date: Date) async throws -> [BlobID] {
        try await client.listAllObjects(bucket: bucket, prefix: listPrefix, pageSize: listPageSize)
            .filter { $0.lastModified < date }.compactMap { id(fromKey: $0.key) }
    }

    /// `count` bytes of the file from `offset`, with pread.
    static func readFile(_ path: String, offset: Int, count: Int) throws -> ByteBuffer {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BlobStoreError(kind: .io, description: "cannot open the staged blob \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var buffer = ByteBufferAllocator().buffer(capacity: count)
        let done = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { raw -> Int in
            var done = 0
            while done < count {
                let n = pread(fd, raw.baseAddress! + done, count - done, off_t(offset + done))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { break }
                done += n
            }
            return done
        }
        guard done == count else { throw BlobStoreError(kind: .io, description: "the staged blob \(path) is shorter than \(offset + count) bytes") }
        return buffer
    }
}

/// `s3://BUCKET/PREFIX`, as `tessera serve --blobs` takes it.
public struct S3Location: Sendable, Equatable, CustomStringConvertible {
    public let bucket: String
    public let prefix: String

    public init(bucket: String, prefix: String) {
        self.bucket = bucket
        self.prefix = prefix
    }

    public init(parsing text: String) throws {
        func fail(_ why: String) -> S3Error {
            S3Error(operation: "location", status: 0, code: "InvalidLocation", message: "\(text): \(why); expected s3://BUCKET or s3://BUCKET/PREFIX")
        }
        guard text.hasPrefix("s3://") else { throw fail("not an s3:// URL") }
        let rest = text.dropFirst(5)
        let bucket = String(rest.prefix { $0 != "/" })
        let prefix = rest.dropFirst(bucket.count).trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        guard !bucket.isEmpty else { throw fail("no bucket name") }
        // S3's bucket naming rules: 3-63 of a-z 0-9 . -, starting and ending with a letter or digit.
        let u = Array(bucket.utf8)
        let allowed = u.allSatisfy { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2E || $0 == 0x2D }
        func alnum(_ b: UInt8) -> Bool { (0x61...0x7A).contains(b) || (0x30...0x39).contains(b) }
        guard (3...63).contains(u.count), allowed, alnum(u.first!), alnum(u.last!) else {
            throw fail("\"\(bucket)\" is not a valid bucket name (3 to 63 lower-case letters, digits, dots and hyphens)")
        }
        guard !prefix.contains("//"), !prefix.split(separator: "/").contains(where: { $0 == "." || $0 == ".." }) else {
            throw fail("the prefix has an empty, . or .. segment")
        }
        self.bucket = bucket
        self.prefix = prefix
    }

    public var description: String { prefix.isEmpty ? "s3://\(bucket)" : "s3://\(bucket)/\(prefix)" }
}
extension S3BlobStore: BlobStore {}
