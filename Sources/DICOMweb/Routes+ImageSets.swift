import CompressNIO
import Foundation
import Hummingbird
import ImageSetStore
import NIOCore

extension DICOMwebService {
    /// The image-set API (after AWS HealthImaging): list, inspect, versions, hierarchy metadata, frames.
    func addImageSetRoutes(to group: RouterGroup<TesseraRequestContext>) {
        group.get("") { request, context in
            var filter = ImageSetFilter()
            let q = request.uri.queryParameters
            filter.patientID = q["patientID"].map(String.init)
            filter.studyInstanceUID = q["studyInstanceUID"].map(String.init)
            filter.seriesInstanceUID = q["seriesInstanceUID"].map(String.init)
            filter.accessionNumber = q["accessionNumber"].map(String.init)
            if let p = q["isPrimary"] {
                guard p == "true" || p == "false" else { throw DICOMwebError(.badRequest, "isPrimary is true or false") }
                filter.isPrimary = p == "true"
            }
            if let range = q["studyDate"] {
                (filter.studyDateFrom, filter.studyDateTo) = try Self.dateRange(String(range))
            }
            if let t = q["updatedAfter"] { filter.updatedFrom = try Self.timestamp(String(t), "updatedAfter") }
            if let t = q["updatedBefore"] { filter.updatedTo = try Self.timestamp(String(t), "updatedBefore") }
            if let s = q["sort"] {
                guard let sort = ImageSetSort(rawValue: String(s)) else {
                    throw DICOMwebError(.badRequest, "sort is one of \(ImageSetSort.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                filter.sort = sort
            }
            if let l = q["limit"] {
                guard let n = Int(l), (1...1000).contains(n) else { throw DICOMwebError(.badRequest, "limit is 1...1000") }
                filter.limit = n
            }
            if let c = q["cursor"] {
                guard let n = Int(c), n >= 0 else { throw DICOMwebError(.badRequest, "cursor is not one this server issued") }
                filter.offset = n
            }
            let sets = try await self.store.index.imageSets(filter)
            context.notes.touched(sets)
            var body: [String: AnyEncodable] = ["imageSets": AnyEncodable(sets)]
            if sets.count == filter.limit { body["nextCursor"] = AnyEncodable(String(filter.offset + filter.limit)) }
            return try Self.json(body)
        }
        group.get(":id") { _, context in
            let id = try context.parameters.require("id")
            guard let set = try await self.store.index.imageSet(id) else { throw DICOMwebError(.notFound, "no image set \(id)") }
            context.notes.touched([set])
            return try Self.json(set)
        }
        group.get(":id/versions") { _, context in
            let id = try context.parameters.require("id")
            guard try await self.store.index.imageSet(id) != nil else { throw DICOMwebError(.notFound, "no image set \(id)") }
            return try await Self.json(["versions": try self.store.index.versions(of: id)])
        }
        // Pruning: keep the newest `keep` versions (default 1) and free the blobs nothing retained references.
        group.delete(":id/versions") { request, context in
            let id = try context.parameters.require("id")
            guard try await self.store.index.imageSet(id) != nil else { throw DICOMwebError(.notFound, "no image set \(id)") }
            var keep = 1
            if let k = request.uri.queryParameters["keep"] {
                guard let n = Int(k), n >= 1 else { throw DICOMwebError(.badRequest, "keep is a whole number of at least 1") }
                keep = n
            }
            return try await Self.json(try self.pruneAudited(imageSetID: id, keep: keep, context: context))
        }
        group.get(":id/metadata") { request, context in
            let id = try context.parameters.require("id")
            guard let set = try await self.store.index.imageSet(id) else { throw DICOMwebError(.notFound, "no image set \(id)") }
            context.notes.touched([set])
            var version: Int? = nil
            if let v = request.uri.queryParameters["version"] {
                guard let n = Int(v), try await self.store.index.versions(of: id).contains(where: { $0.version == n }) else {
                    throw DICOMwebError(.notFound, "image set \(id) has no version \(v)")
                }
                version = n
            }
            let doc = try await self.hierarchy(set, version: version)
            var buffer = ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: doc, options: [.sortedKeys, .withoutEscapingSlashes]))
            let gz = try buffer.compress(with: .gzip)
            return Response(status: .ok, headers: [.contentType: "application/json", .contentEncoding: "gzip"], body: .init(byteBuffer: gz))
        }
        group.get(":id/frames/:frame") { _, context in
            // Frame ids are "<instance row>.<frame number>", as listed in the metadata document.
            let id = try context.parameters.require("id"), frameID = try context.parameters.require("frame")
            let parts = frameID.split(separator: ".")
            guard parts.count == 2, let row = Int64(parts[0]), let number = Int(parts[1]) else {
                throw DICOMwebError(.badRequest, "frame id '\(frameID.prefix(40))' is not <instance>.<frame>")
            }
            guard let instance = try await self.store.index.currentInstance(rowID: row), instance.imageSetID == id,
                  let frame = try await self.store.index.frames(of: row).first(where: { $0.number == number }), instance.framesInPlace else {
                throw DICOMwebError(.notFound, "no frame \(frameID) in image set \(id)")
            }
            context.notes.touched([instance])
            var bytes = ByteBuffer()
            try await self.store.blobs.read(instance.framesBlob, ranges: frame.ranges, into: &bytes)
            let type = FrameMediaType.forTransferSyntax(instance.framesTransferSyntaxUID)
            return Response(status: .ok, headers: [.contentType: "\(type); transfer-syntax=\(instance.framesTransferSyntaxUID)"],
                            body: .init(byteBuffer: bytes))
        }
    }

    /// patient → study → series → instances → frames, with sizes and the blob checksums (SHA-256).
    func hierarchy(_ set: ImageSetSummary, version: Int?) async throws -> [String: Any] {
        let instances = try await store.index.instances(of: set.id, version: version ?? set.version)
        var series: [String: [[String: Any]]] = [:]
        for i in instances {
            let frames = try await store.index.frames(of: i.id).map { f -> [String: Any] in
                ["id": "\(i.id).\(f.number)", "number": f.number, "length": f.length]
            }
            series[i.seriesInstanceUID, default: []].append([
                "sopInstanceUID": i.sopInstanceUID, "sopClassUID": i.sopClassUID, "transferSyntaxUID": i.transferSyntaxUID,
                "framesTransferSyntaxUID": i.framesTransferSyntaxUID, "size": i.blobSize, "sha256": i.blob.hex, "frames": frames,
                "instanceNumber": i.attributes.instanceNumber as Any,
            ])
        }
        let a = set.attributes
        return [
            "imageSetId": set.id, "version": version ?? set.version, "isPrimary": set.isPrimary,
            "patient": ["patientID": a.patientID, "patientName": a.patientName, "birthDate": a.patientBirthDate, "sex": a.patientSex],
            "study": ["studyInstanceUID": set.studyInstanceUID, "studyDate": a.studyDate, "accessionNumber": a.accessionNumber,
                      "studyID": a.studyID, "description": a.studyDescription,
                      "series": series.keys.sorted().map { ["seriesInstanceUID": $0, "instances": series[$0] ?? []] }],
        ]
    }

    /// A DICOM date range (`YYYYMMDD`, `A-B`, `A-`, `-B`) as inclusive bounds.
    static func dateRange(_ text: String) throws -> (String?, String?) {
        func date(_ s: Substring) throws -> String? {
            if s.isEmpty { return nil }
            guard s.utf8.count == 8, s.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else {
                throw DICOMwebError(.badRequest, "studyDate '\(text.prefix(40))' is not YYYYMMDD or a range of them")
            }
            return String(s)
        }
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        switch parts.count {
        case 1: let d = try date(parts[0]); return (d, d)
        case 2:
            guard !(parts[0].isEmpty && parts[1].isEmpty) else { throw DICOMwebError(.badRequest, "studyDate '-' has no bound") }
            return (try date(parts[0]), try date(parts[1]))
        default: throw DICOMwebError(.badRequest, "studyDate '\(text.prefix(40))' is not YYYYMMDD or a range of them")
        }
    }

    static func timestamp(_ text: String, _ name: String) throws -> Date {
        let plain = ISO8601DateFormatter()
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        guard let d = plain.date(from: text) ?? fractional.date(from: text) else {
            throw DICOMwebError(.badRequest, "\(name) '\(text.prefix(40))' is not an ISO 8601 time such as 2026-01-31T12:00:00Z")
        }
        return d
    }

    static func json(_ value: some Encodable) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }
}

struct AnyEncodable: Encodable {
    let encodeValue: (Encoder) throws -> Void
    init(_ value: some Encodable) { encodeValue = value.encode }
    func encode(to encoder: Encoder) throws { try encodeValue(encoder) }
}
