import Foundation
import HTTPTypes
import Hummingbird
import ImageSetStore
import NIOCore
import ServiceLifecycle
import Synchronization

/// The change feed (Docs/events.md, Docs/api.md): pages of events, the head, and a Server-Sent
/// Events stream. Admin only (RoutePolicy); reads are audited (`changefeed-read`).
extension DICOMwebService {
    /// Events per page when `limit` is not given, and the most a page (or one SSE write) holds.
    static let changeFeedDefaultLimit = 100
    static let changeFeedMaximumLimit = 1000

    func addChangeFeedRoutes(to router: Router<TesseraRequestContext>) {
        router.get("changefeed") { request, context in
            let q = request.uri.queryParameters
            let after = try Self.feedCursor(q["after"].map(String.init), "after") ?? 0
            var limit = Self.changeFeedDefaultLimit
            if let l = q["limit"] {
                guard let n = Int(l), (1...Self.changeFeedMaximumLimit).contains(n) else {
                    throw DICOMwebError(.badRequest, "limit is 1...\(Self.changeFeedMaximumLimit) events")
                }
                limit = n
            }
            let events = try await self.feedPage(after: after, limit: limit)
            for e in events { context.notes.touched(study: e.studyInstanceUID, series: e.seriesInstanceUID, instance: e.sopInstanceUID, patient: e.patientID) }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(data: ChangeEvent.json(events))))
        }
        router.get("changefeed/latest") { _, _ in
            let latest = try await self.store.latestChangeSequence()
            let oldest = try await self.store.oldestChangeSequence()
            return Response(status: .ok, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: JSONOutput.serialize(["sequence": Int(latest), "oldestSequence": Int(oldest)])))
        }
        router.get("changefeed/stream") { request, _ in
            // An EventSource reconnecting sends the last id it received (WHATWG HTML §9.2.4); it wins over `after`.
            let resumed = try Self.feedCursor(request.headers[HTTPField.Name("Last-Event-ID")!], "Last-Event-ID")
            let after = try resumed ?? Self.feedCursor(request.uri.queryParameters["after"].map(String.init), "after") ?? 0
            // A cursor already pruned is refused before the stream starts, with a status a client can act on.
            _ = try await self.feedPage(after: after, limit: 1)
            return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-store",
                                                   HTTPField.Name("X-Accel-Buffering")!: "no"],
                            body: self.changeStream(after: after))
        }
    }

    /// A page of events; a pruned range is 410 Gone naming the oldest sequence held.
    func feedPage(after: Int64, limit: Int) async throws -> [ChangeEvent] {
        let events: [ChangeEvent]
        do {
            events = try await store.changes(after: after, limit: limit)
        } catch let e as ChangeFeedPrunedError {
            throw DICOMwebError(.gone, e.description)
        }
        // A cursor beyond the head is not "nothing new": the index was restored to an earlier point
        // (the numbers after its head will name other changes), or the cursor is another feed's.
        if events.isEmpty, after > 0 {
            let latest = try await store.latestChangeSequence()
            if after > latest {
                throw DICOMwebError(.conflict, "after=\(after) is beyond the feed's latest sequence \(latest): the index was restored "
                                    + "to an earlier point or the cursor is another feed's; reconcile from the index, then resume with after=\(latest)")
            }
        }
        return events
    }

    static func feedCursor(_ text: String?, _ name: String) throws -> Int64? {
        guard let text else { return nil }
        guard let n = Int64(text.trimmingCharacters(in: .whitespaces)), n >= 0 else {
            throw DICOMwebError(.badRequest, "\(name) is an event's sequence number (0 or more), not \(text.prefix(40))")
        }
        return n
    }

    /// Replays from `after`, then follows: each round reads what follows the last event sent, so the
    /// hand-over from replay to live is the same read as every other (sequence numbers have no gaps
    /// in commit order, so nothing is skipped and nothing sent twice). While nothing happens, a
    /// comment every `changeFeedHeartbeat` seconds keeps proxies from closing the connection.
    func changeStream(after: Int64) -> ResponseBody {
        let store = self.store
        let heartbeat = Duration.milliseconds(Int64(configuration.changeFeedHeartbeat * 1000))
        return ResponseBody { writer in
            var cursor = after
            try await writer.write(ByteBuffer(string: "retry: 2000\n: tessera change feed after \(after)\n\n"))
            // A stream never ends by itself: on SIGTERM (a graceful shutdown) it ends, or the server would wait for it forever.
            let stopping = StopFlag()
            try await withGracefulShutdownHandler {
                try await self.follow(&writer, cursor: &cursor, heartbeat: heartbeat) { stopping.value.load(ordering: .relaxed) }
            } onGracefulShutdown: {
                stopping.value.store(true, ordering: .relaxed)
                store.wakeChangeWaiters()
            }
            try await writer.finish(nil)
        }
    }

    /// The stream's rounds until the client goes, the task is cancelled or `stopping` says so.
    func follow(_ writer: inout any ResponseBodyWriter, cursor: inout Int64, heartbeat: Duration, stopping: () -> Bool) async throws {
        while !Task.isCancelled && !stopping() {
            let events: [ChangeEvent]
            do {
                events = try await store.changes(after: cursor, limit: Self.changeFeedMaximumLimit)
            } catch let e as ChangeFeedPrunedError {
                // Retention overtook a slow reader: say so in the stream, then end it.
                try await writer.write(ByteBuffer(string: "event: error\ndata: \(String(buffer: JSONOutput.serialize(["error": e.description])))\n\n"))
                break
            }
            if let last = events.last {
                var buffer = ByteBuffer()
                for e in events {
                    buffer.writeString("id: \(e.sequence)\nevent: \(e.type.rawValue)\ndata: ")
                    buffer.writeData(e.json)
                    buffer.writeString("\n\n")
                }
                try await writer.write(buffer)
                cursor = last.sequence
                if events.count == Self.changeFeedMaximumLimit { continue }
            }
            if try await store.waitForChanges(after: cursor, timeout: heartbeat) <= cursor && !stopping() {
                try await writer.write(ByteBuffer(string: ": heartbeat\n\n"))
            }
        }
    }
}

final class StopFlag: Sendable {
    let value = Atomic<Bool>(false)
}
