import CompressNIO
import Foundation
import Hummingbird
import ImageSetStore
import NIOCore

extension DICOMwebService {
    /// The image-set API (after AWS HealthImaging): list, inspect, versions, hierarchy metadata, frames.
    func addImageSetRoutes(to group: RouterGroup<BasicRequestContext>) {
        group.get("") { request, _ in
            var filter = ImageSetFilter()
            let q = request.uri.queryParameters
            filter.patientID = q["patientID"].map(String.init)
            filter.studyInstanceUID = q["studyInstanceUID"].map(String.init)
            filter.seriesInstanceUID = q["seriesInstanceUID"].map(String.init)
            filter.accessionNumber = q["accessionNumber"].map(String.init)
            if let p = q["isPrimary"] { filter.isPrimary = p == "true" }
            if let l = q["limit"] {
                guard let n = Int(l), (1...1000).contains(n) else { throw DICOMwebError(.badRequest, "limit is 1...1000") }
                filter.limit = n
            }
            if let c = q["cursor"] {
                guard let n = Int(c), n >= 0 else { throw DICOMwebError(.badRequest, "cursor is not one this server issued") }
                filter.offset = n
            }
            let sets = try self.store.index.imageSets(filter)
            var body: [String: AnyEncodable] = ["imageSets": AnyEncodable(sets)]
            if sets.count == filter.limit { body["nextCursor"] = AnyEncodable(String(filter.offset + filter.limit)) }
            return try Self.json(body)
        }
        group.get(":id") { _, context in
            let id = try context.parameters.require("id")
            guard let set = try self.store.index.imageSet(id) else { throw DICOMwebError(.notFound, "no image set \(id)") }
            return try Self.json(set)
        }
        group.get(":id/versions") { _, context in
            let id = try context.parameters.require("id")
            guard try self.store.index.imageSet(id) != nil else { throw DICOMwebError(.notFound, "no image set \(id)") }
            return try Self.json(["versions": try self.store.index.versions(of: id)])
        }
        group.get(":id/metadata") { request, context in
            let id = try context.parameters.require("id")
            guard let set = try self.store.index.imageSet(id) else { throw DICOMwebError(.notFound, "no image set \(id)") }
            var version: Int? = nil
            if let v = request.uri.queryParameters["version"] {
                guard let n = Int(v), try self.store.index.versions(of: id).contains(where: { $0.version == n }) else {
                    throw DICOMwebError(.notFound, "image set \(id) has no version \(v)")
                }
                version = n
            }
            let doc = try self.hierarchy(set, version: version)
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
            guard let instance = try self.store.index.instances(of: id, version: nil).first(where: { $0.id == row }),
                  let frame = try self.store.index.frames(of: row).first(where: { $0.number == number }), instance.framesInPlace else {
                throw DICOMwebError(.notFound, "no frame \(frameID) in image set \(id)")
            }
            let bytes = try frame.ranges.flatMap { try self.store.blobs.read(instance.framesBlob, range: $0) }
            let type = FrameMediaType.forTransferSyntax(instance.framesTransferSyntaxUID)
            return Response(status: .ok, headers: [.contentType: "\(type); transfer-syntax=\(instance.framesTransferSyntaxUID)"],
                            body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
    }

    /// patient → study → series → instances → frames, with sizes and the blob checksums (SHA-256).
    func hierarchy(_ set: ImageSetSummary, version: Int?) throws -> [String: Any] {
        let instances = try store.index.instances(of: set.id, version: version ?? set.version)
        var series: [String: [[String: Any]]] = [:]
        for i in instances {
            let frames = try store.index.frames(of: i.id).map { f -> [String: Any] in
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
