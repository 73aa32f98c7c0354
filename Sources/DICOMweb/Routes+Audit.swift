import Foundation
import Hummingbird
import ImageSetStore
import NIOCore

extension DICOMwebService {
    /// GET /audit: the audit trail, oldest first, in pages (Docs/api.md). Admin only (the access
    /// policy's table, Docs/security.md); reading it is itself recorded (action `audit-read`).
    func addAuditRoutes(to router: Router<TesseraRequestContext>) {
        router.get("audit") { request, _ in
            let filter = try Self.auditFilter(request.uri.queryParameters)
            let records = try await self.store.auditRecords(filter)
            var body: [String: Any] = ["records": records.map(\.jsonObject)]
            // The cursor of the next page: records after this sequence.
            if records.count == filter.limit, let last = records.last { body["next"] = String(last.sequence) }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: JSONOutput.serialize(body)))
        }
    }

    static func auditFilter(_ q: Parameters) throws -> AuditFilter {
        var f = AuditFilter()
        f.patientID = q["patientID"].map(String.init)
        f.studyInstanceUID = q["studyInstanceUID"].map(String.init)
        f.identity = q["identity"].map(String.init)
        if let a = q["action"] {
            guard AuditAction(rawValue: String(a)) != nil else {
                throw DICOMwebError(.badRequest, "action is one of \(AuditAction.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            f.action = String(a)
        }
        if let t = q["from"] { f.from = try timestamp(String(t), "from") }
        if let t = q["to"] { f.to = try timestamp(String(t), "to") }
        if let l = q["limit"] {
            guard let n = Int(l), (1...AuditFilter.maximumLimit).contains(n) else {
                throw DICOMwebError(.badRequest, "limit is 1...\(AuditFilter.maximumLimit)")
            }
            f.limit = n
        }
        if let a = q["after"] {
            guard let n = Int64(a), n >= 0 else { throw DICOMwebError(.badRequest, "after is a record's sequence number (0 or more)") }
            f.after = n
        }
        return f
    }
}
