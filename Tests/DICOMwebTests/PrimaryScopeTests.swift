import DICOMCore
@testable import DICOMweb
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import TestSupport
import XCTest
import StoreTestSupport

/// Patient safety: an instance whose patient/study attributes conflict with its study's primary image
/// set is kept in a non-primary set (Docs/store.md, as AWS HealthImaging does), and no DICOMweb
/// response about the study may contain it unless the request names that image set (`imageSetId`).
/// Otherwise a viewer shows one patient's image inside another patient's study.
final class PrimaryScopeTests: DICOMwebTestCase {
    static let otherSeries = "1.2.826.0.1.3680043.9.7433.2.0"  // sorts before the primary series
    static let thirdSeries = "1.2.826.0.1.3680043.9.7433.2.9"
    static let primarySOPs = ["1.2.3.65.1", "1.2.3.65.2"]
    static let conflictSOPs = ["1.2.3.66.1", "1.2.3.66.2", "1.2.3.66.3"]
    /// What must never appear in a response about the primary study.
    static let markers = conflictSOPs + ["OTHER-PID", "ROE^RICHARD", "19990101", otherSeries, thirdSeries]

    struct Reply {
        var status: HTTPResponse.Status
        var headers: HTTPFields
        var body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }
        func json() throws -> Any { try JSONSerialization.jsonObject(with: Data(body)) }
    }

    func get(_ client: any TestClientProtocol, _ uri: String, accept: String? = nil, method: HTTPRequest.Method = .get) async throws -> Reply {
        var headers: HTTPFields = [:]
        if let accept { headers[.accept] = accept }
        return try await client.execute(uri: uri, method: method, headers: headers) { r in
            Reply(status: r.status, headers: r.headers, body: Array(r.body.readableBytesView))
        }
    }

    func expect(_ client: any TestClientProtocol, _ uri: String, _ status: HTTPResponse.Status, accept: String? = nil,
                method: HTTPRequest.Method = .get, file: StaticString = #filePath, line: UInt = #line) async throws {
        let r = try await get(client, uri, accept: accept, method: method)
        XCTAssertEqual(r.status, status, "\(method) \(uri): \(r.text.prefix(200))", file: file, line: line)
    }

    func jsonArray(_ client: any TestClientProtocol, _ uri: String) async throws -> [[String: Any]] {
        let r = try await get(client, uri)
        XCTAssertEqual(r.status, .ok, uri)
        return try XCTUnwrap(try r.json() as? [[String: Any]], uri)
    }

    /// Two primary instances; then, in one STOW request, one instance with another Patient ID in the
    /// primary's own series, one with another Patient's Name in a series of its own, one with another
    /// Study Date. Returns the non-primary image set id of each conflicting instance, from the STOW response.
    func storeStudyWithConflicts(_ client: any TestClientProtocol) async throws -> [String] {
        let primary = try Self.primarySOPs.enumerated().map { n, sop in
            try Self.instance(sop: sop, extra: [Self.text(0x0020_0013, .IS, "\(n + 1)")])
        }
        let (first, _) = try await stow(client, primary)
        XCTAssertEqual(first, .ok)
        let conflicting = [
            try Self.instance(sop: Self.conflictSOPs[0], extra: [Self.text(0x0010_0020, .LO, "OTHER-PID")]),
            // A window that renders this one differently, so a thumbnail shows whose image it is.
            try Self.instance(sop: Self.conflictSOPs[1], series: Self.otherSeries, patientName: "ROE^RICHARD",
                              extra: [Self.text(0x0028_1050, .DS, "3000"), Self.text(0x0028_1051, .DS, "10")]),
            try Self.instance(sop: Self.conflictSOPs[2], series: Self.thirdSeries, studyDate: "19990101"),
        ]
        let response = try await client.execute(
            uri: "/dicomweb/studies", method: .post,
            headers: [.contentType: "multipart/related; type=\"application/dicom\"; boundary=XyZ-boundary"],
            body: Self.multipart(conflicting)) { r in
            Reply(status: r.status, headers: r.headers, body: Array(r.body.readableBytesView))
        }
        // PS3.18 §10.5.3, Table 10.5.3-1: stored with warnings is 202; Annex I: Warning Reason in the item.
        XCTAssertEqual(response.status, .accepted)
        let warnings = response.headers[values: HTTPField.Name("Warning")!]
        XCTAssertEqual(warnings.count, 3, "one Warning per conflicting instance")
        XCTAssertTrue(warnings.allSatisfy { $0.hasPrefix("299 tessera \"") }, "\(warnings)")
        XCTAssertTrue(warnings.contains { $0.contains("1.2.3.66.1") && $0.contains("PatientID") }, "\(warnings)")
        XCTAssertTrue(warnings.contains { $0.contains("1.2.3.66.2") && $0.contains("PatientName") }, "\(warnings)")
        XCTAssertTrue(warnings.contains { $0.contains("1.2.3.66.3") && $0.contains("StudyDate") }, "\(warnings)")
        XCTAssertFalse(warnings.joined().contains("OTHER-PID"), "values are patient data and stay out of headers")
        let body = try XCTUnwrap(try response.json() as? [String: Any])
        let items = try XCTUnwrap((body["00081199"] as? [String: Any])?["Value"] as? [[String: Any]])
        var ids: [String] = []
        for (n, item) in items.enumerated() {
            XCTAssertEqual((item["00081196"] as? [String: Any])?["Value"] as? [Int], [DICOMwebService.nonPrimaryWarningReason])
            let url = try XCTUnwrap(((item["00081190"] as? [String: Any])?["Value"] as? [String])?.first)
            XCTAssertTrue(url.contains("/instances/\(Self.conflictSOPs[n])?imageSetId="), url)
            ids.append(String(try XCTUnwrap(url.split(separator: "=").last)))
        }
        XCTAssertEqual(Set(ids).count, 3, "three different conflicts, three non-primary sets")
        return ids
    }

    func assertClean(_ reply: Reply, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(reply.status, .ok, "\(what): \(reply.text.prefix(200))", file: file, line: line)
        let text = String(decoding: reply.body, as: UTF8.self)
        for m in Self.markers { XCTAssertFalse(text.contains(m), "\(what) contains \(m)", file: file, line: line) }
    }

    func testNoDICOMwebResponseAboutTheStudyContainsAConflictingInstance() async throws {
        try await withApp { client in
            _ = try await self.storeStudyWithConflicts(client)
            let study = "/dicomweb/studies/\(Self.study)"
            let series = "\(study)/series/\(Self.series)"
            let anyTS = "multipart/related; type=\"application/dicom\"; transfer-syntax=*"

            // QIDO-RS (PS3.18 §10.6) at every level, with every attribute.
            for uri in ["/dicomweb/studies?includefield=all", "/dicomweb/series?includefield=all", "/dicomweb/instances?includefield=all",
                        "\(study)/series?includefield=all", "\(study)/instances?includefield=all", "\(series)/instances?includefield=all",
                        "/dicomweb/studies?StudyInstanceUID=\(Self.study)&includefield=all"] {
                let r = try await self.get(client, uri)
                self.assertClean(r, uri)
                XCTAssertFalse((try r.json() as? [Any] ?? []).isEmpty, uri)
            }
            let studies = try await self.jsonArray(client, "/dicomweb/studies")
            XCTAssertEqual(studies.count, 1)
            XCTAssertEqual((studies[0]["00201208"] as? [String: Any])?["Value"] as? [Int], [2], "NumberOfStudyRelatedInstances")
            XCTAssertEqual((studies[0]["00201206"] as? [String: Any])?["Value"] as? [Int], [1], "NumberOfStudyRelatedSeries")
            let instances = try await self.jsonArray(client, "\(study)/instances")
            XCTAssertEqual(instances.count, 2)
            // Searching by the other patient's values finds nothing: the study is not theirs.
            for q in ["PatientID=OTHER-PID", "PatientName=ROE*", "StudyDate=19990101", "PatientID=OTHER-PID&StudyInstanceUID=\(Self.study)"] {
                for level in ["studies", "series", "instances"] {
                    let r = try await self.get(client, "/dicomweb/\(level)?\(q)")
                    XCTAssertEqual(r.status, .ok)
                    XCTAssertEqual(r.text, "[]", "\(level)?\(q)")
                }
            }

            // WADO-RS retrieval and metadata (PS3.18 §10.4) at study and series level.
            for uri in [study, series] {
                let r = try await self.get(client, uri, accept: anyTS)
                self.assertClean(r, uri)
                XCTAssertEqual(try Self.parts(ByteBuffer(bytes: r.body), contentType: r.headers[.contentType] ?? "").count, 2, uri)
                let m = try await self.get(client, uri + "/metadata")
                self.assertClean(m, uri + "/metadata")
                XCTAssertEqual((try m.json() as? [Any])?.count, 2, uri + "/metadata")
                // The same as Native DICOM Model XML (PS3.18 Table 10.4.4-1) and rendered (§10.4.1.1.3).
                for (suffix, accept) in [("/metadata", "multipart/related; type=\"application/dicom+xml\""),
                                         ("/rendered", "multipart/related; type=\"image/png\"")] {
                    let r = try await self.get(client, uri + suffix, accept: accept)
                    self.assertClean(r, uri + suffix + " " + accept)
                    XCTAssertEqual(try Self.parts(ByteBuffer(bytes: r.body), contentType: r.headers[.contentType] ?? "").count, 2, uri + suffix)
                }
            }
            // The conflicting instances do not exist as far as the study is concerned.
            let hidden = ["\(series)/instances/\(Self.conflictSOPs[0])", "\(study)/series/\(Self.otherSeries)/instances/\(Self.conflictSOPs[1])",
                          "\(study)/series/\(Self.thirdSeries)/instances/\(Self.conflictSOPs[2])"]
            for uri in hidden {
                for suffix in ["", "/metadata", "/frames/1", "/rendered", "/thumbnail", "/frames/1/rendered", "/bulkdata/7FE00010"] {
                    let r = try await self.get(client, uri + suffix, accept: suffix.isEmpty ? anyTS : nil)
                    XCTAssertEqual(r.status, .notFound, uri + suffix)
                }
            }
            for uri in ["\(study)/series/\(Self.otherSeries)", "\(study)/series/\(Self.thirdSeries)"] {
                for suffix in ["", "/metadata", "/thumbnail"] {
                    try await self.expect(client, uri + suffix, .notFound, accept: suffix.isEmpty ? anyTS : nil)
                }
            }
            // The study's thumbnail is the primary study's own image (a conflicting series sorts first).
            let studyThumb = try await self.get(client, "\(study)/thumbnail", accept: "image/png")
            let ownThumb = try await self.get(client, "\(series)/instances/\(Self.primarySOPs[1])/thumbnail", accept: "image/png")
            XCTAssertEqual(studyThumb.status, .ok)
            XCTAssertEqual(studyThumb.body, ownThumb.body)
            // DELETE (PS3.18 §10.7) of a conflicting instance through the study is a 404 and removes nothing.
            try await self.expect(client, hidden[0], .notFound, method: .delete)
            await XCTAssertEqualAsync(try await self.store.index.imageSets(.init()).map(\.instanceCount).reduce(0, +), 5)
        }
    }

    func testImageSetIdReachesANonPrimarySetOnEveryRoute() async throws {
        try await withApp { client in
            let ids = try await self.storeStudyWithConflicts(client)
            let study = "/dicomweb/studies/\(Self.study)"
            let sop = "\(study)/series/\(Self.series)/instances/\(Self.conflictSOPs[0])"
            let q = "imageSetId=\(ids[0])"

            let found = try await self.jsonArray(client, "/dicomweb/studies?\(q)")
            XCTAssertEqual(found.count, 1)
            XCTAssertEqual((found.first?["00100020"] as? [String: Any])?["Value"] as? [String], ["OTHER-PID"], "shown with its own Patient ID")
            XCTAssertEqual((found.first?["00201208"] as? [String: Any])?["Value"] as? [Int], [1])
            let byPID = try await self.jsonArray(client, "/dicomweb/studies?PatientID=OTHER-PID&\(q)")
            XCTAssertEqual(byPID.count, 1)
            let listed = try await self.jsonArray(client, "\(study)/instances?\(q)")
            XCTAssertEqual(listed.count, 1)
            let url = try XCTUnwrap(((listed.first?["00081190"] as? [String: Any])?["Value"] as? [String])?.first)
            XCTAssertTrue(url.hasSuffix("/instances/\(Self.conflictSOPs[0])?\(q)"), url)

            let retrieved = try await self.get(client, "\(sop)?\(q)", accept: "multipart/related; type=\"application/dicom\"; transfer-syntax=*")
            XCTAssertEqual(retrieved.status, .ok)
            let parts = try Self.parts(ByteBuffer(bytes: retrieved.body), contentType: retrieved.headers[.contentType] ?? "")
            XCTAssertEqual(parts.map(\.body), [try Self.instance(sop: Self.conflictSOPs[0], extra: [Self.text(0x0010_0020, .LO, "OTHER-PID")])])
            for suffix in ["/frames/1", "/rendered", "/thumbnail", "/frames/1/rendered"] {
                try await self.expect(client, "\(sop)\(suffix)?\(q)", .ok)
            }
            try await self.expect(client, "\(study)/thumbnail?imageSetId=\(ids[1])", .ok)
            // Metadata links (bulk data URIs) stay in the image set and resolve.
            let metadata = try await self.get(client, "\(study)/metadata?\(q)")
            XCTAssertEqual(metadata.status, .ok)
            let items = try XCTUnwrap(try metadata.json() as? [[String: Any]])
            XCTAssertEqual(items.count, 1)
            let bulk = try XCTUnwrap((items[0]["7FE00010"] as? [String: Any])?["BulkDataURI"] as? String)
            XCTAssertTrue(bulk.hasSuffix("/bulkdata/7FE00010?\(q)"), bulk)
            let xml = try await self.get(client, "\(study)/metadata?\(q)", accept: "multipart/related; type=\"application/dicom+xml\"")
            XCTAssertEqual(xml.status, .ok)
            XCTAssertTrue(xml.text.contains("/bulkdata/7FE00010?\(q)"), "XML bulk data links stay in the image set")
            XCTAssertTrue(xml.text.contains("OTHER-PID"))
            let rendered = try await self.get(client, "\(study)/rendered?\(q)", accept: "multipart/related; type=\"image/png\"")
            XCTAssertEqual(rendered.status, .ok)
            XCTAssertEqual(try Self.parts(ByteBuffer(bytes: rendered.body), contentType: rendered.headers[.contentType] ?? "").count, 1)
            let path = String(bulk[try XCTUnwrap(bulk.range(of: "/dicomweb")).lowerBound...])
            try await self.expect(client, path, .ok)
            // The image set must be of this study; a malformed id is a 400.
            try await self.expect(client, "/dicomweb/studies/1.2.3.4/metadata?\(q)", .notFound)
            for bad in ["xyz", "../../etc", String(repeating: "a", count: 33)] {
                try await self.expect(client, "\(study)/metadata?imageSetId=\(bad)", .badRequest)
                try await self.expect(client, "/dicomweb/studies?imageSetId=\(bad)", .badRequest)
            }
            // DELETE in the named set removes that instance only; DELETE of the study removes the primary's only.
            try await self.expect(client, "\(sop)?\(q)", .ok, method: .delete)
            try await self.expect(client, "\(sop)?\(q)", .notFound, accept: "multipart/related; type=\"application/dicom\"; transfer-syntax=*")
            let remaining = try await self.jsonArray(client, "\(study)/instances")
            XCTAssertEqual(remaining.count, 2)
            try await self.expect(client, study, .ok, method: .delete)
            try await self.expect(client, "\(study)/instances", .ok)
            let afterDelete = try await self.get(client, "\(study)/instances")
            XCTAssertEqual(afterDelete.text, "[]")
            let kept = try await self.jsonArray(client, "\(study)/instances?imageSetId=\(ids[2])")
            XCTAssertEqual(kept.count, 1, "the conflicting set keeps its instance")
        }
    }

    /// A study deleted (or emptied by replacements) and sent again with corrected patient data is the
    /// study again: its primary set held nothing, so the arriving set becomes primary, and the old
    /// one keeps its versions as a non-primary set whose conflicts name the corrected attributes.
    func testAStudyResentWithCorrectedPatientDataAfterDeleteIsPrimary() async throws {
        try await withApp { client in
            let study = "/dicomweb/studies/\(Self.study)"
            let (first, _) = try await self.stow(client, [try Self.instance(sop: "1.2.3.67.1", extra: [Self.text(0x0010_0020, .LO, "WRONG-PID")])])
            XCTAssertEqual(first, .ok)
            try await self.expect(client, study, .ok, method: .delete)
            let corrected = try await self.get(client, "/dicomweb/studies?PatientID=RIGHT-PID")
            XCTAssertEqual(corrected.text, "[]")
            let (second, body) = try await self.stow(client, [try Self.instance(sop: "1.2.3.67.1", extra: [Self.text(0x0010_0020, .LO, "RIGHT-PID")])])
            XCTAssertEqual(second, .ok, "no warning: nothing current conflicts")
            XCTAssertFalse("\(body)".contains("imageSetId"), "\(body)")
            let found = try await self.jsonArray(client, "/dicomweb/studies?PatientID=RIGHT-PID")
            XCTAssertEqual(found.count, 1)
            let wrong = try await self.get(client, "/dicomweb/studies?PatientID=WRONG-PID")
            XCTAssertEqual(wrong.text, "[]")
            let sets = try await self.store.index.imageSets(.init())
            XCTAssertEqual(sets.filter(\.isPrimary).map(\.attributes.patientID), ["RIGHT-PID"])
            let old = try XCTUnwrap(sets.first { !$0.isPrimary })
            XCTAssertEqual(old.state, "DELETED")
            XCTAssertEqual(old.conflicts.map(\.keyword), ["PatientID"])
            XCTAssertEqual(old.conflicts.first?.imageSetValue, "RIGHT-PID", "against the new primary")
            await XCTAssertEqualAsync(try await self.store.index.versions(of: old.id).count, 2, "the old set's versions stay readable")
        }
    }
}
