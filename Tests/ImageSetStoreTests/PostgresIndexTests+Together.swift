import Foundation
@testable import ImageSetStore
@testable import PostgresIndex
import Logging
import PostgresNIO
import StoreTestSupport
import XCTest

/// A batch committed together (a few multi-row statements) against the same batch committed one
/// savepoint per instance: outcomes, versions, rows, series documents and change-feed events agree.
final class PostgresIndexTogetherTests: XCTestCase {
    /// New instances, new series, a duplicate, a refused changed copy, two instances disagreeing with
    /// the primary set (a new non-primary set, then joining it), then replacements (one moving an
    /// instance into the non-primary set, one across studies) beside new ones.
    func testABatchCommittedTogetherMatchesOneSavepointPerInstance() async throws {
        let together = try await TestBackends.postgresIndex(url: try await TestBackends.freshPostgresDatabase())
        let oneByOne = try await TestBackends.postgresIndex(url: try await TestBackends.freshPostgresDatabase())
        let study = "1.2.826.0.1.3680043.9.7433.55", other = "1.2.826.0.1.3680043.9.7433.56"
        func p(_ n: Int, series: Int = 1, study s: String? = nil, name: String = "DOE^JANE", blob: String? = nil) -> PreparedInstance {
            let st = s ?? study
            var i = PostgresIndexTests.prepared(study: st, series: "\(st).\(series)", sop: "\(study).\(n)", patientName: name, instanceNumber: n)
            if let blob { i.blob = PostgresIndexTests.blob(blob) }
            return i
        }
        var multiFrame = p(4, series: 2)
        multiFrame.attributes.numberOfFrames = 3
        multiFrame.frames = [FrameRecord(number: 1, offset: 100, length: 10, fragments: [100..<104, 200..<206]),
                             FrameRecord(number: 2, offset: 300, length: 10, fragments: nil), FrameRecord(number: 3, offset: 400, length: 1, fragments: nil)]
        multiFrame.framesBlob = PostgresIndexTests.blob("transcoded 4")
        multiFrame.framesBlobSize = 321
        multiFrame.framesTransferSyntaxUID = "1.2.840.10008.1.2.4.80"
        let batches: [([PreparedInstance], DuplicatePolicy)] = [
            ([p(1), p(2), p(3, study: other)], .reject),
            ([p(1), p(2, blob: "changed 2"), multiFrame, p(5, name: "DOE^JOHN"), p(6, series: 3, name: "DOE^JOHN"), p(7)], .reject),
            ([p(2, blob: "replaced 2"), p(7, name: "DOE^JOHN", blob: "moved 7"), p(3, blob: "moved 3"), p(8, series: 2)], .replace),
        ]
        var a = PostgresIndexTests.Names(), b = PostgresIndexTests.Names()
        for (batch, policy) in batches {
            // The internal entry point: it throws instead of falling back to one savepoint per instance.
            let x = try await together.commit(batch, policy: policy, reason: "stored", audit: nil, together: true)
            let y = try await oneByOne.commit(batch, policy: policy, reason: "stored", audit: nil, together: false)
            XCTAssertEqual(x.map { a.postgres($0) }, y.map { b.postgres($0) })
        }
        let eventsX = try await together.changes(after: 0, limit: 1000), eventsY = try await oneByOne.changes(after: 0, limit: 1000)
        // A commit's version events come in image set id order, and ids are random: those are compared as a set.
        func versionEvent(_ e: ChangeEvent) -> Bool { [.imageSetVersion, .imageSetState].contains(e.type) }
        XCTAssertEqual(eventsX.filter { !versionEvent($0) }.map { Self.describe($0, a.byPostgres) },
                       eventsY.filter { !versionEvent($0) }.map { Self.describe($0, b.byPostgres) })
        XCTAssertEqual(Set(eventsX.filter(versionEvent).map { Self.describe($0, a.byPostgres, sequence: false) }),
                       Set(eventsY.filter(versionEvent).map { Self.describe($0, b.byPostgres, sequence: false) }))
        XCTAssertEqual(eventsX.map(\.sequence), Array(1...Int64(eventsY.count)))
        XCTAssertGreaterThan(eventsX.count, 20)
        XCTAssertEqual(a.byPostgres.count, 3, "the primary sets of both studies and one non-primary set")
        for (idX, label) in a.byPostgres.sorted(by: { $0.value < $1.value }) {
            let idY = try XCTUnwrap(b.byPostgres.first { $0.value == label }?.key)
            let sx = try await XCTUnwrapAsync(try await together.imageSet(idX)), sy = try await XCTUnwrapAsync(try await oneByOne.imageSet(idY))
            XCTAssertEqual([sx.isPrimary, sx.state, sx.version, sx.seriesCount, sx.instanceCount, sx.frameCount, sx.conflicts, sx.attributes] as [AnyHashable],
                           [sy.isPrimary, sy.state, sy.version, sy.seriesCount, sy.instanceCount, sy.frameCount, sy.conflicts, sy.attributes], label)
            let vx = try await together.versions(of: idX), vy = try await oneByOne.versions(of: idY)
            XCTAssertEqual(vx.map { "\($0.version) \($0.instanceCount) \($0.reason)" }, vy.map { "\($0.version) \($0.instanceCount) \($0.reason)" }, label)
            for v in [nil] + vx.map(\.version) {
                let ix = try await together.instances(of: idX, version: v), iy = try await oneByOne.instances(of: idY, version: v)
                XCTAssertEqual(ix.map(PostgresIndexTests.comparable), iy.map(PostgresIndexTests.comparable), "\(label) v\(v ?? 0)")
            }
            for series in Set(try await oneByOne.instances(of: idY, version: nil).map(\.seriesInstanceUID)) {
                let mx = try await together.seriesMetadata(imageSetID: idX, seriesInstanceUID: series)
                let my = try await oneByOne.seriesMetadata(imageSetID: idY, seriesInstanceUID: series)
                XCTAssertEqual(mx, my, "\(label) \(series)")
            }
        }
        let refreshedX = try await together.refreshPendingSeriesMetadata(), refreshedY = try await oneByOne.refreshPendingSeriesMetadata()
        XCTAssertEqual(refreshedX, refreshedY)
        let rx = try await XCTUnwrapAsync(try await together.instance(sopInstanceUID: multiFrame.sopInstanceUID))
        let ry = try await XCTUnwrapAsync(try await oneByOne.instance(sopInstanceUID: multiFrame.sopInstanceUID))
        XCTAssertEqual(PostgresIndexTests.comparable(rx), PostgresIndexTests.comparable(ry))
        let fx = try await together.frames(of: rx.id), fy = try await oneByOne.frames(of: ry.id)
        XCTAssertEqual(fx, fy)
        XCTAssertEqual(fx, multiFrame.frames)
        let mx = try await together.metadata(of: rx.id)
        XCTAssertEqual(mx, multiFrame.metadataJSON)
        await together.close()
        await oneByOne.close()
    }

    /// One instance that the database refuses (two frames numbered 1: the frame table's primary key),
    /// in the middle of a batch: the batch's statements fail together, and the batch is committed
    /// again one savepoint per instance, so the others are stored, as on SQLite.
    func testOneFailingInstanceInTheMiddleLeavesTheOthersIn() async throws {
        let folder = try StoreFixtures.temporaryFolder("pg-together")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let sqlite = try SQLiteIndex(path: folder + "/index.sqlite")
        let pg = try await TestBackends.postgresIndex(url: try await TestBackends.freshPostgresDatabase())
        let study = "1.2.826.0.1.3680043.9.7433.57"
        var batch = (1...5).map { PostgresIndexTests.prepared(study: study, series: "\(study).1", sop: "\(study).\($0)") }
        batch[2].frames = [FrameRecord(number: 1, offset: 0, length: 4, fragments: nil), FrameRecord(number: 1, offset: 4, length: 4, fragments: nil)]
        do {
            _ = try await pg.commit(batch, policy: .reject, reason: "stored", audit: nil, together: true)
            XCTFail("the batch's multi-row insert should fail")
        } catch is PostgresIndex.InstanceByInstance {}
        let outcomes = try await pg.commit(batch, policy: .reject, reason: "stored", audit: nil)
        let expected = try sqlite.commit(batch, policy: .reject, reason: "stored", audit: nil)
        XCTAssertEqual(outcomes.map { "\($0.sopInstanceUID ?? "") \($0.status)" }, expected.map { "\($0.sopInstanceUID ?? "") \($0.status)" })
        XCTAssertEqual(outcomes.map(\.status), [.stored, .stored, .failed, .stored, .stored])
        let set = try XCTUnwrap(outcomes.first?.imageSetID)
        let versions = try await pg.versions(of: set)
        XCTAssertEqual(versions.map { "\($0.version) \($0.instanceCount) \($0.reason)" }, ["1 4 stored: 4 instance(s) added"])
        let events = try await pg.changes(after: 0, limit: 100)
        XCTAssertEqual(events.filter { $0.type == .instanceStored }.compactMap(\.sopInstanceUID), [1, 2, 4, 5].map { "\(study).\($0)" })
        XCTAssertEqual(events.map(\.sequence), Array(1...Int64(events.count)), "gap-free")
        let failed = try await pg.instance(sopInstanceUID: batch[2].sopInstanceUID)
        XCTAssertNil(failed)
        await pg.close()
    }

    /// An event without its time, its image set named by label.
    static func describe(_ e: ChangeEvent, _ names: [String: String], sequence: Bool = true) -> String {
        func text(_ v: Any?) -> String { v.map { "\($0)" } ?? "-" }
        return [sequence ? text(e.sequence) : "", e.type.rawValue, text(e.imageSetId.map { names[$0] ?? $0 }), text(e.version), text(e.studyInstanceUID),
                text(e.seriesInstanceUID), text(e.sopInstanceUID), text(e.transferSyntaxUID), text(e.size), text(e.patientID),
                text(e.isPrimary), text(e.state), text(e.conflicts), text(e.reason), text(e.versionsRemoved)].joined(separator: " ")
    }

    enum Probe: PreparedTag { static let name = "test_probe" }

    /// postgres-nio keeps a failed preparation's error and returns it on every later call on that
    /// connection; a statement whose prepared call failed once runs unnamed there from then on. Here
    /// the preparation fails because the table is not there yet (a statement prepared before a
    /// migration), then the table appears and the same call succeeds.
    func testAStatementWhosePreparationFailedRunsUnnamedOnThatConnection() async throws {
        let url = try await TestBackends.freshPostgresDatabase()
        let logger = Logger(label: "test")
        try await TestBackends.withConnection(url: url) { conn in
            let query: PostgresQuery = "SELECT x FROM probe_table WHERE x = \(7)"
            do {
                _ = try await PostgresIndex.rows(query, prepared: Probe.self, on: conn, logger: logger)
                XCTFail("the table does not exist yet")
            } catch {}
            try await conn.query("CREATE TABLE probe_table(x int)", logger: logger)
            try await conn.query("INSERT INTO probe_table VALUES (7)", logger: logger)
            let rows = try await PostgresIndex.rows(query, prepared: Probe.self, on: conn, logger: logger)
            XCTAssertEqual(try rows.map { try $0["x"].decode(Int.self) }, [7])
        }
    }

    /// The batched insert carries an absent number as Int64.min; an Instance Number clamped to
    /// exactly that is stored as itself (the per-instance path), not as absent.
    func testANumberAtTheAbsentMarkerIsStoredAsItself() async throws {
        let index = try await TestBackends.postgresIndex(url: try await TestBackends.freshPostgresDatabase())
        let study = "1.2.826.0.1.3680043.9.7433.57"
        let batch = [PostgresIndexTests.prepared(study: study, series: study + ".1", sop: study + ".1", instanceNumber: Int(Int64.min)),
                     PostgresIndexTests.prepared(study: study, series: study + ".1", sop: study + ".2", instanceNumber: nil)]
        _ = try await index.commit(batch, policy: .reject, reason: "stored", audit: nil)
        let stored = try await XCTUnwrapAsync(try await index.instance(sopInstanceUID: study + ".1"))
        XCTAssertEqual(stored.attributes.instanceNumber, Int(Int64.min))
        let absent = try await XCTUnwrapAsync(try await index.instance(sopInstanceUID: study + ".2"))
        XCTAssertNil(absent.attributes.instanceNumber)
    }
}
