import DICOMCore
import Hummingbird
import ImageSetStore
import NIOConcurrencyHelpers

extension DICOMwebService {
    /// The current instance a frame request addresses and its frames' byte ranges, as `instances`
    /// answers (400 for a malformed UID, 404 when absent, the instance noted for the audit record),
    /// from the store's frame location cache while the index has not changed (Docs/store.md).
    func frameLocation(_ request: Request, study: String, series: String?, sop: String) async throws -> (InstanceRecord, [FrameRecord]) {
        try Self.requireValidUIDs(study, series, sop)
        let scope = try Self.scope(request)
        let measured = try await store.frameLocation(study: study, series: series, sop: sop, scope: scope) { operation, call in
            try await index(operation, call)
        }
        guard let found = measured else {
            if case .imageSet(let id) = scope { throw DICOMwebError(.notFound, "no such instance in image set \(id)") }
            throw DICOMwebError(.notFound, "no such instance")
        }
        RequestNotes.current?.touched([found.instance])  // for the request's audit record
        return (found.instance, found.frames)
    }
}

/// `negotiateFrameSyntax` answers, by Accept header and stored syntax: a viewer sends the same
/// Accept with every frame request, and parsing it was a tenth of a stored frame's cost. Only
/// answers are kept (a 406 is worked out again); the map is bounded (cleared when full), since
/// Accept is the client's to choose.
final class FrameNegotiationCache: Sendable {
    private struct Key: Hashable {
        let accept: String?
        let storedSyntax: String
    }
    private let answers = NIOLockedValueBox([Key: (String, String)]())
    static let capacity = 256

    func negotiate(_ accept: String?, storedSyntax: String) throws -> (String, String) {
        let key = Key(accept: accept, storedSyntax: storedSyntax)
        if let hit = answers.withLockedValue({ $0[key] }) { return hit }
        let storedType = FrameMediaType.forTransferSyntax(storedSyntax)
        let isNative = TransferSyntax(uid: storedSyntax).map { !$0.isEncapsulated } ?? false
        let answer = try DICOMwebService.negotiateFrameSyntax(accept, storedType: storedType, storedSyntax: storedSyntax, isNative: isNative)
        answers.withLockedValue { map in
            if map.count >= Self.capacity { map.removeAll() }
            map[key] = answer
        }
        return answer
    }
}
