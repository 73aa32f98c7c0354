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

    public func setRetainVersions(_ n: Int?) throws {
        if let n, n < 1 { throw BlobStoreError(kind: .io, description: "an image set keeps at least its latest version") }
        try setSetting("retainVersions", n.map(String.init) ?? "")
    }

    /// Keeps the newest `keep` versions of one image set (every image set when nil) and frees what
    /// nothing retained references.
    @discardableResult
    public func prune(imageSetID: String? = nil, keep: Int) throws -> PruneReport {
        guard keep >= 1 else { throw BlobStoreError(kind: .io, description: "keep must be at least 1") }
        let result = try index.pruneVersions(imageSetID: imageSetID, keep: keep)
        var report = PruneReport(versionsRemoved: result.versionsRemoved, instanceRowsRemoved: result.instanceRowsRemoved)
        for id in result.blobs.sorted(by: { $0.hex < $1.hex }) {
            let size = (try? blobs.localPath(id).flatMap { try FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int }) ?? nil
            let removed = try pending.removeIfUnused(id, isReferenced: { try index.isReferenced(id) }, remove: { try blobs.remove(id) })
            if removed {
                report.blobsRemoved += 1
                report.bytesFreed += size ?? 0
            }
        }
        return report
    }

    /// Removes the current instances of a study, series or instance in a new version of each image
    /// set holding them, then applies the retention rule. Returns how many instances were removed.
    public func remove(study: String, series: String? = nil, sop: String? = nil, reason: String = "DELETE") throws -> Int {
        let sets = Set(try index.currentInstances(study: study, series: series, sop: sop).map(\.imageSetID))
        let removed = try index.removeInstances(study: study, series: series, sop: sop, reason: reason)
        scheduleMetadataRefresh()
        // The removal has committed; pruning is best effort (what it leaves, the next prune frees).
        if let keep = retainVersions {
            for set in sets.sorted() { _ = try? prune(imageSetID: set, keep: keep) }
        }
        return removed
    }

    /// Applies the retention rule to the image sets where a commit replaced instances.
    func pruneAfterReplacement(_ outcomes: [IngestOutcome]) {
        let sets = Set(outcomes.filter { $0.status == .replaced }.flatMap { [$0.replacedInImageSetID, $0.imageSetID].compactMap { $0 } })
        guard !sets.isEmpty, let keep = retainVersions else { return }
        for set in sets.sorted() { _ = try? prune(imageSetID: set, keep: keep) }
    }
}
