import DICOMCore
import DICOMParser
import Foundation
import HTTPTypes
import Hummingbird
import ImageSetStore
import NIOCore

/// Study, series and instance metadata as multipart/related; type="application/dicom+xml" (PS3.18
/// Table 10.4.4-1, §8.7.3.5.1): one part per instance, each a PS3.19 Annex A Native DICOM Model
/// document.
///
/// The XML is written from the stored instance, parsed with `DICOMFile.read`, not from the stored
/// DICOM JSON: the JSON has already turned DS and IS into numbers (so "5.000000" would come back as
/// 5) and lost the value bytes of text it could not map, while the instance has every value as
/// written; parsing leaves large values in the mapped file, so a part costs little more than its
/// header. Bulk data above the JSON's threshold gets the same `/bulkdata/{tag path}` URI the JSON
/// metadata gives it.
extension DICOMwebService {
    /// The XML response, once negotiation (`negotiateMetadata`) chose it.
    func metadataXML(_ request: Request, study: String, series: String?, sop: String?) async throws -> Response {
        let found = try await instances(request, study: study, series: series, sop: sop)
        let root = root(request), store = self.store, linkQuery = Self.scopeQuery(try Self.scope(request))
        @Sendable func part(_ k: Int) async throws -> ByteBuffer {
            let i = found[k]
            let instancePath = "\(root)/studies/\(i.studyInstanceUID)/series/\(i.seriesInstanceUID)/instances/\(i.sopInstanceUID)"
            var options = DICOMJSONOptions()
            options.bulkDataURI = { tags, _ in BulkURI.url(instancePath: instancePath, tags) + linkQuery }
            return ByteBuffer(bytes: DICOMXML.encode(try await store.parse(i.blob).dataSet, options: options))
        }
        let writer = MultipartWriter()
        return Response(status: .ok, headers: [.contentType: writer.contentType(type: "application/dicom+xml")],
                        body: try await writer.body(count: found.count, contentType: { _ in "application/dicom+xml" }, part: part))
    }
}
