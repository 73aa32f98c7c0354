import Crypto
import DICOMCore
import Foundation
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// A blob's identity: the SHA-256 of its bytes, in lower-case hex. Content addressing makes a
/// re-sent instance land on the blob it already has, and no input ever names a path.
public struct BlobID: Hashable, Sendable, CustomStringConvertible {
    public let hex: String
    public init?(hex: String) {
        guard hex.utf8.count == 64, hex.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else { return nil }
        self.hex = hex
    }
    init(digest: some Sequence<UInt8>) {
        let digits = Array("0123456789abcdef".utf8)
        var s = [UInt8]()
        for b in digest { s.append(digits[Int(b >> 4)]); s.append(digits[Int(b & 15)]) }
        self.hex = String(decoding: s, as: UTF8.self)
    }
    public var description: String { hex }
}

/// Bytes written to a temporary place, synced, not yet visible in the store.
public struct StagedBlob: Sendable {
    public let id: BlobID
    public let size: Int
    /// Where the bytes are now; readable (e.g. memory-mapped for parsing) until committed or discarded.
    public let path: String
    /// All the bytes, when they were still in memory after staging (one chunk, one part of up to
    /// 1 MiB): parsed in place of opening and mapping `path` again. Dropped once parsed
    /// (`withoutBytes`), so staged blobs waiting for their commit hold no memory.
    public var bytes: [UInt8]? = nil

    public init(id: BlobID, size: Int, path: String, bytes: [UInt8]? = nil) {
        self.id = id
        self.size = size
        self.path = path
        self.bytes = bytes
    }

    public var withoutBytes: StagedBlob { StagedBlob(id: id, size: size, path: path) }
}

/// Where instance bytes live. The file-system store is the embedded default; an object store
/// fills the same protocol for a stateless server tier.
public protocol BlobStore: Sendable {
    /// Streams `chunks` to a temporary blob while hashing; `limit` caps the total size. Staged bytes
    /// are not yet durable: `sync()` makes them so.
    func stage(_ chunks: some AsyncSequence<[UInt8], any Error>, limit: Int) async throws -> StagedBlob
    /// Stages bytes already in memory (a copy made at ingest, say).
    func stage(bytes: [UInt8]) throws -> StagedBlob
    /// A writer for bytes that arrive through callbacks (a multipart parser, say).
    func makeWriter(limit: Int) throws -> BlobWriter
    /// Makes a staged blob visible under its id (a rename, or an upload). Returns whether the id was
    /// new; when not, the staged copy is dropped. Durable only after `sync()`.
    func commit(_ staged: StagedBlob) async throws -> Bool
    /// Makes every blob committed so far durable, contents and names. Called once per batch,
    /// before the index commit: one flush instead of two fsyncs per instance.
    func sync() async throws
    func discard(_ staged: StagedBlob)
    func contains(_ id: BlobID) async throws -> Bool
    /// The blob's local path when it has one (file store): lets readers memory-map it.
    func localPath(_ id: BlobID) -> String?
    func read(_ id: BlobID) async throws -> [UInt8]
    func read(_ id: BlobID, range: Range<Int>) async throws -> [UInt8]
    /// Appends the byte ranges, in order, to `buffer`: what the server sends, with one copy.
    func read(_ id: BlobID, ranges: [Range<Int>], into buffer: inout ByteBuffer) async throws
    func remove(_ id: BlobID) async throws
    func list() async throws -> [BlobID]
    /// Blobs last written before `date`. When several processes share a store, an unreferenced blob
    /// is an orphan only once it is older than a grace period: a younger one may belong to another
    /// process's commit that has not reached the index yet.
    func list(modifiedBefore date: Date) async throws -> [BlobID]
}

extension BlobStore {
    public func read(_ id: BlobID, ranges: [Range<Int>], into buffer: inout ByteBuffer) async throws {
        for r in ranges { buffer.writeBytes(try await read(id, range: r)) }
    }
}

public struct BlobStoreError: Error, CustomStringConvertible, Sendable {
    /// `noSpace`: the disk or the quota is full (ENOSPC, EDQUOT); the data folder's `DiskReserve` handles it.
    public enum Kind: Sendable { case tooLarge, notFound, io, noSpace }
    public let kind: Kind
    public let description: String
    public init(kind: Kind, description: String) {
        self.kind = kind
        self.description = description
    }
}

extension BlobStoreError {
    /// The failure of a system call, from `errno`: `noSpace` for ENOSPC and EDQUOT, else `io`.
    static func failed(_ what: String) -> BlobStoreError {
        let full = errno == ENOSPC || errno == EDQUOT
        return BlobStoreError(kind: full ? .noSpace : .io, description: "\(what): \(DataFolderError.errnoText())")
    }
}

/// Writes one staged blob piece by piece, hashing as it goes. Not thread-safe: one writer per part.
/// Pieces are gathered into 1 MiB before they are hashed and written: a multipart parser hands over
/// the body in slices as small as a few bytes (at every CR it cannot yet rule out as a boundary).
public final class BlobWriter {
    private var fd: Int32
    private let path: String
    private let limit: Int
    private var hasher = SHA256()
    private var pending: [UInt8] = []
    private static let flushSize = 1 << 20
    public private(set) var size = 0

    init(path: String, limit: Int) throws {
        self.path = path
        self.limit = limit
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw BlobStoreError.failed("cannot create a temporary blob") }
        pending.reserveCapacity(Self.flushSize)
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        size += bytes.count
        guard size <= limit else { throw BlobStoreError(kind: .tooLarge, description: "the object exceeds the \(limit)-byte limit") }
        if pending.count + bytes.count > Self.flushSize { try flush() }
        if bytes.count >= Self.flushSize {
            try writeThrough(bytes)
        } else {
            pending.append(contentsOf: bytes)
        }
    }

    private func flush() throws {
        guard !pending.isEmpty else { return }
        try pending.withUnsafeBytes { try writeThrough($0) }
        pending.removeAll(keepingCapacity: true)
    }

    private func writeThrough(_ bytes: UnsafeRawBufferPointer) throws {
        hasher.update(bufferPointer: bytes)
        guard let base = bytes.baseAddress else { return }
        var off = 0
        while off < bytes.count {
            let n = Glibc.write(fd, base + off, bytes.count - off)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw BlobStoreError.failed("write failed") }
            off += n
        }
    }

    public func finish() throws -> StagedBlob {
        // A part that never filled the buffer is still wholly in it: hand it on for the parse (taken
        // out of `pending` first, so that emptying the buffer does not copy it).
        var whole: [UInt8]? = nil
        if size == pending.count && !pending.isEmpty {
            whole = pending
            pending = []
            try whole?.withUnsafeBytes { try writeThrough($0) }
        } else {
            try flush()
        }
        startWriteback(fd)
        close(fd)
        fd = -1
        return StagedBlob(id: BlobID(digest: hasher.finalize()), size: size, path: path, bytes: whole)
    }

    public func abort() {
        if fd >= 0 { close(fd); fd = -1 }
        unlink(path)
    }

    deinit { if fd >= 0 { close(fd); unlink(path) } }
}

/// glibc declares syncfs only under _GNU_SOURCE, which Swift's Glibc module does not set.
@_silgen_name("syncfs")
func linuxSyncfs(_ fd: Int32) -> Int32

/// sync_file_range(2), likewise _GNU_SOURCE-only.
@_silgen_name("sync_file_range")
private func linuxSyncFileRange(_ fd: Int32, _ offset: Int64, _ count: Int64, _ flags: UInt32) -> Int32

/// Starts writeback of a staged file without waiting for it (SYNC_FILE_RANGE_WRITE): the disk
/// works while the next files are hashed and parsed, so the batch's syncfs has less left to wait
/// for. Durability still comes from that syncfs; this only moves the writing earlier.
func startWriteback(_ fd: Int32) {
    _ = linuxSyncFileRange(fd, 0, 0, 2)
}

/// Blobs in `root/ab/cd/<sha256>`, staged in `root/tmp/`.
public struct FileBlobStore: BlobStore {
    public let root: String
    private var tmp: String { root + "/tmp" }

    public init(root: String) throws {
        self.root = root
        try FileManager.default.createDirectory(atPath: root + "/tmp", withIntermediateDirectories: true)
    }

    /// For reading only: creates nothing.
    public init(existingRoot root: String) { self.root = root }

    func path(_ id: BlobID) -> String {
        let h = id.hex
        return "\(root)/\(h.prefix(2))/\(h.dropFirst(2).prefix(2))/\(h)"
    }

    public func localPath(_ id: BlobID) -> String? { path(id) }

    public func stage(_ chunks: some AsyncSequence<[UInt8], any Error>, limit: Int) async throws -> StagedBlob {
        let temp = "\(tmp)/\(UUID().uuidString).part"
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw BlobStoreError.failed("cannot create a temporary blob") }
        var hasher = SHA256()
        var size = 0
        var chunkCount = 0
        var first: [UInt8] = []
        do {
            for try await chunk in chunks {
                chunkCount += 1
                first = chunkCount == 1 ? chunk : []
                size += chunk.count
                guard size <= limit else {
                    throw BlobStoreError(kind: .tooLarge, description: "the object exceeds the \(limit)-byte limit")
                }
                hasher.update(data: chunk)
                try Self.writeAll(fd, chunk)
            }
            startWriteback(fd)
            close(fd)
        } catch {
            close(fd)
            unlink(temp)
            throw error
        }
        return StagedBlob(id: BlobID(digest: hasher.finalize()), size: size, path: temp,
                          bytes: chunkCount == 1 ? first : nil)
    }

    public func makeWriter(limit: Int) throws -> BlobWriter {
        try BlobWriter(path: "\(tmp)/\(UUID().uuidString).part", limit: limit)
    }

    public func stage(bytes: [UInt8]) throws -> StagedBlob {
        let temp = "\(tmp)/\(UUID().uuidString).part"
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw BlobStoreError.failed("cannot create a temporary blob") }
        do {
            try Self.writeAll(fd, bytes)
            close(fd)
        } catch {
            close(fd)
            unlink(temp)
            throw error
        }
        return StagedBlob(id: BlobID(digest: SHA256.hash(data: bytes)), size: bytes.count, path: temp,
                          bytes: bytes)
    }

    public func commit(_ staged: StagedBlob) throws -> Bool {
        let final = path(staged.id)
        if access(final, F_OK) == 0 {
            unlink(staged.path)
            return false
        }
        // The shard folder usually exists: try the rename first, create the folder only when it is missing.
        if rename(staged.path, final) == 0 { return true }
        guard errno == ENOENT else {
            throw BlobStoreError(kind: .io, description: "cannot move the blob into place: \(DataFolderError.errnoText())")
        }
        let dir = (final as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        guard rename(staged.path, final) == 0 else {
            throw BlobStoreError(kind: .io, description: "cannot move the blob into place: \(DataFolderError.errnoText())")
        }
        return true
    }

    /// syncfs(2) on the blob file system: staged contents and renamed names reach the disk together.
    public func sync() throws {
        let fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw BlobStoreError(kind: .io, description: "cannot open \(root): \(DataFolderError.errnoText())") }
        defer { close(fd) }
        guard linuxSyncfs(fd) == 0 else { throw BlobStoreError(kind: .io, description: "syncfs failed: \(DataFolderError.errnoText())") }
    }

    public func discard(_ staged: StagedBlob) { unlink(staged.path) }

    public func contains(_ id: BlobID) -> Bool { access(path(id), F_OK) == 0 }

    public func read(_ id: BlobID) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path(id)) else {
            throw BlobStoreError(kind: .notFound, description: "blob \(id) is missing")
        }
        return [UInt8](data)
    }

    public func read(_ id: BlobID, range: Range<Int>) throws -> [UInt8] {
        let fd = open(path(id), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BlobStoreError(kind: .notFound, description: "blob \(id) is missing") }
        defer { close(fd) }
        var out = [UInt8](repeating: 0, count: range.count)
        let done = out.withUnsafeMutableBytes { Self.readFully(fd, into: $0, at: range.lowerBound) }
        guard done == range.count else { throw BlobStoreError(kind: .io, description: "blob \(id) is shorter than \(range.upperBound) bytes") }
        return out
    }

    /// Fills `raw` from the file at `offset` (pread, again after EINTR); the bytes read, fewer at
    /// the end of the file or on an error.
    public static func readFully(_ fd: Int32, into raw: UnsafeMutableRawBufferPointer, at offset: Int) -> Int {
        var done = 0
        while done < raw.count, let base = raw.baseAddress {
            let n = pread(fd, base + done, raw.count - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            done += n
        }
        return done
    }

    /// pread straight into the buffer's free space.
    public func read(_ id: BlobID, ranges: [Range<Int>], into buffer: inout ByteBuffer) throws {
        let fd = open(path(id), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BlobStoreError(kind: .notFound, description: "blob \(id) is missing") }
        defer { close(fd) }
        buffer.reserveCapacity(minimumWritableBytes: ranges.reduce(0) { $0 + $1.count })
        for range in ranges where !range.isEmpty {
            let done = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: range.count) { raw in
                Self.readFully(fd, into: UnsafeMutableRawBufferPointer(rebasing: raw[..<range.count]), at: range.lowerBound)
            }
            guard done == range.count else { throw BlobStoreError(kind: .io, description: "blob \(id) is shorter than \(range.upperBound) bytes") }
        }
    }

    public func remove(_ id: BlobID) throws {
        if unlink(path(id)) != 0 && errno != ENOENT {
            throw BlobStoreError(kind: .io, description: "cannot remove blob \(id): \(DataFolderError.errnoText())")
        }
    }

    public func list() throws -> [BlobID] {
        var out: [BlobID] = []
        let fm = FileManager.default
        for a in (try? fm.contentsOfDirectory(atPath: root)) ?? [] where a.utf8.count == 2 {
            for b in (try? fm.contentsOfDirectory(atPath: "\(root)/\(a)")) ?? [] {
                for name in (try? fm.contentsOfDirectory(atPath: "\(root)/\(a)/\(b)")) ?? [] {
                    if let id = BlobID(hex: name) { out.append(id) }
                }
            }
        }
        return out
    }

    public func list(modifiedBefore date: Date) throws -> [BlobID] {
        let limit = date.timeIntervalSince1970
        return try list().filter { id in
            var st = stat()
            guard stat(path(id), &st) == 0 else { return false }
            return Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9 < limit
        }
    }

    /// Removes staged blobs left by a process that stopped before committing them.
    public func removeStaged() -> Int {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: tmp)) ?? []
        for n in names { unlink("\(tmp)/\(n)") }
        return names.count
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            var off = 0
            while off < raw.count {
                let n = write(fd, base + off, raw.count - off)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw BlobStoreError.failed("write failed") }
                off += n
            }
        }
    }
}
