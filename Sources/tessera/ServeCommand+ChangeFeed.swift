import ArgumentParser
import Foundation
import ImageSetStore
import Logging

/// The change feed's options (Docs/events.md, Docs/configuration.md).
struct ChangeFeedOptions: ParsableArguments {
    @Option(name: .customLong("changefeed-retention"), help: ArgumentHelp("Days of change-feed events kept; older ones are removed hourly (0: keep everything). Stored in the index.", valueName: "DAYS"))
    var retentionDays: Int?
    @Option(name: .customLong("changefeed-heartbeat"), help: "Seconds between the comments an idle change-feed stream (SSE) sends, so proxies keep it open.")
    var heartbeat = 15.0

    func validate() throws {
        if let retentionDays, retentionDays < 0 { throw ValidationError("--changefeed-retention is 0 (keep everything) or more days") }
        guard heartbeat > 0 && heartbeat <= 3600 else { throw ValidationError("--changefeed-heartbeat is more than 0 and at most 3600 seconds") }
    }

    /// Stores the retention setting when given, and prunes now and every hour while the server runs.
    func start(_ store: Datastore, logger: Logger) async throws -> Task<Void, Never> {
        if let retentionDays { try await store.setChangeFeedRetention(days: retentionDays == 0 ? nil : retentionDays) }
        return ServeCommand.housekeeping(every: 3600, done: "change feed pruned", key: "events", failed: "change feed pruning failed",
                                         logger: logger) { try await store.pruneChangeFeed() }
    }
}
