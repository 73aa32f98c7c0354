import Foundation

/// Version retention. The rule: a version is kept until pruned; pruning keeps the newest N versions
/// of an image set, drops the instance rows none of them can see, and removes a blob once no
/// remaining row (of any image set, in any kept version) references it. With `retainVersions` set,
/// every DELETE and every replacement prunes the image sets it touched at once.
extension Datastore {
    public struct PruneReport: Sendable, Codable {
        public var versionsRemoved = 0
        public var instanceRowsRemoved = 0
        public var blobsRemoved = 0
        public var bytesFreed = 0
    }

    /// How many versions per image set DELETE and replacement keep (nil: all, until pruned by hand).
    public var retainVersions: Int? {
        guard let value = setting("retainVersions"), let n = Int(value), n >= 1 else { return nil }
        return n
    }

    public func setRetainVersions(_ n: Int?) async throws {
        if let n, n < 1 { throw BlobStoreError(kind: .io, description: "an image set keeps at least its latest version") }
        try await setSetting("retainVersions", n.map(String.init) ?? "")
    }

    /// Keeps the newest `keep` versions of one image set (every image set when nil) and frees what
    /// nothing retained references.
    @discardableResult
    /// With `audit`, the prune's audit record commits in its transaction.
    public func prune(imageSetID: String? = nil, keep: Int, audit: AuditContext? = nil) async throws -> PruneReport {
        guard keep >= 1 else { throw BlobStoreError(kind: .io, description: "keep must be at least 1") }
        await refreshSettingsIfStale()
        let result = try await onFullDisk { try await self.index.pruneVersions(imageSetID: imageSetID, keep: keep, audit: audit) }
        changeSignal.signal()
        var report = PruneReport(versionsRemoved: result.versionsRemoved, instanceRowsRemoved: result.instanceRowsRemoved)
        for id in result.blobs.sorted(by: { $0.hex < $1.hex }) {
            let size = (try? blobs.localPath(id).flatMap { try FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int }) ?? nil
            if try await removeBlobIfUnused(id) {
                report.blobsRemoved += 1
                report.bytesFreed += size ?? 0
            }
        }
        return report
    }

    /// Removes the current instances of a study, series or instance (in the primary image set, or in
    /// the one `scope` names) in a new version of each image set holding them, then applies the
    /// retention rule. Returns how many instances were removed.
    public func remove(study: String, series: String? = nil, sop: String? = nil, scope: ImageSetScope = .primary,
                       reason: String = "DELETE", audit: AuditContext? = nil) async throws -> Int {
        await refreshSettingsIfStale()  // the retention rule applied below is another replica's to change too
        let removed = try await onFullDisk { try await self.index.removeInstances(study: study, series: series, sop: sop, scope: scope, reason: reason, audit: audit) }
        changeSignal.signal()
        scheduleMetadataRefresh()
        await applyRetention(to: Set(removed.keys))
        return removed.values.reduce(0, +)
    }

    /// An index change that frees space, made even on a full disk: SQLITE_FULL frees the last of
    /// the reserve (`DiskReserve`) and the change runs once more.
    func onFullDisk<T>(_ change: () async throws -> T) async throws -> T {
        disk?.refresh()
        do { return try await change() } catch where DiskReserve.isNoSpace(error) {
            guard disk?.releaseAll() == true else { throw error }
            return try await change()
        }
    }

    /// Applies the retention rule to the image sets where a commit replaced instances: the set each
    /// replaced instance left and the one its replacement joined.
    func pruneAfterReplacement(_ outcomes: [IngestOutcome]) async {
        await applyRetention(to: Set(outcomes.filter { $0.status == .replaced }.flatMap { [$0.replacedInImageSetID, $0.imageSetID].compactMap { $0 } }))
    }

    /// Prunes `sets` to `retainVersions` when that is set. Best effort: the change that touched them
    /// has committed, and what a failed prune leaves the next prune frees.
    private func applyRetention(to sets: Set<String>) async {
        guard !sets.isEmpty, let keep = retainVersions else { return }
        for set in sets.sorted() { _ = try? await prune(imageSetID: set, keep: keep) }
    }

    /// Removes the blob when no in-flight ingest holds it and no row references it, ordered against
    /// ingests of the same bytes by the pending-blob lock (`PendingBlobs.removeIfUnused`). With shared
    /// backends nothing is removed here: another process may be committing the same bytes, and
    /// the sweeper removes the blob once it is older than the grace period (`sweepOrphans`).
    func removeBlobIfUnused(_ id: BlobID) async throws -> Bool {
        guard !shared else { return false }
        return try await Self.removeIfUnused(id, index: index, blobs: blobs, grace: 0, pending: pending)
    }
}
