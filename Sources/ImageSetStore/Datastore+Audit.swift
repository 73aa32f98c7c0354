import Foundation

/// The audit trail's two ways in (Docs/security.md, "Audit trail"):
/// - changes (STOW-RS, DELETE, prune) write their record in the transaction of the change, so
///   one never commits without the other (`store(_:reason:audit:)`, `remove`, `prune`);
/// - reads hand theirs to `audit(_:)`, a bounded buffer that a background writer drains in batches,
///   so a slow or failing audit sink never delays or fails a read: when the buffer is full, records
///   are dropped and counted, and a record saying how many were lost goes in when space returns.
extension Datastore {
    /// Queues a read's audit record; never blocks. False when the buffer was full and it was dropped.
    @discardableResult
    public func audit(_ event: AuditEvent) -> Bool { auditBuffer.submit(event) }

    /// Appends audit records now, in one transaction of their own: for what is not a change to
    /// the index (key creation and revocation by `tessera keys`, failed logins a caller wants on disk
    /// before it answers). Throws when they cannot be written.
    public func recordAudit(_ events: [AuditEvent]) async throws {
        guard access == .readWrite else { throw DataFolderError("the data folder \(folder) is open read-only; audit records cannot be written") }
        try await index.appendAudit(events)
    }

    /// The record of a change that did not happen (a STOW-RS whose every instance failed, an index
    /// commit that failed): written now when it can be, else handed to the read buffer, which
    /// counts it as lost if it cannot be written either, so it is never gone without a trace.
    func recordFailedChange(_ events: [AuditEvent]) async {
        do { try await recordAudit(events) } catch { for e in events { audit(e) } }
    }

    /// Waits until every record queued so far is written (or dropped); for shutdown and tests.
    public func flushAudit() async { await auditBuffer.flush() }

    /// Records dropped because the buffer was full or the writer failed, since the process started.
    public var auditRecordsDropped: Int { auditBuffer.droppedTotal }

    /// Records queued and not yet written (for the metrics' audit buffer depth).
    public var auditBufferDepth: Int { auditBuffer.depth }

    public func auditRecords(_ filter: AuditFilter) async throws -> [AuditRecord] { try await index.auditRecords(filter) }

    /// The sequence of the newest audit record (0 for an empty trail).
    public func auditHeadSequence() async throws -> Int64 { try await index.auditHeadSequence() }

    public func verifyAuditTrail(anchor: (Int64, String)? = nil) async throws -> AuditVerification {
        try await index.verifyAuditTrail(anchor: anchor)
    }

    /// One STOW-RS request's share of a group commit, for its audit record.
    struct AuditClaim: Sendable {
        let context: AuditContext
        let range: Range<Int>
        /// Parts refused before they reached the store (not DICOM, empty), counted as failures.
        let alsoFailed: Int
    }

    /// The store record of each claim, from the final outcome of its candidates: what was stored
    /// (UIDs, Patient IDs) and the status STOW-RS answers for it (PS3.18 §10.5.3: 200 all stored,
    /// 202 some failed or stored with warnings, 409 none).
    static func storeEvents(_ claims: [AuditClaim], outcomes: [IngestOutcome], patients: [Int: String]) -> [AuditEvent] {
        claims.map { claim in
            var subjects = AuditSubjects()
            var failed = claim.alsoFailed, referenced = 0, warnings = 0
            for k in claim.range {
                let o = outcomes[k]
                if o.status == .failed { failed += 1; continue }
                referenced += 1
                if o.isPrimary == false { warnings += 1 }
                subjects.add(study: o.studyInstanceUID, series: o.seriesInstanceUID, instance: o.sopInstanceUID, patient: patients[k])
            }
            let status = failed == 0 && warnings == 0 ? 200 : (referenced == 0 ? 409 : 202)
            return AuditEvent(claim.context, action: .store, subjects: subjects, success: referenced > 0, status: status,
                              detail: "\(referenced) stored, \(failed) failed")
        }
    }
}

/// The bounded queue between reads and the audit table. `submit` only takes a lock; a task on the
/// store's blocking executor writes what is queued, up to `batchSize` records per transaction.
/// The writer lets records gather for `gathering` before each transaction unless a batch's worth
/// (or half the buffer) is waiting or a flush is: started afresh for each few records, it cost a task, a thread
/// wake-up and a transaction (head read, head update, WAL write) per 2–5 stored frames served, a
/// third of the audit's CPU (perf, Docs/performance.md). A record waits at most that long more to
/// reach the disk; the buffer was already where a crash loses read records (Docs/security.md).
final class AuditBuffer: @unchecked Sendable {
    let capacity: Int
    let batchSize: Int
    let gathering: Duration
    private let write: @Sendable ([AuditEvent]) async throws -> Void
    private let lock = NSLock()
    private var queued: [AuditEvent] = []
    private var draining = false
    /// Dropped since the last loss record was queued.
    private var dropped = 0
    private var _droppedTotal = 0
    private let executor: BlockingExecutor
    /// Callers of `flush` waiting for the writer to go idle.
    private var idleWaiters: [CheckedContinuation<Void, Never>] = []

    init(capacity: Int, batchSize: Int = 512, gathering: Duration = .milliseconds(20), executor: BlockingExecutor,
         write: @escaping @Sendable ([AuditEvent]) async throws -> Void) {
        self.executor = executor
        self.capacity = max(capacity, 2)
        self.batchSize = batchSize
        self.gathering = gathering
        self.write = write
    }

    var droppedTotal: Int { lock.withLock { _droppedTotal } }
    var depth: Int { lock.withLock { queued.count } }

    func submit(_ event: AuditEvent) -> Bool {
        let (accepted, start) = lock.withLock { () -> (Bool, Bool) in
            // The loss record needs a place of its own before the event that follows the loss.
            guard queued.count + (dropped > 0 ? 2 : 1) <= capacity else {
                dropped += 1
                _droppedTotal += 1
                return (false, false)
            }
            if dropped > 0 {
                queued.append(Self.lossRecord(dropped))
                dropped = 0
            }
            queued.append(event)
            defer { draining = true }
            return (true, !draining)
        }
        if start { Task(executorPreference: executor) { await self.drain() } }
        return accepted
    }

    /// Returns once the writer is idle: every record queued before the call is written or dropped.
    func flush() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let idle = lock.withLock { () -> Bool in
                if !draining { return true }
                idleWaiters.append(c)
                return false
            }
            if idle { c.resume() }
        }
    }

    private func drain() async {
        var failed = false
        var waiters: [CheckedContinuation<Void, Never>] = []
        while true {
            // In slices, so that a queue filling up (or a flush waiting) ends the wait early: a writer
            // that gathered for the whole while could drop records a small buffer had no room for.
            var waited = Duration.zero
            while waited < gathering, lock.withLock({ idleWaiters.isEmpty && queued.count < batchSize && queued.count * 2 < capacity }) {
                try? await Task.sleep(for: gathering / 4)
                waited += gathering / 4
            }
            let batch = lock.withLock { () -> [AuditEvent] in
                // Space has returned (the queue is empty): the loss goes on record, unless writing is what fails.
                if queued.isEmpty && dropped > 0 && !failed {
                    queued.append(Self.lossRecord(dropped))
                    dropped = 0
                }
                let taken = Array(queued.prefix(batchSize))
                queued.removeFirst(taken.count)
                if taken.isEmpty {
                    // Idle, and the waiters taken in the same critical section: a flush that comes
                    // after this waits for the next drain, never wakes on this one.
                    draining = false
                    waiters = idleWaiters
                    idleWaiters = []
                }
                return taken
            }
            if batch.isEmpty {
                for waiter in waiters { waiter.resume() }
                return
            }
            do {
                try await write(batch)
                failed = false
            } catch {
                failed = true
                // Lost like a full buffer's: counted, and said so in the trail when a write succeeds again.
                lock.withLock {
                    dropped += batch.count
                    _droppedTotal += batch.count
                }
            }
        }
    }

    static func lossRecord(_ n: Int) -> AuditEvent {
        AuditEvent(action: .recordsDropped, principal: Principal(name: "tessera", roles: [], kind: .local), success: false,
                   detail: "\(n) audit records dropped (the audit buffer was full or its writer failed)")
    }
}
