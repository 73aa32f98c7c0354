import DICOMCore
import DICOMParser
import Foundation
import Synchronization
import PixelData
#if canImport(Glibc)
import Glibc
#endif

/// One data folder: `index.sqlite` (the index), `blobs/` (instance bytes by content hash) and a
/// lock that keeps a second writer out. Ingest, grouping and the start-up sweep live here.
/// Opened `.readOnly`, it takes no lock and changes nothing: readers share the folder with a writer.
/// `open(folder:index:accessKeys:blobs:shared:)` puts the index and the blobs elsewhere (PostgreSQL,
/// an S3 bucket); the folder then holds only what is this process's own (staging, the disk reserve).
public final class Datastore: Sendable {
    public let folder: String
    public let index: any ImageSetIndex
    /// API keys and the instances each gateway stored (the same index, through its AccessKeyIndex face).
    public let accessKeys: any AccessKeyIndex
    /// Webhook subscriptions and their delivery state (the same index, through its SubscriptionIndex face).
    public let subscriptions: any SubscriptionIndex
    public let blobs: any BlobStore
    /// Nil for a read-only open, and when the backends are shared.
    let lock: FolderLock?
    public let access: Access
    /// Several processes write the same index and blobs (replicas on PostgreSQL and a bucket): no
    /// folder lock, settings re-read (`SettingsCache`), and an unreferenced blob is removed only by
    /// the sweeper, once older than `orphanGrace` (`sweepOrphans`), never at once.
    public let shared: Bool
    public let orphanGrace: TimeInterval
    let pending = PendingBlobs()
    /// Where the store's blocking work runs (SQLite commits, the audit writer, metadata refresh), so
    /// that it never holds one of Swift's cooperative threads (`BlockingExecutor`).
    let executor = BlockingExecutor(label: "tessera.store")
    let metadataRefresh: DebouncedWork
    let groupCommit = GroupCommit()
    /// Wakes change-feed waiters when this process commits (Datastore+ChangeFeed.swift).
    let changeSignal = ChangeSignal()
    /// Frame requests' index lookups (Datastore+FrameLocations.swift).
    let frameLocations = FrameLocationCache()
    let metricsHook = Mutex<(any StoreMetrics)?>(nil)
    let settings: SettingsCache
    /// Reads' audit records on their way to the index (Datastore+Audit.swift).
    let auditBuffer: AuditBuffer
    /// Largest instance accepted, in bytes.
    public let maximumInstanceSize: Int
    /// Parse limits for instances being stored: a deflated data set inflates to at most
    /// `maximumInflationRatio` times its compressed size (and at least 1 MiB), so a deflate bomb
    /// costs a small multiple of the request's bytes, not hundreds of MB.
    public let ingestReadOptions: ReadOptions
    /// Space held back for the index when the disk fills (nil for a read-only open); see `DiskReserve`.
    public let disk: DiskReserve?

    public enum Access: Sendable {
        /// Creates the folder when missing, takes its lock, migrates the index and sweeps orphans.
        case readWrite
        /// The folder must exist with an index of this binary's schema; nothing is created,
        /// locked, migrated, swept or refreshed (SQLite WAL lets it read beside a writer).
        case readOnly
    }

    public struct StartupReport: Sendable {
        public var orphanBlobsRemoved = 0
        public var stagedFilesRemoved = 0
        public var missingBlobs: [BlobID] = []
    }

    public let startup: StartupReport

    init(folder: String, index: any ImageSetIndex, accessKeys: any AccessKeyIndex, subscriptions: any SubscriptionIndex,
         blobs: any BlobStore, lock: FolderLock?,
         access: Access, shared: Bool, orphanGrace: TimeInterval, disk: DiskReserve?, startup: StartupReport,
         settings: [String: String], maximumInstanceSize: Int, maximumInflationRatio: Int, auditBufferCapacity: Int) {
        self.folder = folder
        self.index = index
        self.accessKeys = accessKeys
        // SQLite answers synchronously, waiting for its one writer: off the cooperative threads.
        self.subscriptions = subscriptions is SQLiteIndex ? SubscriptionIndexOnExecutor(base: subscriptions, executor: executor) : subscriptions
        self.blobs = blobs
        self.lock = lock
        self.access = access
        self.shared = shared
        self.orphanGrace = orphanGrace
        self.disk = disk
        self.startup = startup
        self.maximumInstanceSize = maximumInstanceSize
        var options = ReadOptions()
        options.maximumInflationRatio = maximumInflationRatio
        ingestReadOptions = options
        self.settings = SettingsCache(values: settings, maximumAge: shared ? 1 : nil)
        metadataRefresh = DebouncedWork(quiet: 0.5, longest: 5, executor: executor)
        let executor = self.executor
        if access == .readOnly {
            auditBuffer = AuditBuffer(capacity: auditBufferCapacity, executor: executor) { _ in
                throw DataFolderError("the data folder \(folder) is open read-only; audit records cannot be written")
            }
        } else {
            auditBuffer = AuditBuffer(capacity: auditBufferCapacity, executor: executor) { try await index.appendAudit($0) }
            scheduleMetadataRefresh()  // what a previous process left pending
        }
    }

    /// The settings `SettingsCache` holds, read when the store opens.
    static let settingKeys = ["duplicatePolicy", "transcodeOnIngest", "retainVersions", "changeFeedRetentionDays"]

    /// Opens the data folder. Read-write (the default) creates it when needed, takes its lock and
    /// sweeps orphans; read-only only reads (see `Access`).
    /// `diskReserve`: bytes of the reserve file (0: none; `tessera serve` keeps 64 MiB).
    /// `auditBufferCapacity`: read audit records queued at most before new ones are dropped (and counted).
    public convenience init(folder: String, maximumInstanceSize: Int = 4 << 30, access: Access = .readWrite,
                            diskReserve: Int = 0, maximumInflationRatio: Int = 16, auditBufferCapacity: Int = 10_000) throws {
        let lock: FolderLock?, disk: DiskReserve?, fileBlobs: FileBlobStore, sqlite: SQLiteIndex, startup: StartupReport
        switch access {
        case .readOnly:
            try DataFolderError.checkExisting(folder)
            (lock, disk) = (nil, nil)
            fileBlobs = FileBlobStore(existingRoot: folder + "/blobs")
            sqlite = try SQLiteIndex(path: folder + "/index.sqlite", readOnly: true, folder: folder)
            startup = StartupReport()
        case .readWrite:
            try DataFolderError.createFolder(folder)
            lock = try FolderLock(folder: folder)
            disk = DiskReserve(folder: folder, size: diskReserve)
            fileBlobs = try FileBlobStore(root: folder + "/blobs")
            sqlite = try SQLiteIndex(path: folder + "/index.sqlite", folder: folder)
            startup = try Self.sweep(index: sqlite, blobs: fileBlobs)
        }
        var settings: [String: String] = [:]
        for key in Self.settingKeys { settings[key] = try sqlite.setting(key) }
        self.init(folder: folder, index: sqlite, accessKeys: sqlite, subscriptions: sqlite, blobs: fileBlobs, lock: lock, access: access, shared: false,
                  orphanGrace: 0, disk: disk, startup: startup, settings: settings, maximumInstanceSize: maximumInstanceSize,
                  maximumInflationRatio: maximumInflationRatio, auditBufferCapacity: auditBufferCapacity)
    }

    /// A store on backends of the caller's making (`PostgresIndex`, `S3BlobStore`, …). `folder` holds
    /// this process's own files (the disk reserve; the blob store's staging is its own business).
    /// With `shared`, other processes write the same backends: nothing is locked, and unreferenced
    /// blobs are swept only once older than `orphanGrace` seconds, by `sweepOrphans()` (not at open: the caller
    /// runs it in the background). Alone (`shared: false`), start-up sweeps orphans as the embedded store does.
    public static func open(folder: String, index: any ImageSetIndex & AccessKeyIndex & SubscriptionIndex, blobs: any BlobStore, shared: Bool,
                            orphanGrace: TimeInterval = 3600, maximumInstanceSize: Int = 4 << 30, diskReserve: Int = 0,
                            maximumInflationRatio: Int = 16, auditBufferCapacity: Int = 10_000) async throws -> Datastore {
        try DataFolderError.createFolder(folder)
        let lock = shared ? nil : try FolderLock(folder: folder)
        var settings: [String: String] = [:]
        for key in settingKeys { settings[key] = try await index.setting(key) }
        var startup = StartupReport()
        if !shared {
            // Alone, as the embedded store: staged leftovers go, and rows without their blob are reported.
            if let files = blobs as? FileBlobStore { startup.stagedFilesRemoved = files.removeStaged() }
            let present = Set(try await blobs.list())
            startup.missingBlobs = try await index.referencedBlobs().keys.filter { !present.contains($0) }.sorted { $0.hex < $1.hex }
        }
        // Shared, the first sweep is the serving process's background sweeper's (`sweepOrphans()`): listing a
        // bucket and every reference of a large index takes long, and a replica must start at once on failover.
        if !shared {
            startup.orphanBlobsRemoved = try await sweepOrphans(index: index, blobs: blobs, shared: shared, grace: orphanGrace, pending: nil)
        }
        return Datastore(folder: folder, index: index, accessKeys: index, subscriptions: index, blobs: blobs, lock: lock, access: .readWrite,
                         shared: shared, orphanGrace: orphanGrace, disk: DiskReserve(folder: folder, size: diskReserve),
                         startup: startup, settings: settings, maximumInstanceSize: maximumInstanceSize,
                         maximumInflationRatio: maximumInflationRatio, auditBufferCapacity: auditBufferCapacity)
    }

    /// Compresses the series metadata documents that commits left pending, now (see `SeriesMetadata`).
    @discardableResult
    public func flushMetadata() async throws -> Int { try await index.refreshPendingSeriesMetadata() }

    /// Refreshes pending series documents shortly, off the caller's path; bursts of commits coalesce.
    func scheduleMetadataRefresh() {
        let index = self.index
        metadataRefresh.schedule { _ = try? await index.refreshPendingSeriesMetadata() }
    }

    /// Blobs with no index row were written by an ingest that stopped before its commit: remove
    /// them. Index rows whose blob is missing are reported, never silently dropped.
    static func sweep(index: SQLiteIndex, blobs: FileBlobStore) throws -> StartupReport {
        var report = StartupReport()
        report.stagedFilesRemoved = blobs.removeStaged()
        let referenced = try index.referencedBlobs()
        let present = Set(try blobs.list())
        for id in present where referenced[id] == nil {
            try blobs.remove(id)
            report.orphanBlobsRemoved += 1
        }
        report.missingBlobs = referenced.keys.filter { !present.contains($0) }.sorted { $0.hex < $1.hex }
        return report
    }

    /// Removes unreferenced blobs: with shared backends only those older than `orphanGrace` (a
    /// younger one may be another process's commit on its way to the index), each through
    /// `ImageSetIndex.removeOrphanBlob`, which orders the removal against commits that name the
    /// blob again. Alone, every unreferenced blob that no ingest of this process holds.
    @discardableResult
    public func sweepOrphans() async throws -> Int {
        try await Self.sweepOrphans(index: index, blobs: blobs, shared: shared, grace: orphanGrace, pending: pending)
    }

    static func sweepOrphans(index: any ImageSetIndex, blobs: any BlobStore, shared: Bool, grace: TimeInterval,
                             pending: PendingBlobs?) async throws -> Int {
        let candidates = shared ? try await blobs.list(modifiedBefore: Date(timeIntervalSinceNow: -grace)) : try await blobs.list()
        guard !candidates.isEmpty else { return 0 }
        let referenced = try await index.referencedBlobs()
        var removed = 0
        for id in candidates where referenced[id] == nil {
            if try await removeIfUnused(id, index: index, blobs: blobs, grace: shared ? grace : 0, pending: pending) { removed += 1 }
        }
        return removed
    }

    /// Removes the blob when no in-flight ingest of this process holds it (`PendingBlobs`) and the
    /// index says nothing references or reserves it (`removeOrphanBlob`, which also orders the
    /// removal against other processes' commits of the same bytes).
    static func removeIfUnused(_ id: BlobID, index: any ImageSetIndex, blobs: any BlobStore, grace: TimeInterval,
                               pending: PendingBlobs?) async throws -> Bool {
        let remove: @Sendable () async throws -> Bool = {
            try await index.removeOrphanBlob(id, grace: grace) { try await blobs.remove(id) }
        }
        guard let pending else { return try await remove() }
        return try await pending.removeIfUnused(id, remove: remove)
    }

    public var policy: DuplicatePolicy {
        guard let value = setting("duplicatePolicy") else { return .reject }
        return DuplicatePolicy(rawValue: value) ?? .reject
    }

    public func setPolicy(_ policy: DuplicatePolicy) async throws { try await setSetting("duplicatePolicy", policy.rawValue) }

    /// A datastore setting, from memory: loaded when the store opens and kept by `setSetting`. With
    /// shared backends another process may change it, so `store` re-reads them when they are older
    /// than a second (`SettingsCache`). (Reading `transcodeOnIngest` from the index for every
    /// instance cost a query per ingest.)
    func setting(_ key: String) -> String? { settings.value(key) }

    func setSetting(_ key: String, _ value: String) async throws {
        try await index.setSetting(key, value)
        settings.set(key, value)
    }

    /// Re-reads the settings when another process may have changed them and they are older than
    /// the cache's maximum age.
    func refreshSettingsIfStale() async {
        guard settings.isStale else { return }
        var values = settings.snapshot
        for key in Self.settingKeys {
            // A read that fails keeps the value held: a moment's error must not change the policy.
            do { values[key] = try await index.setting(key) } catch { continue }
        }
        settings.replace(values)
    }

    // MARK: Ingest

    /// Stores one instance read from `chunks`, never holding it whole in memory.
    public func ingest(_ chunks: some AsyncSequence<[UInt8], any Error>, reason: String = "stored",
                       expectedStudy: String? = nil) async -> IngestOutcome {
        let staged: StagedBlob
        do {
            staged = try await blobs.stage(chunks, limit: maximumInstanceSize)
        } catch let e as BlobStoreError where e.kind == .tooLarge || e.kind == .noSpace {
            if e.kind == .noSpace { disk?.noteFull() }
            return .failure(FailureReason.outOfResources, e.description)
        } catch {
            return .failure(FailureReason.processingFailure, "cannot store the object: \(error)")
        }
        return await ingest(staged: [staged], reason: reason, expectedStudy: expectedStudy)[0]
    }

    /// Stores a file from disk (copied into the store; the original is left alone).
    public func ingest(file path: String, reason: String = "imported") async -> IngestOutcome {
        await ingest(FileChunks(path: path), reason: reason)
    }

    /// A staged blob with the verdict of parsing and validating it; made on any thread.
    public struct Candidate: Sendable {
        public let staged: StagedBlob
        let result: Result<PreparedInstance, IngestOutcome>
        /// The copy transcoded at ingest, when the datastore makes one; `result` stays the original's.
        var transcoded: TranscodedCopy? = nil
    }

    public func prepare(_ staged: StagedBlob, expectedStudy: String? = nil) -> Candidate {
        var candidate = Candidate(staged: staged.withoutBytes,
                                  result: InstancePreparation.prepare(staged, expectedStudy: expectedStudy, options: ingestReadOptions))
        // On a full disk the original alone is stored: a transcoded copy would spend the reserve.
        if disk?.isFull != true, let target = transcodeOnIngest, case .success(let p) = candidate.result, !p.frames.isEmpty, p.transferSyntaxUID != target {
            candidate.transcoded = InstancePreparation.transcodedCopy(of: staged, to: target, blobs: blobs)
        }
        return candidate
    }

    /// Drops a candidate that will not be stored (the request it came in failed): its staged blobs go.
    public func discard(_ candidate: Candidate) {
        blobs.discard(candidate.staged)
        if let copy = candidate.transcoded { blobs.discard(copy.staged) }
    }

    /// Transfer syntax frames are transcoded to at ingest (HTJ2K lossless when enabled), or nil.
    public var transcodeOnIngest: String? {
        guard let value = setting("transcodeOnIngest"), !value.isEmpty else { return nil }
        return value
    }

    public func setTranscodeOnIngest(_ uid: String?) async throws { try await setSetting("transcodeOnIngest", uid ?? "") }

    /// Validates staged blobs, moves the good ones into place and indexes them in one transaction.
    public func ingest(staged: [StagedBlob], reason: String, expectedStudy: String? = nil) async -> [IngestOutcome] {
        await store(staged.map { prepare($0, expectedStudy: expectedStudy) }, reason: reason)
    }

    /// Moves prepared candidates' blobs into place and indexes them in one transaction: one new
    /// version per image set touched.
    public func store(_ candidates: [Candidate], reason: String) async -> [IngestOutcome] { await store(candidates, reason: reason, audit: []) }

    /// With `audit`, one store record for these candidates commits in their index transaction
    /// (`tessera import`: the local user who ran it).
    public func store(_ candidates: [Candidate], reason: String, audit: AuditContext?) async -> [IngestOutcome] {
        await store(candidates, reason: reason, audit: audit.map { [AuditClaim(context: $0, range: 0..<candidates.count, alsoFailed: 0)] } ?? [])
    }

    /// `audit`: the requests whose audit records commit in the index transaction (`AuditClaim`).
    func store(_ candidates: [Candidate], reason: String, audit claims: [AuditClaim]) async -> [IngestOutcome] {
        await refreshSettingsIfStale()
        var outcomes = [IngestOutcome?](repeating: nil, count: candidates.count)
        var prepared: [(Int, PreparedInstance, StagedBlob)] = []
        for (i, c) in candidates.enumerated() {
            switch c.result {
            case .success(var p):
                // The transcoded copy goes first: an index row never names a blob that is not in place.
                // When it cannot be moved in, frames are served from the original, as prepared.
                if let copy = c.transcoded {
                    await pending.retain(copy.staged.id)
                    let reserved = shared ? (try? await index.reserveBlobs([copy.staged.id])) != nil : true
                    if reserved, (try? await blobs.commit(copy.staged)) != nil {
                        p.serveFrames(from: copy)
                    } else {
                        pending.release(copy.staged.id)
                        blobs.discard(copy.staged)
                    }
                }
                prepared.append((i, p, c.staged))
            case .failure(let outcome):
                blobs.discard(c.staged)
                if let copy = c.transcoded { blobs.discard(copy.staged) }
                outcomes[i] = outcome
            }
        }
        // Blob first, durable, then the index: a crash between them leaves an orphan the next
        // start-up sweeps, never an index row without its bytes.
        var committed: [(Int, PreparedInstance, Bool)] = []
        // With shared backends, the blobs are reserved in the index first, so that another
        // process's sweeper cannot take them between their upload and the index commit.
        var reserved = true
        if shared, !prepared.isEmpty {
            do { try await index.reserveBlobs(prepared.map(\.1.blob)) } catch { reserved = false }
        }
        for (i, p, s) in prepared {
            await pending.retain(p.blob)
            do {
                guard reserved else { throw DataFolderError("the index is unreachable: cannot reserve the blob") }
                committed.append((i, p, try await blobs.commit(s)))
            } catch {
                if DiskReserve.isNoSpace(error) { disk?.noteFull() }
                pending.release(p.blob)
                if let t = p.framesBlob { pending.release(t) }
                blobs.discard(s)
                outcomes[i] = .failure(DiskReserve.isNoSpace(error) ? FailureReason.outOfResources : FailureReason.processingFailure, "cannot store the object: \(error)", sop: p.sopInstanceUID,
                                       sopClass: p.sopClassUID, study: p.studyInstanceUID)
            }
        }
        let results: [IngestOutcome]
        // The audit records are made inside the transaction, from the outcomes of every candidate.
        let early = outcomes, positions = committed.map(\.0)
        let patients = Dictionary(committed.map { ($0.0, $0.1.attributes.patientID) }, uniquingKeysWith: { a, _ in a })
        @Sendable func events(_ results: [IngestOutcome]) -> [AuditEvent] {
            var all = early
            for (k, o) in zip(positions, results) { all[k] = o }
            return Self.storeEvents(claims, outcomes: all.map { $0 ?? .failure(FailureReason.processingFailure, "not processed") }, patients: patients)
        }
        do {
            if !committed.isEmpty { try await blobs.sync() }
            results = try await index.commit(committed.map(\.1), policy: policy, reason: reason, audit: claims.isEmpty ? nil : events)
            changeSignal.signal()
        } catch {
            // SQLITE_FULL: the reserve goes (so DELETE and prune can run) and these are out of resources.
            let full = DiskReserve.isNoSpace(error)
            if full { disk?.noteFull() }
            results = committed.map { _, p, _ in
                .failure(full ? FailureReason.outOfResources : FailureReason.processingFailure, "index: \(error)", sop: p.sopInstanceUID, sopClass: p.sopClassUID,
                         study: p.studyInstanceUID)
            }
            // Nothing committed; the failed attempt is still on record when the trail can be written.
            if !claims.isEmpty { await recordFailedChange(events(results)) }
        }
        if results.contains(where: { $0.reasonCode == FailureReason.outOfResources }) { disk?.noteFull() }
        for ((i, p, isNew), outcome) in zip(committed, results) {
            outcomes[i] = outcome
            // A failed instance's new blobs go, unless another ingest holds them or a row refers to
            // them: checked and removed under the pending lock, as pruning does.
            if let t = p.framesBlob {
                pending.release(t)
                if outcome.status == .failed { _ = try? await removeBlobIfUnused(t) }
            }
            pending.release(p.blob)
            if outcome.status == .failed && isNew { _ = try? await removeBlobIfUnused(p.blob) }
        }
        await pruneAfterReplacement(results)
        if !committed.isEmpty { scheduleMetadataRefresh() }
        return outcomes.map { $0 ?? .failure(FailureReason.processingFailure, "not processed") }
    }
}

/// Counts in-process users of blobs between their commit and their index row, so a failing
/// ingest never removes a blob another ingest of the same bytes is about to index.
final class PendingBlobs: @unchecked Sendable {
    private let lock = NSLock()
    private var counts: [BlobID: Int] = [:]
    /// Held across a removal's check and the removal itself (which may await the index and the
    /// blob store), and taken by `retain`: an ingest of the same bytes either retains first (and the
    /// blob stays) or commits after the removal (and puts the bytes back).
    private let removal = AsyncMutex()

    func retain(_ id: BlobID) async {
        await removal.acquire()
        lock.withLock { counts[id, default: 0] += 1 }
        removal.release()
    }

    /// Returns whether this was the last user.
    @discardableResult func release(_ id: BlobID) -> Bool {
        lock.withLock {
            let n = (counts[id] ?? 1) - 1
            counts[id] = n > 0 ? n : nil
            return n <= 0
        }
    }

    /// Runs `remove` (which checks the index and removes) when no ingest holds the blob.
    func removeIfUnused(_ id: BlobID, remove: @Sendable () async throws -> Bool) async throws -> Bool {
        await removal.acquire()
        defer { removal.release() }
        guard lock.withLock({ counts[id] == nil }) else { return false }
        return try await remove()
    }
}

/// A lock that waits by suspending, for sections that await (first come, first served).
final class AsyncMutex: @unchecked Sendable {
    private let lock = NSLock()
    private var locked = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func acquire() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = lock.withLock { () -> Bool in
                if !locked { locked = true; return true }
                waiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    func release() {
        let next = lock.withLock { () -> CheckedContinuation<Void, Never>? in
            if waiters.isEmpty { locked = false; return nil }
            return waiters.removeFirst()
        }
        next?.resume()
    }
}

/// The datastore's settings, in memory. Alone, the store is the only writer and `set` keeps them
/// right; with shared backends they are re-read when older than `maximumAge` (another replica's
/// change takes effect here within that time).
final class SettingsCache: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [String: String]
    private var loadedAt = Date()
    let maximumAge: TimeInterval?

    init(values: [String: String], maximumAge: TimeInterval?) {
        self.values = values
        self.maximumAge = maximumAge
    }

    func value(_ key: String) -> String? { lock.withLock { values[key] } }
    func set(_ key: String, _ value: String) { lock.withLock { values[key] = value } }
    var snapshot: [String: String] { lock.withLock { values } }

    var isStale: Bool {
        guard let maximumAge else { return false }
        return lock.withLock { -loadedAt.timeIntervalSinceNow > maximumAge }
    }

    func replace(_ new: [String: String]) {
        lock.withLock {
            values = new
            loadedAt = Date()
        }
    }
}

/// An exclusive `flock` on the data folder for the life of the writing process: the sweep and the
/// pending-blob bookkeeping assume one process writes a folder at a time. The holder's pid is
/// written into the file, so the next one can say who has it.
final class FolderLock: Sendable {
    let fd: Int32
    init(folder: String) throws {
        let path = folder + "/lock"
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw DataFolderError("cannot open \(path): \(DataFolderError.errnoText())") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = Self.holder(fd)
            close(fd)
            throw DataFolderError.inUse(folder, pid: holder)
        }
        let pid = Array("\(getpid())\n".utf8)
        if ftruncate(fd, 0) == 0 { _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) } }
    }
    deinit { close(fd) }

    /// The pid the holder wrote, if it did.
    static func holder(_ fd: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return nil }
        return Int32(String(decoding: buffer[..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}

/// A file's bytes as an async sequence of 1 MiB chunks.
public struct FileChunks: AsyncSequence, Sendable {
    public typealias Element = [UInt8]
    let path: String
    public init(path: String) { self.path = path }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var fd: Int32 = -1
        let path: String
        var done = false
        public mutating func next() async throws -> [UInt8]? {
            if done { return nil }
            if fd < 0 {
                fd = open(path, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { throw BlobStoreError(kind: .notFound, description: "cannot read \(path): \(DataFolderError.errnoText())") }
            }
            // Uninitialized: zero-filling a 1 MiB buffer per chunk cost as much as reading into it.
            var n = 0
            let buffer = [UInt8](unsafeUninitializedCapacity: 1 << 20) { memory, count in
                repeat { n = read(fd, memory.baseAddress, memory.count) } while n < 0 && errno == EINTR
                count = Swift.max(n, 0)
            }
            if n <= 0 {
                close(fd)
                done = true
                if n < 0 { throw BlobStoreError(kind: .io, description: "cannot read \(path): \(DataFolderError.errnoText())") }
                return nil
            }
            return buffer
        }
    }
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(path: path) }
}
