/// The checks of `verifyAuditTrail`, apart from where the records come from, so that every index
/// (SQLite, PostgreSQL) finds the same problems and says so in the same words.
extension AuditVerification {
    /// Takes the next record of a walk in sequence order: its sequence follows the last one's without a
    /// gap, its `previousHash` is the last one's hash, its stored hash its recomputed one, and it is the
    /// record `anchor` names if the anchor names its sequence. False when it found the first problem
    /// (`problem`); the walk stops there.
    public mutating func check(_ r: AuditRecord, anchor: (Int64, String)?) -> Bool {
        let expected = headSequence + 1
        if r.sequence != expected {
            problem = r.sequence > expected
                ? "record \(expected)\(r.sequence - expected > 1 ? "–\(r.sequence - 1)" : "") is missing (deleted): the trail jumps to \(r.sequence)"
                : "record \(r.sequence) is out of order"
            return false
        }
        if r.previousHash != headHash {
            problem = "record \(r.sequence) does not chain to record \(r.sequence - 1) (its previous hash differs): a record before it was changed or replaced"
            return false
        }
        if r.computedHash() != r.hash {
            problem = "record \(r.sequence) was changed after it was written (its hash does not match its content)"
            return false
        }
        records += 1
        headSequence = r.sequence
        headHash = r.hash
        if let (s, h) = anchor, s == r.sequence, h != r.hash {
            problem = "record \(s) is not the one the anchor names (hash \(r.hash), anchor \(h)): the trail was rewritten"
            return false
        }
        return true
    }

    /// After a whole walk: the last record must be the head the index kept with every append (its
    /// sequence as text and its hash; nil when none is kept), and the anchor no later than it.
    public mutating func finish(head: (sequence: String, hash: String)?, anchor: (Int64, String)?) {
        if let head, head.sequence != String(headSequence) || head.hash != headHash {
            problem = "the trail ends at record \(headSequence) but the last one written was record \(head.sequence): the newest records were deleted"
        } else if head == nil && records > 0 {
            problem = "the trail's head is missing from the index"
        }
        if problem == nil, let (s, _) = anchor, s > headSequence {
            problem = "the anchor names record \(s) but the trail ends at record \(headSequence): the newest records were deleted"
        }
    }
}
