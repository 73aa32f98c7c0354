import DICOMCore
import DICOMParser
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import StoreTestSupport
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Issue 13 §3: `tessera serve` replicas on one PostgreSQL database and one S3 bucket behind nginx
/// behave as one service, and survive losing one. Real processes (ReplicaCluster); each test has a
/// fresh database and bucket. Needs TESSERA_TEST_POSTGRES and TESSERA_TEST_S3_* (Tools/test).
final class ReplicaTests: XCTestCase, @unchecked Sendable {
    var cluster: ReplicaCluster?

    override func tearDown() {
        cluster?.stop()
        cluster = nil
    }

    /// A study UID of its own per test: the bucket and database are fresh, but nginx's and the
    /// replicas' logs are easier to read with distinct UIDs.
    let study = "1.2.826.0.1.3680043.9.7433.13.\(UInt32.random(in: 1..<UInt32.max))"
    var series: String { study + ".1" }
    func sop(_ i: Int) -> String { study + ".1.\(i)" }
    func instance(_ i: Int) throws -> [UInt8] { try DICOMwebTestCase.instance(sop: sop(i), study: study, series: series) }
    func instanceURL(_ base: String, _ i: Int) -> String { base + "/dicomweb/studies/\(study)/series/\(series)/instances/\(sop(i))" }

    /// The instance as the replica returns it: one part, the stored Part 10 bytes (PS3.18 §10.4.1.1.1,
    /// transfer-syntax=* asks for the stored syntax).
    func retrieve(_ base: String, _ i: Int) async throws -> Answer {
        try await HTTP.get(instanceURL(base, i), accept: HTTP.dicom)
    }

    // MARK: stored through one, found through the other

    func testWhatOneReplicaStoresTheOtherFindsAtOnce() async throws {
        let cluster = try await ReplicaCluster.start()
        self.cluster = cluster
        let a = cluster.url(cluster.replicas[0]), b = cluster.url(cluster.replicas[1])
        let sent = try (1...3).map(instance)

        let stored = try await HTTP.stow(a, sent)
        XCTAssertEqual(stored.status, 200, stored.text)
        XCTAssertEqual(stored.referencedSOPs, Set((1...3).map(sop)))

        // QIDO-RS (PS3.18 §10.6) through B, no delay.
        let listed = try await HTTP.get(b + "/dicomweb/studies/\(study)/instances")
        XCTAssertEqual(listed.status, 200, listed.text)
        XCTAssertEqual(Set(listed.sopInstanceUIDs), Set((1...3).map(sop)))
        // WADO-RS instance (PS3.18 §10.4) through B: bit-identical to what A received.
        for i in 1...3 {
            let r = try await retrieve(b, i)
            XCTAssertEqual(r.status, 200)
            XCTAssertEqual(try r.parts().first?.body, sent[i - 1], "instance \(i) through B, bit-identical")
        }
        // Frames (PS3.18 §10.4.1.1.2) through B: the stored native pixel data.
        let pixels = try XCTUnwrap(try DICOMFile.read(bytes: sent[0]).dataSet[.pixelData]?.valueBytes)
        let frame = try await HTTP.get(instanceURL(b, 1) + "/frames/1", accept: HTTP.octets)
        XCTAssertEqual(frame.status, 200, frame.text)
        XCTAssertEqual(try frame.parts().first?.body, Array(pixels))

        // Series metadata (PS3.18 §10.4.1.1.3) read through B, then changed through A: B's answer
        // must follow (no document B cached may go stale).
        let before = try await HTTP.get(b + "/dicomweb/studies/\(study)/series/\(series)/metadata")
        XCTAssertEqual(Set(before.sopInstanceUIDs), Set((1...3).map(sop)))
        let fourth = try await HTTP.stow(a, [try instance(4)])
        XCTAssertEqual(fourth.status, 200, fourth.text)
        let after = try await HTTP.get(b + "/dicomweb/studies/\(study)/series/\(series)/metadata")
        XCTAssertEqual(Set(after.sopInstanceUIDs), Set((1...4).map(sop)), "B's series metadata after A's STOW")

        // A DELETE through B is seen through A at once (A read the metadata first, so a cache of A's would show).
        let primed = try await HTTP.get(a + "/dicomweb/studies/\(study)/series/\(series)/metadata")
        XCTAssertEqual(Set(primed.sopInstanceUIDs), Set((1...4).map(sop)))
        let deleted = try await HTTP.send(.DELETE, instanceURL(b, 2))
        XCTAssertEqual(deleted.status, 200, deleted.text)
        let gone = try await retrieve(a, 2)
        XCTAssertEqual(gone.status, 404, "the instance B deleted, through A")
        let remaining = try await HTTP.get(a + "/dicomweb/studies/\(study)/series/\(series)/metadata")
        XCTAssertEqual(Set(remaining.sopInstanceUIDs), Set([1, 3, 4].map(sop)), "A's series metadata after B's DELETE")
        let counted = try await HTTP.get(a + "/dicomweb/studies/\(study)/instances")
        XCTAssertEqual(Set(counted.sopInstanceUIDs), Set([1, 3, 4].map(sop)))
    }

    // MARK: failover

    /// One STOW-RS request's fate, with its times relative to the start of the run.
    struct Attempt: Sendable {
        let instances: [Int]
        let start: Double, end: Double
        let status: Int?          // nil: no HTTP answer (connection reset)
        let acknowledged: Set<String>
    }

    /// 4 gateways STOW one study of 60 instances through nginx, 2 instances a request, while
    /// replica A is SIGKILLed after a third of them are acknowledged. Every acknowledged instance is
    /// then retrievable bit-identical through the survivor, everything listed has its blob, and a
    /// retry of what was not acknowledged completes the study exactly.
    func testGatewaysStoringThroughTheBalancerSurviveAReplicaKilledMidway() async throws {
        let cluster = try await ReplicaCluster.start()
        self.cluster = cluster
        let (pidA, b) = (cluster.replicas[0].pid, cluster.url(cluster.replicas[1]))
        let total = 60, perRequest = 2, gateways = 4
        let sent = try (0..<total).map(instance)
        let requests = stride(from: 0, to: total, by: perRequest).map { Array($0..<min($0 + perRequest, total)) }
        let acknowledgedSoFar = NIOLockedValueBox(0)
        let killedAt = NIOLockedValueBox<(time: Double, acknowledged: Int)?>(nil)
        let clock = ContinuousClock(), t0 = clock.now
        let seconds: @Sendable () -> Double = { let d = t0.duration(to: clock.now).components; return Double(d.seconds) + Double(d.attoseconds) * 1e-18 }
        let balancer = cluster.balancer

        let attempts = try await withThrowingTaskGroup(of: [Attempt].self) { group in
            for g in 0..<gateways {
                let mine = requests.enumerated().filter { $0.offset % gateways == g }.map(\.element)
                group.addTask {
                    var log: [Attempt] = []
                    for batch in mine {
                        let start = seconds()
                        let answer = try? await HTTP.stow(balancer, batch.map { sent[$0] }, timeout: .seconds(30))
                        let acknowledged = answer?.status == 200 ? answer!.referencedSOPs : []
                        log.append(Attempt(instances: batch, start: start, end: seconds(), status: answer?.status, acknowledged: acknowledged))
                        let n = acknowledgedSoFar.withLockedValue { $0 += acknowledged.count; return $0 }
                        if n >= total / 3, killedAt.withLockedValue({ $0 == nil }) {
                            killedAt.withLockedValue { $0 = (seconds(), n) }
                            kill(pidA, SIGKILL)
                        }
                    }
                    return log
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        let (killTime, acknowledgedAtKill) = try XCTUnwrap(killedAt.withLockedValue { $0 }, "replica A was never killed")
        let acknowledged = attempts.reduce(into: Set<String>()) { $0.formUnion($1.acknowledged) }
        let failed = attempts.filter { $0.status != 200 }
        let afterKill = attempts.filter { $0.start >= killTime }
        let takeover = afterKill.filter { $0.status == 200 }.map(\.end).min().map { $0 - killTime }
        print("""
            ReplicaTests failover STOW: \(attempts.count) requests of \(perRequest) instances by \(gateways) gateways in \(String(format: "%.2f", seconds())) s; \
            A killed at \(String(format: "%.3f", killTime)) s after \(acknowledgedAtKill) of \(total) acknowledged; \
            \(failed.count) requests failed (statuses \(failed.map { $0.status.map(String.init) ?? "none" })); \
            first acknowledged STOW started after the kill ended \(takeover.map { String(format: "%.3f", $0) } ?? "-") s after it; \
            slowest request started after it \(String(format: "%.3f", afterKill.map { $0.end - $0.start }.max() ?? 0)) s
            """)
        XCTAssertTrue(attempts.contains { $0.start > killTime && $0.status == 200 }, "nothing stored after the kill:\n\(cluster.accessLog)")

        // Nothing half-stored: whatever the index lists (acknowledged, or committed by A just before
        // it died) is retrievable bit-identical; everything acknowledged is listed.
        let listed = try await HTTP.get(b + "/dicomweb/studies/\(study)/instances?limit=1000")
        XCTAssertEqual(listed.status, 200, listed.text)
        let listedSet = Set(listed.sopInstanceUIDs)
        XCTAssertTrue(acknowledged.isSubset(of: listedSet), "acknowledged but not listed: \(acknowledged.subtracting(listedSet))")
        for i in 0..<total where listedSet.contains(sop(i)) {
            let r = try await retrieve(b, i)
            XCTAssertEqual(r.status, 200, "listed instance \(i) without its blob? \(r.text)")
            XCTAssertEqual(try r.parts().first?.body, sent[i], "instance \(i) through the survivor, bit-identical")
        }

        // The gateways' retry of what was not acknowledged completes (a committed duplicate is acknowledged again).
        let missing = (0..<total).filter { !acknowledged.contains(sop($0)) }
        XCTAssertEqual(Set(missing.map(sop)), Set(failed.flatMap(\.instances).map(sop)), "a 200 acknowledges every instance of its request")
        if !missing.isEmpty {
            let retried = try await HTTP.stow(cluster.balancer, missing.map { sent[$0] })
            XCTAssertEqual(retried.status, 200, retried.text)
            XCTAssertEqual(retried.referencedSOPs, Set(missing.map(sop)))
        }
        let complete = try await HTTP.get(cluster.balancer + "/dicomweb/studies/\(study)/instances?limit=1000")
        XCTAssertEqual(complete.sopInstanceUIDs.count, total, "each instance listed once")
        XCTAssertEqual(Set(complete.sopInstanceUIDs), Set((0..<total).map(sop)))
        for i in missing {
            let r = try await retrieve(b, i)
            XCTAssertEqual(try r.parts().first?.body, sent[i], "retried instance \(i), bit-identical")
        }
    }

    /// A viewer (4 concurrent readers) fetches frames through nginx while replica A is SIGKILLed:
    /// every GET that gets an answer gets 200 with the right frame, nginx resending to B the
    /// idempotent GETs that A dropped before answering (proxy_next_upstream error). A GET whose
    /// response A had begun cannot be resent by nginx (its status line is already out): the viewer
    /// sees the body cut short (a transport error, never wrong bytes) and retries it.
    func testViewerFetchingFramesThroughTheBalancerSeesNoErrorWhenAReplicaDies() async throws {
        let cluster = try await ReplicaCluster.start()
        self.cluster = cluster
        let a = cluster.replicas[0], pidA = a.pid, balancer = cluster.balancer
        let count = 8
        let sent = try (0..<count).map(instance)
        let stored = try await HTTP.stow(balancer, sent)
        XCTAssertEqual(stored.status, 200, stored.text)
        let frames = try sent.map { try XCTUnwrap(try DICOMFile.read(bytes: $0).dataSet[.pixelData]?.valueBytes).map { $0 } }
        let urls = (0..<count).map { instanceURL(balancer, $0) + "/frames/1" }

        let clock = ContinuousClock(), t0 = clock.now
        let killAfter = Duration.milliseconds(800), runFor = Duration.milliseconds(2500)
        let killedAt = NIOLockedValueBox<ContinuousClock.Instant?>(nil)
        let killer = Task {
            try await Task.sleep(for: killAfter)
            killedAt.withLockedValue { $0 = clock.now }
            kill(pidA, SIGKILL)
        }
        // wrong: a status other than 200 or other bytes, never allowed. cut: no whole answer; allowed
        // only for a GET in flight when A died (A had started its response, which nginx cannot resend),
        // and the viewer's one retry must then succeed.
        typealias Tally = (gets: Int, wrong: [String], cut: [String])
        let results = try await withThrowingTaskGroup(of: Tally.self) { group in
            for reader in 0..<4 {
                group.addTask {
                    var tally: Tally = (0, [], [])
                    var i = reader
                    while t0.duration(to: clock.now) < runFor {
                        let n = i % count
                        i += 1
                        tally.gets += 1
                        let start = clock.now
                        do {
                            let r = try await HTTP.get(urls[n], accept: HTTP.octets)
                            if r.status != 200 { tally.wrong.append("frame \(n): \(r.status) \(r.text.prefix(200))") }
                            else if try r.parts().first?.body != frames[n] { tally.wrong.append("frame \(n): other bytes") }
                        } catch {
                            let inFlight = killedAt.withLockedValue { $0.map { start <= $0 } ?? false }
                            guard inFlight else { tally.wrong.append("frame \(n): \(error), not in flight at the kill"); continue }
                            tally.cut.append("frame \(n): \(error)")
                            let again = try? await HTTP.get(urls[n], accept: HTTP.octets)
                            if again?.status != 200 || (try? again?.parts().first?.body) != frames[n] { tally.wrong.append("frame \(n): the retry failed") }
                        }
                    }
                    return tally
                }
            }
            return try await group.reduce(into: (gets: 0, wrong: [String](), cut: [String]())) { $0.gets += $1.gets; $0.wrong += $1.wrong; $0.cut += $1.cut }
        }
        try await killer.value
        let log = cluster.accessLog
        let resent = log.split(separator: "\n").filter { $0.contains("upstream_status=") && $0.contains(", ") }.count
        print("""
            ReplicaTests failover frames: \(results.gets) GETs by 4 readers in 2.5 s, A killed at 0.8 s; \(results.wrong.count) wrong; \
            nginx resent \(resent) to the survivor; \(results.cut.count) cut off mid-response by the kill (retried by the viewer): \(results.cut)
            """)
        a.process.waitUntilExit()
        XCTAssertEqual(a.process.terminationReason, .uncaughtSignal, "A was killed")
        XCTAssertGreaterThan(results.gets, 20)
        XCTAssertLessThanOrEqual(results.cut.count, 4, "at most one GET per reader in flight at the kill")
        XCTAssertEqual(results.wrong, [], "nginx's log:\n\(log.suffix(4000))")
    }

    // MARK: readiness

    /// GET /ready of a replica that cannot reach PostgreSQL is 503 (issue 13 §3: a load balancer or
    /// an orchestrator sends it no traffic) while /health (liveness) stays 200, and it is ready again
    /// once PostgreSQL is back. The network is cut by killing a TCP forwarder between them.
    func testReadyIsNot200WhileTheReplicasPostgreSQLIsUnreachable() async throws {
        let cluster = try await ReplicaCluster.start(replicas: 0)
        self.cluster = cluster
        var url = try XCTUnwrap(URLComponents(string: cluster.database))
        let forwarder = try TCPForwarder(to: try XCTUnwrap(url.port))
        defer { forwarder.stop() }
        url.port = forwarder.port
        let replica = try cluster.addReplica(index: try XCTUnwrap(url.string))
        let base = cluster.url(replica)
        let ready = try await HTTP.get(base + "/ready", accept: "application/json")
        XCTAssertEqual(ready.status, 200, ready.text)

        forwarder.stop()
        let clock = ContinuousClock(), cut = clock.now
        var unready: Answer?
        while cut.duration(to: clock.now) < .seconds(15) {
            if let r = try? await HTTP.send(.GET, base + "/ready", timeout: .seconds(5)), r.status != 200 { unready = r; break }
            try await Task.sleep(for: .milliseconds(200))
        }
        let noticed = cut.duration(to: clock.now)
        let answer = try XCTUnwrap(unready, "/ready stayed 200 for 15 s without PostgreSQL")
        XCTAssertEqual(answer.status, 503, answer.text)
        XCTAssertTrue(answer.text.contains("unavailable"), answer.text)
        let health = try await HTTP.get(base + "/health", accept: "application/json")
        XCTAssertEqual(health.status, 200, "liveness does not depend on PostgreSQL")

        try forwarder.start()
        let back = clock.now
        var readyAgain = false
        while back.duration(to: clock.now) < .seconds(30) {
            if let r = try? await HTTP.send(.GET, base + "/ready", timeout: .seconds(5)), r.status == 200 { readyAgain = true; break }
            try await Task.sleep(for: .milliseconds(200))
        }
        print("ReplicaTests readiness: /ready not 200 \(noticed) after PostgreSQL was cut; 200 again \(back.duration(to: clock.now)) after it was back")
        XCTAssertTrue(readyAgain, "/ready did not come back within 30 s of PostgreSQL:\n\(replica.stderr.suffix(2000))")
    }

    /// A replica starts serving without waiting for the orphan sweep of the shared bucket; the sweep
    /// follows in the background, removes an unreferenced object older than the grace, and keeps
    /// every referenced one (Docs/store.md, "Reservations").
    func testAReplicaSweepsTheBucketInTheBackgroundOnceItServes() async throws {
        let cluster = try await ReplicaCluster.start(replicas: 1)
        self.cluster = cluster
        let a = cluster.url(cluster.replicas[0])
        let stored = try await HTTP.stow(a, [try instance(0)])
        XCTAssertEqual(stored.status, 200, stored.text)
        let s3 = try TestBackends.s3Client()
        let orphan = "blobs/ab/" + String(repeating: "cd", count: 31)
        try await s3.putObject(bucket: cluster.bucket, key: orphan, body: ByteBuffer(bytes: [1, 2, 3]))
        let before = try await s3.listAllObjects(bucket: cluster.bucket, prefix: "blobs/").map(\.key)
        XCTAssertEqual(before.count, 2, "the stored instance's blob and the orphan: \(before)")

        let b = try cluster.addReplica(["--orphan-grace", "0", "--sweep-interval", "0"])
        let clock = ContinuousClock(), started = clock.now
        var gone = false
        while started.duration(to: clock.now) < .seconds(20) {
            if try await s3.headObject(bucket: cluster.bucket, key: orphan) == nil { gone = true; break }
            try await Task.sleep(for: .milliseconds(200))
        }
        XCTAssertTrue(gone, "the orphan is still there 20 s after replica B started:\n\(b.stderr.suffix(2000))")
        let after = try await s3.listAllObjects(bucket: cluster.bucket, prefix: "blobs/").map(\.key)
        XCTAssertEqual(after, before.filter { $0 != orphan }, "the referenced blob stays")
        let r = try await retrieve(cluster.url(b), 0)
        XCTAssertEqual(try r.parts().first?.body, try instance(0), "still retrievable bit-identical through B")
    }
}
