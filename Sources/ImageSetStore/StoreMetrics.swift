/// What the store reports to a metrics system (`tessera serve` fills it with Prometheus, see
/// Sources/DICOMweb/ServerMetrics.swift). A hook for the store's own paths: the server times the
/// index and blob calls it makes itself; the group commit's batch sizes, which only the store
/// sees, it reports here (`Datastore.report(to:)`). Implementations must be cheap and never block:
/// they run on every request.
public protocol StoreMetrics: Sendable {
    /// One call of the index (`operation`: the protocol method's name, e.g. "search") that took `duration`.
    func indexCall(_ operation: String, duration: Duration, failed: Bool)
    /// One call of the blob store ("read", "makeWriter", ...).
    func blobCall(_ operation: String, duration: Duration, failed: Bool)
    /// One group commit of `batch` instances, in one index transaction.
    func groupCommitted(batch: Int, duration: Duration)
}

extension StoreMetrics {
    /// `body`, timed as the index call `operation`.
    public func index<T>(_ operation: String, _ body: () throws -> T) rethrows -> T {
        try timed(body) { indexCall(operation, duration: $0, failed: $1) }
    }

    public func index<T>(_ operation: String, _ body: () async throws -> T) async rethrows -> T {
        try await timed(body) { indexCall(operation, duration: $0, failed: $1) }
    }

    public func blob<T>(_ operation: String, _ body: () throws -> T) rethrows -> T {
        try timed(body) { blobCall(operation, duration: $0, failed: $1) }
    }

    public func blob<T>(_ operation: String, _ body: () async throws -> T) async rethrows -> T {
        try await timed(body) { blobCall(operation, duration: $0, failed: $1) }
    }

    func timed<T>(_ body: () throws -> T, _ record: (Duration, Bool) -> Void) rethrows -> T {
        let start = ContinuousClock.now
        do {
            let result = try body()
            record(ContinuousClock.now - start, false)
            return result
        } catch {
            record(ContinuousClock.now - start, true)
            throw error
        }
    }

    func timed<T>(_ body: () async throws -> T, _ record: (Duration, Bool) -> Void) async rethrows -> T {
        let start = ContinuousClock.now
        do {
            let result = try await body()
            record(ContinuousClock.now - start, false)
            return result
        } catch {
            record(ContinuousClock.now - start, true)
            throw error
        }
    }
}
