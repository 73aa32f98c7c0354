import Foundation
import ImageSetStore
import PostgresNIO

extension PostgresIndex {
    /// Drops all but the newest `keep` versions of an image set (of every image set when nil) and
    /// the instance rows no retained version can see (SQLiteIndex.pruneVersions). Pruning one set
    /// takes its study's lock like any writer; pruning every set takes the writers' lock exclusively
    /// (one lock, where a lock per study could exhaust PostgreSQL's lock table), so commits wait.
    public func pruneVersions(imageSetID: String?, keep: Int, audit: AuditContext?) async throws -> PruneResult {
        precondition(keep >= 1, "an image set always keeps its latest version")
        let logger = self.logger
        return try await write { conn in
            func rows(_ q: PostgresQuery) async throws -> [PostgresRandomAccessRow] { try await Self.rows(q, on: conn, logger: logger) }
            var result = PruneResult()
            var subjects = AuditSubjects()
            var changes = ChangeDrafts(now: Date().timeIntervalSince1970)
            let sets: [String]
            if let imageSetID {
                let study = try await rows("SELECT study_instance_uid FROM image_set WHERE id = \(imageSetID)").first?.get("study_instance_uid", as: String.self)
                try await Self.lockStudies(study.map { [$0] } ?? [], on: conn, logger: logger)
                sets = [imageSetID]
            } else {
                try await conn.query("SELECT pg_advisory_xact_lock(\(Self.lockClass), \(LockRole.writers.rawValue))", logger: logger)
                sets = try await rows("SELECT DISTINCT image_set_id FROM image_set_version ORDER BY image_set_id").map { try $0.get("image_set_id") }
            }
            for set in sets {
                // The oldest version kept: the keep-th newest (versions may have gaps after earlier prunes).
                guard let oldestKept = try await rows("""
                    SELECT version FROM image_set_version WHERE image_set_id = \(set) ORDER BY version DESC LIMIT 1 OFFSET \(keep - 1)
                    """).first?.get("version", as: Int.self) else { continue }
                let versionsRemoved = try await rows("""
                    DELETE FROM image_set_version WHERE image_set_id = \(set) AND version < \(oldestKept) RETURNING 1 AS gone
                    """).count
                result.versionsRemoved += versionsRemoved
                // Frames and metadata go with their instance (ON DELETE CASCADE).
                let gone = try await rows("""
                    DELETE FROM instance WHERE image_set_id = \(set) AND removed_version IS NOT NULL AND removed_version <= \(oldestKept)
                    RETURNING blob_id, frames_blob_id
                    """)
                for row in gone {
                    if let id = BlobID(hex: try row.get("blob_id")) { result.blobs.insert(id) }
                    if let id = (try row.get("frames_blob_id", as: String?.self)).flatMap(BlobID.init(hex:)) { result.blobs.insert(id) }
                }
                result.instanceRowsRemoved += gone.count
                if versionsRemoved > 0 || !gone.isEmpty,
                   let s = try await rows("SELECT study_instance_uid, patient_id FROM image_set WHERE id = \(set)").first {
                    let study: String = try s.get("study_instance_uid"), patient: String = try s.get("patient_id")
                    subjects.add(study: study, patient: patient)
                    changes.add(.versionsPruned, set: set, version: oldestKept, study: study, patient: patient, versionsRemoved: versionsRemoved)
                }
            }
            var records: [AuditRecord] = []
            if let audit {
                let what = "keep \(keep): \(result.versionsRemoved) version(s), \(result.instanceRowsRemoved) instance row(s) removed"
                records = Self.chained([AuditEvent(audit, action: .prune, subjects: subjects, success: true, status: 200,
                                                   detail: what + (imageSetID.map { " from image set \($0)" } ?? ""))],
                                       after: try await Self.lockedHead(on: conn, logger: logger))
            }
            try await Self.appendTrails(records, changes, on: conn, logger: logger)
            return result
        }
    }
}
