import Foundation
import Logging

extension ServeCommand {
    /// Background housekeeping while `serve` runs (the orphan sweep, change-feed retention): `work`
    /// at once, then every `interval` seconds (0: only that first time) until the task is cancelled
    /// at shutdown. What a round removed is logged as `done` under `key`; a failed round is logged as
    /// `failed` and the next one still comes.
    static func housekeeping(every interval: Double, done: Logger.Message, key: String, failed: Logger.Message, logger: Logger,
                             _ work: @escaping @Sendable () async throws -> Int) -> Task<Void, Never> {
        Task {
            while !Task.isCancelled {
                do {
                    let removed = try await work()
                    if removed > 0 { logger.info(done, metadata: [key: "\(removed)"]) }
                } catch {
                    logger.warning(failed, metadata: ["error": "\(error)"])
                }
                guard interval > 0 else { break }
                do { try await Task.sleep(nanoseconds: UInt64(interval * 1e9)) } catch { break }  // cancelled: shutting down
            }
        }
    }
}
