import Foundation
import ImageSetStore
import PostgresNIO

/// The two appends every write transaction ends with, the audit records (PostgresIndex+Audit.swift)
/// and the change feed's events (PostgresIndex+ChangeFeed.swift), in one prepared statement: a STOW
/// commit's last round trip before COMMIT. Both travel as JSON arrays, so the statement's text is
/// the same whatever their counts (one prepared plan, where a VALUES list per record count was
/// parsed and planned on every call). The feed's head row is still the transaction's last lock.
extension PostgresIndex {
    enum AppendTrails: PreparedTag { static let name = "append_trails" }

    /// Appends audit `records` (numbered and chained by the caller, after `lockedHead`) and numbers
    /// and appends `drafts`, inside the caller's transaction. Either may be empty; an empty one takes
    /// no lock (the feed's head row is locked only when there are events).
    static func appendTrails(_ records: [AuditRecord], _ drafts: ChangeDrafts, on conn: PostgresConnection, logger: Logger) async throws {
        guard !records.isEmpty || !drafts.isEmpty else { return }
        let recordsJSON = String(decoding: try JSONEncoder().encode(records.map(AuditRow.init)), as: UTF8.self)
        let recordCount = Int64(records.count)
        let last = records.last
        let headSequence = last?.sequence ?? 0, headHash = last?.hash ?? ""
        let eventCount = Int64(drafts.events.count)
        let eventsJSON = drafts.isEmpty ? "[]" : String(decoding: ChangeEvent.json(drafts.events), as: UTF8.self)
        let time = drafts.time.timeIntervalSince1970
        // Array fields keep their order: ORDER BY each element's ordinal.
        _ = try await rows("""
            WITH records AS (
                INSERT INTO audit(sequence, time_us, principal, principal_kind, roles, client_address, request_id, action,
                    studies, study_count, series, series_count, instances, instance_count, patients, patient_count,
                    success, status, detail, previous_hash, hash)
                SELECT (r->>'sequence')::bigint, (r->>'timeMicroseconds')::bigint, r->>'principal', r->>'principalKind',
                    ARRAY(SELECT x FROM jsonb_array_elements_text(r->'roles') WITH ORDINALITY AS a(x, n) ORDER BY n),
                    r->>'clientAddress', r->>'requestID', r->>'action',
                    ARRAY(SELECT x FROM jsonb_array_elements_text(r->'studies') WITH ORDINALITY AS a(x, n) ORDER BY n),
                    (r->>'studyCount')::integer,
                    ARRAY(SELECT x FROM jsonb_array_elements_text(r->'series') WITH ORDINALITY AS a(x, n) ORDER BY n),
                    (r->>'seriesCount')::integer,
                    ARRAY(SELECT x FROM jsonb_array_elements_text(r->'instances') WITH ORDINALITY AS a(x, n) ORDER BY n),
                    (r->>'instanceCount')::integer,
                    ARRAY(SELECT x FROM jsonb_array_elements_text(r->'patients') WITH ORDINALITY AS a(x, n) ORDER BY n),
                    (r->>'patientCount')::integer,
                    (r->>'success')::boolean, (r->>'status')::integer, r->>'detail', r->>'previousHash', r->>'hash'
                FROM jsonb_array_elements(\(recordsJSON)::jsonb) AS r
            ), head_record AS (
                INSERT INTO audit_head(id, sequence, hash) SELECT 1, \(headSequence), \(headHash) WHERE \(recordCount) > 0
                ON CONFLICT (id) DO UPDATE SET sequence = excluded.sequence, hash = excluded.hash
            ), head AS (
                UPDATE change_feed_head SET sequence = sequence + \(eventCount) WHERE id = 1 AND \(eventCount) > 0 RETURNING sequence
            )
            INSERT INTO change_event(sequence, time, type, image_set_id, version, study_instance_uid, series_instance_uid,
                sop_instance_uid, transfer_syntax_uid, size, patient_id, is_primary, state, conflicts, reason, versions_removed)
            SELECT head.sequence - \(eventCount) + e.ord, \(time), e.doc->>'type', e.doc->>'imageSetId', (e.doc->>'version')::bigint,
                e.doc->>'studyInstanceUID', e.doc->>'seriesInstanceUID', e.doc->>'sopInstanceUID', e.doc->>'transferSyntaxUID',
                (e.doc->>'size')::bigint, e.doc->>'patientID', (e.doc->>'isPrimary')::boolean, e.doc->>'state',
                (e.doc->'conflicts')::text, e.doc->>'reason', (e.doc->>'versionsRemoved')::bigint
            FROM head, jsonb_array_elements(\(eventsJSON)::jsonb) WITH ORDINALITY AS e(doc, ord)
            """, prepared: AppendTrails.self, on: conn, logger: logger)
    }

    /// The audit head that a statement of the transaction read with the lock (`Batch.writeAndVersion`);
    /// when none did (nothing was versioned, or the trail is empty), the lock and the head now.
    static func lockedHead(unlessRead head: (Int64, String)?, on conn: PostgresConnection, logger: Logger) async throws -> (Int64, String)? {
        if let head { return head }
        return try await lockedHead(on: conn, logger: logger)
    }

    /// Numbers and chains `events` after `head` (the newest record, nil for an empty trail).
    static func chained(_ events: [AuditEvent], after head: (Int64, String)?) -> [AuditRecord] {
        var sequence = head?.0 ?? 0
        var previous = head?.1 ?? AuditRecord.genesis
        return events.map { event in
            sequence += 1
            let r = AuditRecord(event, sequence: sequence, previousHash: previous)
            previous = r.hash
            return r
        }
    }

    /// An audit record as `appendTrails` reads it from JSON (an absent value: no key, read as NULL).
    struct AuditRow: Encodable {
        var sequence, timeMicroseconds: Int64
        var principal, principalKind: String?
        var roles: [String]
        var clientAddress, requestID: String?
        var action: String
        var studies, series, instances, patients: [String]
        var studyCount, seriesCount, instanceCount, patientCount: Int
        var success: Bool
        var status: Int?
        var detail: String?
        var previousHash, hash: String

        init(_ r: AuditRecord) {
            let s = r.subjects
            sequence = r.sequence; timeMicroseconds = r.timeMicroseconds; principal = r.principalName; principalKind = r.principalKind
            roles = r.roles; clientAddress = r.clientAddress; requestID = r.requestID; action = r.action
            studies = s.studies; series = s.series; instances = s.instances; patients = s.patients
            studyCount = s.studyCount; seriesCount = s.seriesCount; instanceCount = s.instanceCount; patientCount = s.patientCount
            success = r.success; status = r.status; detail = r.detail; previousHash = r.previousHash; hash = r.hash
        }
    }
}
