import DICOMCore
import Foundation
import HTTPTypes
import Hummingbird
import ImageSetStore
import MultipartKit
import NIOCore

extension DICOMwebService {
    func addSTOWRoutes(to group: RouterGroup<BasicRequestContext>) {
        group.post("studies") { request, context in try await self.store(request, context: context, study: nil) }
        group.post("studies/:study") { request, context in
            try await self.store(request, context: context, study: context.parameters.require("study"))
        }
    }

    /// STOW-RS (PS3.18 §10.5): the body streams to staged blobs part by part; nothing of it is held whole.
    func store(_ request: Request, context: BasicRequestContext, study: String?) async throws -> Response {
        if let study, !UID.isValid(study) { throw DICOMwebError(.badRequest, "'\(study.prefix(80))' is not a valid Study Instance UID") }
        guard let contentType = request.headers[.contentType].flatMap({ MediaType(Substring($0)) }) else {
            throw DICOMwebError(.unsupportedMediaType, "Content-Type is missing")
        }
        var candidates: [Datastore.Candidate] = []
        var rejected: [IngestOutcome] = []
        let limit = configuration.maximumRequestSize
        switch contentType.type {
        case "application/dicom":
            let writer = try store.blobs.makeWriter(limit: limit)
            do {
                for try await buffer in request.body {
                    try buffer.withUnsafeReadableBytes { try writer.write($0) }
                }
                candidates.append(store.prepare(try writer.finish(), expectedStudy: study))
            } catch let e as BlobStoreError where e.kind == .tooLarge {
                writer.abort()
                throw DICOMwebError(.contentTooLarge, e.description)
            }
        case "multipart/related":
            guard let boundary = contentType["boundary"], !boundary.isEmpty else {
                throw DICOMwebError(.badRequest, "multipart/related without a boundary")
            }
            if let type = contentType["type"], type.lowercased() != "application/dicom" {
                throw DICOMwebError(.unsupportedMediaType, "multipart/related type \(type) is not application/dicom")
            }
            (candidates, rejected) = try await receiveParts(request.body, boundary: boundary, limit: limit, study: study)
        default:
            throw DICOMwebError(.unsupportedMediaType, "Content-Type \(contentType.type) is neither application/dicom nor multipart/related")
        }
        guard !candidates.isEmpty || !rejected.isEmpty else { throw DICOMwebError(.badRequest, "the request holds no DICOM object") }
        let outcomes = await store.storeGrouped(candidates, reason: "STOW-RS") + rejected
        return try stowResponse(outcomes, request: request, study: study)
    }

    /// Feeds the body to MultipartKit's streaming parser; each part's bytes go straight to a blob writer.
    /// A part is parsed as soon as it is complete, while its bytes are still in memory, so a request
    /// holds at most one part's buffer however many parts it has.
    func receiveParts(_ body: RequestBody, boundary: String, limit: Int, study: String?) async throws -> ([Datastore.Candidate], [IngestOutcome]) {
        final class State {
            var writer: BlobWriter?
            var partType: String?
            /// The part's media type, parsed once from its Content-Type (onBody runs many times per part).
            var isDICOM = true
            var candidates: [Datastore.Candidate] = []
            var rejected: [IngestOutcome] = []
            var error: (any Error)?
            var total = 0
        }
        let state = State()
        let parser = MultipartParser(boundary: boundary)
        parser.onHeader = { name, value in
            if name.lowercased() == "content-type" {
                state.partType = value
                state.isDICOM = (MediaType(Substring(value))?.type ?? "application/dicom") == "application/dicom"
            }
        }
        parser.onBody = { buffer in
            guard state.error == nil, state.isDICOM else { return }
            do {
                if state.writer == nil { state.writer = try self.store.blobs.makeWriter(limit: limit) }
                state.total += buffer.readableBytes
                guard state.total <= limit else {
                    throw BlobStoreError(kind: .tooLarge, description: "the request exceeds the \(limit)-byte limit")
                }
                try buffer.withUnsafeReadableBytes { try state.writer?.write($0) }
            } catch {
                state.error = error
            }
        }
        parser.onPartComplete = {
            defer { state.writer = nil; state.partType = nil; state.isDICOM = true }
            guard state.isDICOM else {
                state.rejected.append(.failure(FailureReason.cannotUnderstand, "part of type \(state.partType ?? "") is not application/dicom"))
                return
            }
            guard state.error == nil else { state.writer?.abort(); return }
            guard let writer = state.writer else {
                state.rejected.append(.failure(FailureReason.cannotUnderstand, "empty part"))
                return
            }
            do { state.candidates.append(self.store.prepare(try writer.finish(), expectedStudy: study)) } catch { state.error = error }
        }
        do {
            for try await buffer in body {
                try parser.execute(buffer)
                if let error = state.error { throw error }
            }
        } catch {
            state.writer?.abort()
            for c in state.candidates { store.discard(c) }
            if let e = error as? BlobStoreError, e.kind == .tooLarge { throw DICOMwebError(.contentTooLarge, e.description) }
            if error is DICOMwebError { throw error }
            throw DICOMwebError(.badRequest, "malformed multipart body: \(error)")
        }
        return (state.candidates, state.rejected)
    }

    /// The STOW-RS response (PS3.18 Table 10.5.3-1): 200 all stored, 202 some, 409 none.
    func stowResponse(_ outcomes: [IngestOutcome], request: Request, study: String?) throws -> Response {
        let root = root(request)
        var referenced: [[String: Any]] = []
        var failed: [[String: Any]] = []
        for o in outcomes {
            var item: [String: Any] = [:]
            if let c = o.sopClassUID { item["00081150"] = ["vr": "UI", "Value": [c]] }
            if let s = o.sopInstanceUID { item["00081155"] = ["vr": "UI", "Value": [s]] }
            if o.status == .failed {
                item["00081197"] = ["vr": "US", "Value": [Int(o.reasonCode ?? FailureReason.processingFailure)]]
                failed.append(item)
            } else {
                if let st = o.studyInstanceUID, let se = o.seriesInstanceUID, let s = o.sopInstanceUID {
                    item["00081190"] = ["vr": "UR", "Value": ["\(root)/studies/\(st)/series/\(se)/instances/\(s)"]]
                }
                referenced.append(item)
            }
        }
        var body: [String: Any] = [:]
        if let st = study ?? outcomes.first(where: { $0.status != .failed })?.studyInstanceUID {
            body["00081190"] = ["vr": "UR", "Value": ["\(root)/studies/\(st)"]]
        }
        if !referenced.isEmpty { body["00081199"] = ["vr": "SQ", "Value": referenced] }
        if !failed.isEmpty { body["00081198"] = ["vr": "SQ", "Value": failed] }
        let status: HTTPResponse.Status = failed.isEmpty ? .ok : (referenced.isEmpty ? .conflict : .accepted)
        let data = JSONOutput.serialize(body)
        var headers: HTTPFields = [.contentType: "application/dicom+json"]
        if let reason = outcomes.first(where: { $0.status == .failed })?.message {
            headers[HTTPField.Name("Warning")!] = "299 tessera \"\(reason.replacingOccurrences(of: "\"", with: "'").prefix(200))\""
        }
        return Response(status: status, headers: headers, body: .init(byteBuffer: data))
    }
}
