import Foundation
import Hummingbird
import ImageSetStore
import NIOCore

extension DICOMwebService {
    /// Webhook subscriptions (Docs/api.md, "Subscriptions"; Docs/events.md, "Webhooks"). Admin only
    /// (the route policy). The secret is shown once, in the answer to the POST that generated it;
    /// no GET returns it.
    func addSubscriptionRoutes(to group: RouterGroup<TesseraRequestContext>) {
        group.post("") { request, _ in
            let body = try await request.body.collect(upTo: 64 << 10)
            let new = try Self.newSubscription(Data(buffer: body), latest: try await self.latestSequence())
            try await self.store.subscriptions.createSubscription(new.subscription)
            var view = try await self.view(new.subscription)
            if new.generated { view["secret"] = new.subscription.secret }
            return Self.jsonObject(view, status: .created)
        }
        group.get("") { _, _ in
            let latest = try await self.latestSequence()
            let all = try await self.store.subscriptions.subscriptions()
            return Self.jsonObject(["subscriptions": all.map { $0.jsonObject(latest: latest) }])
        }
        group.get(":id") { _, context in
            let id = try context.parameters.require("id")
            guard let s = try await self.store.subscriptions.subscription(id: id) else { throw DICOMwebError(.notFound, "no subscription \(id)") }
            return Self.jsonObject(try await self.view(s))
        }
        group.delete(":id") { _, context in
            let id = try context.parameters.require("id")
            guard try await self.store.subscriptions.deleteSubscription(id: id) else { throw DICOMwebError(.notFound, "no subscription \(id)") }
            return Response(status: .noContent)
        }
        // Re-enabling resumes delivery from the cursor; disabling stops it (what is not delivered waits in the feed).
        for (action, state) in [("enable", Subscription.State.active), ("disable", .disabled)] {
            group.post(":id/\(action)") { _, context in
                let id = try context.parameters.require("id")
                guard try await self.store.subscriptions.setSubscriptionState(id: id, state),
                      let s = try await self.store.subscriptions.subscription(id: id) else {
                    throw DICOMwebError(.notFound, "no subscription \(id)")
                }
                return Self.jsonObject(try await self.view(s))
            }
        }
    }

    /// The feed's newest sequence number, for the lag.
    func latestSequence() async throws -> Int64? { try await store.latestChangeSequence() }

    func view(_ s: Subscription) async throws -> [String: Any] { s.jsonObject(latest: try await latestSequence()) }

    /// A POST's JSON: `url` (http or https), optional `eventTypes` (default every type),
    /// `studyInstanceUID`, `patientID`, `secret` (generated when absent) and `after` (the sequence
    /// delivery starts after; default the feed's newest, so only events from now on).
    static func newSubscription(_ body: Data, latest: Int64?) throws -> (subscription: Subscription, generated: Bool) {
        guard let o = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] else {
            throw DICOMwebError(.badRequest, "the body is a JSON object: {\"url\": \"https://…\", \"eventTypes\": [...], \"secret\": \"…\"}")
        }
        let known: Set<String> = ["url", "eventTypes", "studyInstanceUID", "patientID", "secret", "after"]
        if let unknown = o.keys.sorted().first(where: { !known.contains($0) }) {
            throw DICOMwebError(.badRequest, "unknown field \(unknown); the fields are \(known.sorted().joined(separator: ", "))")
        }
        guard let url = o["url"] as? String else { throw DICOMwebError(.badRequest, "url is required: where events are POSTed (http or https)") }
        func text(_ key: String) throws -> String? {
            guard let v = o[key], !(v is NSNull) else { return nil }
            guard let s = v as? String, !s.isEmpty, s.utf8.count <= 256 else { throw DICOMwebError(.badRequest, "\(key) is a non-empty string of at most 256 bytes") }
            return s
        }
        var secret: String?
        if let v = o["secret"], !(v is NSNull) {
            guard let s = v as? String else { throw DICOMwebError(.badRequest, "secret is a string (or omit it to have one generated)") }
            secret = s
        }
        var types: [String] = []
        if let t = o["eventTypes"], !(t is NSNull) {
            guard let list = t as? [String] else { throw DICOMwebError(.badRequest, "eventTypes is an array of event types") }
            types = Array(Set(list)).sorted()
        }
        do {
            try Subscription.validate(url: url, secret: secret, eventTypes: types)
        } catch let e as SubscriptionError {
            throw DICOMwebError(.badRequest, e.description)
        }
        var cursor = latest ?? 0
        if let a = o["after"], !(a is NSNull) {
            guard let n = a as? Int, n >= 0 else { throw DICOMwebError(.badRequest, "after is a sequence number of the feed (0: from its start)") }
            if let latest, n > latest { throw DICOMwebError(.badRequest, "after=\(n) is beyond the feed's latest sequence \(latest)") }
            cursor = Int64(n)
        }
        let s = Subscription(id: Subscription.newID(), url: url, eventTypes: types, studyInstanceUID: try text("studyInstanceUID"),
                             patientID: try text("patientID"), secret: secret ?? Subscription.generateSecret(), created: Date(), cursor: cursor)
        return (s, secret == nil)
    }

    static func jsonObject(_ object: Any, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: JSONOutput.serialize(object)))
    }
}

extension Subscription {
    /// A subscription as GET /subscriptions and `tessera subscriptions show` write it: everything
    /// but the secret; `lag` is the feed's newest sequence less the cursor.
    public func jsonObject(latest: Int64?) -> [String: Any] {
        var o: [String: Any] = [
            "id": id, "url": url, "eventTypes": eventTypes, "state": state.rawValue, "cursor": Int(cursor),
            "consecutiveFailures": consecutiveFailures, "created": AuditRecord.iso8601Text(created),
            "lastError": lastError ?? NSNull(),
            "lastAttempt": lastAttempt.map(AuditRecord.iso8601Text) ?? NSNull(),
            "lastDelivery": lastDelivery.map(AuditRecord.iso8601Text) ?? NSNull(),
        ]
        if let studyInstanceUID { o["studyInstanceUID"] = studyInstanceUID }
        if let patientID { o["patientID"] = patientID }
        if let latest {
            o["latestSequence"] = Int(latest)
            o["lag"] = Int(max(0, latest - cursor))
        }
        return o
    }

    public static func jsonText(_ object: Any) -> String { String(buffer: JSONOutput.serialize(object)) }
}
