import DICOMCore
import Foundation
import HTTPTypes
import Hummingbird
import ImageSetStore
import NIOCore

extension DICOMwebService {
    func addSTOWRoutes(to group: RouterGroup<TesseraRequestContext>) {
        group.post("studies") { request, context in try await self.store(request, context: context, study: nil) }
        group.post("studies/:study") { request, context in
            try await self.store(request, context: context, study: context.parameters.require("study"))
        }
    }

    /// STOW-RS (PS3.18 §10.5): the body streams to staged blobs part by part; nothing of it is held whole.
    func store(_ request: Request, context: TesseraRequestContext, study: String?) async throws -> Response {
        if let study, !UID.isValid(study) { throw DICOMwebError(.badRequest, "'\(study.prefix(80))' is not a valid Study Instance UID") }
        guard let contentType = request.headers[.contentType].flatMap({ MediaType(Substring($0)) }) else {
            throw DICOMwebError(.unsupportedMediaType, "Content-Type is missing")
        }
        var candidates: [Datastore.Candidate] = []
        var rejected: [IngestOutcome] = []
        let limit = configuration.maximumRequestSize
        switch contentType.type {
        case "application/dicom":
            // Out of space: nothing is staged, the instance is reported (PS3.18 Annex I: 0xA700).
            if store.disk?.refresh() == true {
                // Read to the end (the client waits for its answer), but no further than the request cap.
                var total = 0
                for try await buffer in request.body {
                    total += buffer.readableBytes
                    guard total <= limit else { throw DICOMwebError(.contentTooLarge, "the request exceeds the \(limit)-byte limit") }
                }
                rejected.append(Self.diskFull)
                break
            }
            let writer = try store.blobs.makeWriter(limit: limit)
            do {
                for try await buffer in request.body {
                    try buffer.withUnsafeReadableBytes { try writer.write($0) }
                }
                candidates.append(store.prepare(try writer.finish(), expectedStudy: study))
            } catch let e as BlobStoreError where e.kind == .tooLarge {
                writer.abort()
                throw DICOMwebError(.contentTooLarge, e.description)
            } catch let e as BlobStoreError where e.kind == .noSpace {
                writer.abort()
                store.disk?.noteFull()
                rejected.append(Self.diskFull)
            } catch {
                // A body that stops (the client went, the body deadline closed the connection):
                // its staged file goes with it.
                writer.abort()
                throw error
            }
        case "multipart/related":
            guard let boundary = contentType["boundary"], !boundary.isEmpty else {
                throw DICOMwebError(.badRequest, "multipart/related without a boundary")
            }
            guard boundary.utf8.count <= 70 else {
                throw DICOMwebError(.badRequest, "the multipart boundary is longer than 70 characters (RFC 2046 §5.1.1)")
            }
            if let type = contentType["type"], type.lowercased() != "application/dicom" {
                throw DICOMwebError(.unsupportedMediaType, "multipart/related type \(type) is not application/dicom")
            }
            (candidates, rejected) = try await receiveParts(request.body, boundary: boundary, limit: limit, study: study,
                                                            diskFull: store.disk?.refresh() == true)
        default:
            throw DICOMwebError(.unsupportedMediaType, "Content-Type \(contentType.type) is neither application/dicom nor multipart/related")
        }
        guard !candidates.isEmpty || !rejected.isEmpty else { throw DICOMwebError(.badRequest, "the request holds no DICOM object") }
        let outcomes = await storeAudited(candidates, rejected: rejected.count, context: context) + rejected
        metrics?.instances(outcomes)
        await recordForGateway(outcomes, context: context)
        for o in outcomes where o.status != .failed && o.isPrimary == false {
            // Keywords and ids only: the conflicting values are patient data and stay out of logs.
            context.logger.warning("stored in a non-primary image set", metadata: [
                "sop": "\(o.sopInstanceUID ?? "")", "study": "\(o.studyInstanceUID ?? "")", "imageSet": "\(o.imageSetID ?? "")",
                "conflicts": "\(Self.conflictKeywords(o))"])
        }
        return try stowResponse(outcomes, request: request, study: study)
    }

    /// A gateway may read back what its STOW-RS responses referenced, and nothing else
    /// (Docs/security.md): those SOP Instance UIDs are recorded under its name. When recording
    /// fails, the instances stay stored and the gateway cannot read them (closed, not open).
    func recordForGateway(_ outcomes: [IngestOutcome], context: TesseraRequestContext) async {
        guard let principal = context.identity, principal.has(.gateway) else { return }
        let referenced = outcomes.filter { $0.status != .failed }.compactMap(\.sopInstanceUID)
        do {
            try await store.accessKeys.recordStoredInstances(by: principal, sopInstanceUIDs: referenced)
        } catch {
            context.logger.error("cannot record the gateway's stored instances; it will not be able to read them back",
                                 metadata: ["principal": "\(principal.name)", "error": "\(error)"])
        }
    }

    /// Reads the body part by part (`MultipartReader`); each part's bytes go straight to a blob
    /// writer, and a part is parsed as soon as it is complete, while its bytes are still in memory,
    /// so a request holds at most one part's buffer however many parts it has.
    func receiveParts(_ body: RequestBody, boundary: String, limit: Int, study: String?, diskFull: Bool = false) async throws -> ([Datastore.Candidate], [IngestOutcome]) {
        var reader = MultipartReader(boundary: boundary)
        var writer: BlobWriter?
        var partType: String?
        var isDICOM = true
        var candidates: [Datastore.Candidate] = []
        var rejected: [IngestOutcome] = []
        var total = 0
        // Once the disk is full, no part is staged: each is reported 0xA700, the earlier ones are stored.
        var outOfSpace = diskFull
        var partOutOfSpace = false
        func noSpace() {
            writer?.abort()
            writer = nil
            partOutOfSpace = true
            if !outOfSpace { store.disk?.noteFull() }
            outOfSpace = true
        }
        do {
            for try await buffer in body {
                total += buffer.readableBytes
                guard total <= limit else {
                    throw BlobStoreError(kind: .tooLarge, description: "the request exceeds the \(limit)-byte limit")
                }
                try buffer.withUnsafeReadableBytes { raw in
                    try reader.read(raw) { event in
                        switch event {
                        case .headers(let fields):
                            partType = fields.first { $0.name.lowercased() == "content-type" }?.value
                            isDICOM = partType.map { (MediaType(Substring($0))?.type ?? "application/dicom") == "application/dicom" } ?? true
                        case .body(let bytes):
                            guard isDICOM, !partOutOfSpace else { return }
                            if outOfSpace { return noSpace() }
                            do {
                                if writer == nil { writer = try self.store.blobs.makeWriter(limit: limit) }
                                try writer?.write(bytes)
                            } catch let e as BlobStoreError where e.kind == .noSpace { noSpace() }
                        case .partEnd:
                            defer { writer = nil; partType = nil; isDICOM = true; partOutOfSpace = false }
                            guard isDICOM else {
                                rejected.append(.failure(FailureReason.cannotUnderstand, "part of type \(partType ?? "") is not application/dicom"))
                                return
                            }
                            if !partOutOfSpace, let w = writer {
                                do { candidates.append(self.store.prepare(try w.finish(), expectedStudy: study)) } catch let e as BlobStoreError where e.kind == .noSpace { noSpace() }
                            }
                            if partOutOfSpace { return rejected.append(Self.diskFull) }
                            guard writer != nil else {
                                rejected.append(.failure(FailureReason.cannotUnderstand, "empty part"))
                                return
                            }
                        }
                    }
                }
            }
        } catch {
            writer?.abort()
            for c in candidates { store.discard(c) }
            if let e = error as? BlobStoreError, e.kind == .tooLarge { throw DICOMwebError(.contentTooLarge, e.description) }
            if error is DICOMwebError { throw error }
            throw DICOMwebError(.badRequest, "malformed multipart body: \(error)")
        }
        if reader.isInsidePart {
            // The body stopped inside a part: the parts before it stand, this one is reported.
            writer?.abort()
            rejected.append(.failure(FailureReason.cannotUnderstand, "the body ended inside a part, before its closing boundary"))
        }
        return (candidates, rejected)
    }

    /// An instance not stored for want of disk space: Failure Reason 0xA700, Refused: Out of
    /// Resources (PS3.18 Annex I, Table I.2-1; PS3.4 Table B.2-1, the C-STORE status it mirrors).
    static var diskFull: IngestOutcome { .failure(FailureReason.outOfResources, "the server's disk is full; the instance was not stored") }

    /// Warning Reason (0008,1196) of an instance stored in a non-primary image set because its
    /// patient/study attributes conflict with the study's primary set. PS3.18 Annex I.2.1 allows codes
    /// beyond the three it names; none of those (coercion, elements discarded, SOP class mismatch) says this.
    static let nonPrimaryWarningReason = 0xB100

    /// The conflicting attributes' keywords, comma-separated (never their values).
    static func conflictKeywords(_ o: IngestOutcome) -> String {
        o.conflicts.isEmpty ? "patient/study attributes" : o.conflicts.map(\.keyword).joined(separator: ", ")
    }

    /// The STOW-RS response (PS3.18 §10.5.3, Table 10.5.3-1): 200 all stored, 202 some stored with
    /// warnings or failures for others, 409 none.
    func stowResponse(_ outcomes: [IngestOutcome], request: Request, study: String?) throws -> Response {
        let root = root(request)
        var referenced: [[String: Any]] = []
        var failed: [[String: Any]] = []
        var warnings: [String] = []
        for o in outcomes {
            var item: [String: Any] = [:]
            if let c = o.sopClassUID { item["00081150"] = ["vr": "UI", "Value": [c]] }
            if let s = o.sopInstanceUID { item["00081155"] = ["vr": "UI", "Value": [s]] }
            if o.status == .failed {
                item["00081197"] = ["vr": "US", "Value": [Int(o.reasonCode ?? FailureReason.processingFailure)]]
                failed.append(item)
            } else {
                // A non-primary instance is not part of the study as DICOMweb serves it: its URL names its image set.
                let nonPrimary = o.isPrimary == false
                let scope = nonPrimary ? o.imageSetID.map { "?imageSetId=\($0)" } ?? "" : ""
                if let st = o.studyInstanceUID, let se = o.seriesInstanceUID, let s = o.sopInstanceUID {
                    item["00081190"] = ["vr": "UR", "Value": ["\(root)/studies/\(st)/series/\(se)/instances/\(s)\(scope)"]]
                }
                if nonPrimary {
                    item["00081196"] = ["vr": "US", "Value": [Self.nonPrimaryWarningReason]]
                    warnings.append("\(o.sopInstanceUID ?? "an instance") was stored in non-primary image set \(o.imageSetID ?? "") because its \(Self.conflictKeywords(o)) conflict with the study's primary image set")
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
        let status: HTTPResponse.Status = failed.isEmpty && warnings.isEmpty ? .ok : (referenced.isEmpty ? .conflict : .accepted)
        let data = JSONOutput.serialize(body)
        var headers: HTTPFields = [.contentType: "application/dicom+json"]
        if let reason = outcomes.first(where: { $0.status == .failed })?.message {
            headers.append(Self.warning(reason))
        }
        // At most a few: a 1,000-part request must not make a 1,000-line header (the body lists every one).
        for w in warnings.prefix(8) { headers.append(Self.warning(w)) }
        if warnings.count > 8 {
            headers.append(Self.warning("\(warnings.count - 8) more instances were stored in non-primary image sets (WarningReason in the response body)"))
        }
        return Response(status: status, headers: headers, body: .init(byteBuffer: data))
    }

    /// A `Warning: 299` header field (RFC 7234 §5.5) with a quoted, bounded text.
    static func warning(_ text: String) -> HTTPField {
        HTTPField(name: HTTPField.Name("Warning")!, value: "299 tessera \"\(text.replacingOccurrences(of: "\"", with: "'").prefix(300))\"")
    }
}
