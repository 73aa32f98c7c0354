import Foundation
import GRDB

extension SQLiteIndex {
    /// Drops all but the newest `keep` versions of an image set (of every image set when nil) and
    /// the instance rows no retained version can see. An instance row belongs to the versions
    /// `[added_version, removed_version)`; once the oldest retained version is at or past
    /// `removed_version`, nothing can read it any more. Returns the blobs those rows named: the
    /// caller frees each one that no other row references.
    public func pruneVersions(imageSetID: String?, keep: Int, audit: AuditContext?) throws -> PruneResult {
        precondition(keep >= 1, "an image set always keeps its latest version")
        return try pool.write { db in
            var result = PruneResult()
            var subjects = AuditSubjects()
            var changes = ChangeDrafts(now: Date().timeIntervalSince1970)
            let sets: [String] = if let imageSetID { [imageSetID] } else {
                try String.fetchAll(db, sql: "SELECT DISTINCT image_set_id FROM image_set_version")
            }
            for set in sets {
                // The oldest version kept: the keep-th newest (versions may have gaps after earlier prunes).
                guard let oldestKept = try Int.fetchOne(db, sql: """
                    SELECT version FROM image_set_version WHERE image_set_id = ? ORDER BY version DESC LIMIT 1 OFFSET ?
                    """, arguments: [set, keep - 1]) else { continue }
                try db.execute(sql: "DELETE FROM image_set_version WHERE image_set_id = ? AND version < ?", arguments: [set, oldestKept])
                let versionsRemoved = db.changesCount
                result.versionsRemoved += versionsRemoved
                let gone = try Row.fetchAll(db, sql: """
                    SELECT id, blob_id, frames_blob_id FROM instance
                    WHERE image_set_id = ? AND removed_version IS NOT NULL AND removed_version <= ?
                    """, arguments: [set, oldestKept])
                for row in gone {
                    if let id = BlobID(hex: row["blob_id"]) { result.blobs.insert(id) }
                    if let id = (row["frames_blob_id"] as String?).flatMap(BlobID.init(hex:)) { result.blobs.insert(id) }
                    // Frames go with their instance (ON DELETE CASCADE).
                    try db.execute(sql: "DELETE FROM instance WHERE id = ?", arguments: [row["id"] as Int64])
                }
                result.instanceRowsRemoved += gone.count
                if versionsRemoved > 0 || !gone.isEmpty,
                   let s = try Row.fetchOne(db, sql: "SELECT study_instance_uid, patient_id FROM image_set WHERE id = ?", arguments: [set]) {
                    subjects.add(study: s["study_instance_uid"], patient: s["patient_id"])
                    changes.add(.versionsPruned, set: set, version: oldestKept, study: s["study_instance_uid"], patient: s["patient_id"],
                                versionsRemoved: versionsRemoved)
                }
            }
            if let audit {
                let what = "keep \(keep): \(result.versionsRemoved) version(s), \(result.instanceRowsRemoved) instance row(s) removed"
                try Self.appendAudit([AuditEvent(audit, action: .prune, subjects: subjects, success: true, status: 200,
                                                 detail: what + (imageSetID.map { " from image set \($0)" } ?? ""))], in: db)
            }
            try Self.appendChanges(changes, in: db)
            return result
        }
    }
}

public struct PruneResult: Sendable {
    public var versionsRemoved = 0
    public var instanceRowsRemoved = 0
    /// Blobs that the removed rows referenced; some may still be referenced by other rows.
    public var blobs: Set<BlobID> = []
    public init() {}
}
