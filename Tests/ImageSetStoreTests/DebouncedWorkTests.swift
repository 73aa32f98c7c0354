import Foundation
@testable import ImageSetStore
import Synchronization
import XCTest

/// The series metadata refresh waits for a series to stop receiving (DebouncedWork.swift): a
/// rebuild per half second of a growing series made an upload quadratic in the series' size.
final class DebouncedWorkTests: XCTestCase {
    let t0 = ContinuousClock.now

    func testABurstIsDueOnlyOnceItHasBeenQuiet() {
        var burst = Burst(quiet: .milliseconds(500), longest: .seconds(5))
        XCTAssertNil(burst.due, "nothing requested")
        // A request every 100 ms for 2 s (a series receiving 10 instances a second): never due meanwhile.
        for i in 0...20 {
            let now = t0 + .milliseconds(100 * i)
            burst.request(at: now)
            XCTAssertGreaterThan(burst.due!, now + .milliseconds(99), "due while the burst goes on, at request \(i)")
        }
        XCTAssertEqual(burst.due, t0 + .milliseconds(2500), "half a second after the last request")
        burst.reset()
        XCTAssertNil(burst.due)
    }

    func testABurstThatNeverPausesIsDueAfterTheLongestWait() {
        var burst = Burst(quiet: .milliseconds(500), longest: .seconds(5))
        for i in 0...100 { burst.request(at: t0 + .milliseconds(100 * i)) }
        XCTAssertEqual(burst.due, t0 + .seconds(5), "a document stays pending at most `longest` under a steady load")
        burst.reset()
        burst.request(at: t0 + .seconds(11))
        XCTAssertEqual(burst.due, t0 + .milliseconds(11_500), "the next burst starts from its own first request")
    }

    func testTheWorkRunsOnceAfterABurst() async throws {
        let runs = Atomic<Int>(0)
        let work = DebouncedWork(quiet: 0.2, longest: 30, executor: BlockingExecutor(label: "debounce-test"))
        for _ in 0..<5 {
            work.schedule { runs.add(1, ordering: .relaxed) }
            try await Task.sleep(for: .milliseconds(20))
        }
        for _ in 0..<100 where runs.load(ordering: .relaxed) == 0 { try await Task.sleep(for: .milliseconds(50)) }
        try await Task.sleep(for: .milliseconds(300))
        XCTAssertEqual(runs.load(ordering: .relaxed), 1, "the burst's requests coalesce into one run")
        work.schedule { runs.add(1, ordering: .relaxed) }
        for _ in 0..<100 where runs.load(ordering: .relaxed) == 1 { try await Task.sleep(for: .milliseconds(50)) }
        XCTAssertEqual(runs.load(ordering: .relaxed), 2, "a request after the run starts another")
    }

    /// A request made while the work runs waits for the run to end: the next run never overlaps it
    /// (two rebuilds of the same series at once under a load that never pauses).
    func testARequestDuringARunStartsTheNextRunAfterIt() async throws {
        let runs = Atomic<Int>(0), running = Atomic<Int>(0), overlapped = Atomic<Int>(0)
        let work = DebouncedWork(quiet: 0.05, longest: 30, executor: BlockingExecutor(label: "debounce-test"))
        @Sendable func slow() async {
            if running.add(1, ordering: .relaxed).newValue > 1 { overlapped.add(1, ordering: .relaxed) }
            try? await Task.sleep(for: .milliseconds(400))
            running.subtract(1, ordering: .relaxed)
            runs.add(1, ordering: .relaxed)
        }
        work.schedule { await slow() }
        for _ in 0..<100 where running.load(ordering: .relaxed) == 0 { try await Task.sleep(for: .milliseconds(10)) }
        XCTAssertEqual(running.load(ordering: .relaxed), 1, "the first run is under way")
        work.schedule { await slow() }
        try await Task.sleep(for: .milliseconds(150))
        XCTAssertEqual(runs.load(ordering: .relaxed), 0, "the second waits for the first")
        for _ in 0..<200 where runs.load(ordering: .relaxed) < 2 { try await Task.sleep(for: .milliseconds(20)) }
        XCTAssertEqual(runs.load(ordering: .relaxed), 2, "and runs after it")
        XCTAssertEqual(overlapped.load(ordering: .relaxed), 0, "never beside it")
    }
}
