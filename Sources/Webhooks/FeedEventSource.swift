import Foundation
import ImageSetStore

/// The change feed as deliveries read it: the store's events, each body the feed's own JSON
/// encoding (the bytes GET /changefeed returns for it), so a receiver parses one schema.
public struct FeedEventSource: WebhookEventSource {
    let store: Datastore

    public init(store: Datastore) { self.store = store }

    public func events(after: Int64, limit: Int) async throws -> [WebhookEvent] {
        let changes: [ChangeEvent]
        do {
            changes = try await store.changes(after: after, limit: limit)
        } catch let pruned as ChangeFeedPrunedError {
            throw WebhookEventsGone(pruned.description)
        }
        return changes.map {
            WebhookEvent(sequence: $0.sequence, type: $0.type.rawValue, studyInstanceUID: $0.studyInstanceUID, patientID: $0.patientID,
                         body: Array($0.json))
        }
    }

    public func waitForEvents(after: Int64, timeout: Double) async {
        _ = try? await store.waitForChanges(after: after, timeout: .nanoseconds(Int64(timeout * 1e9)))
    }
}
