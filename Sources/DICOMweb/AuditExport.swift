import DICOMParser
import Foundation
import ImageSetStore

/// Audit records as the outside world reads them: JSON (GET /audit, `tessera audit`) and DICOM
/// audit messages (PS3.15 Annex A.5, the IHE ATNA format: `tessera audit --format dicom`, syslog).
extension AuditRecord {
    public var jsonObject: [String: Any] {
        var o: [String: Any] = [
            "sequence": Int(sequence), "time": Self.iso8601(time), "action": action,
            "outcome": success ? "success" : "failure",
            "studyInstanceUIDs": subjects.studies, "studyCount": subjects.studyCount,
            "seriesInstanceUIDs": subjects.series, "seriesCount": subjects.seriesCount,
            "sopInstanceUIDs": subjects.instances, "instanceCount": subjects.instanceCount,
            "patientIDs": subjects.patients, "patientCount": subjects.patientCount,
            "previousHash": previousHash, "hash": hash,
        ]
        // Nil: the request carried no valid credentials.
        o["identity"] = principalName.map { ["name": $0, "kind": principalKind ?? "", "roles": roles] as [String: Any] } ?? NSNull()
        if let status { o["status"] = status }
        if let clientAddress { o["clientAddress"] = clientAddress }
        if let requestID { o["requestID"] = requestID }
        if let detail { o["detail"] = detail }
        return o
    }

    public static func iso8601Text(_ date: Date) -> String { iso8601(date) }

    static func iso8601(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: date)
    }

    /// A coded value of the DCM scheme (PS3.16 Annex D), as the audit schema writes one.
    struct Code {
        let code: String, meaning: String, scheme: String
        init(_ code: String, _ meaning: String, scheme: String = "DCM") { self.code = code; self.meaning = meaning; self.scheme = scheme }
        func xml(_ name: String) -> String {
            "<\(name) csd-code=\"\(code)\" codeSystemName=\"\(scheme)\" originalText=\"\(AuditRecord.escape(meaning))\"/>"
        }
    }

    /// EventID (PS3.15 §A.5.3), EventActionCode, EventTypeCode, and the requestor's role
    /// (Source when it sends instances to Tessera, Destination when it receives them).
    var dicomEvent: (id: Code, action: String, type: Code?, requestorRole: Code?) {
        let source = Code("110153", "Source Role ID"), destination = Code("110152", "Destination Role ID")
        switch AuditAction(rawValue: action) {
        case .search: return (Code("110112", "Query"), "E", nil, destination)  // §A.5.3.12
        case .retrieve: return (Code("110102", "Begin Transferring DICOM Instances"), "E", nil, destination)  // §A.5.3.3
        case .store: return (Code("110104", "DICOM Instances Transferred"), "C", nil, source)  // §A.5.3.4
        case .delete, .prune: return (Code("110103", "DICOM Instances Accessed"), "D", nil, nil)  // §A.5.3.2
        case .authenticationFailed: return (Code("110114", "User Authentication"), "E", Code("110122", "Login"), nil)  // §A.5.3.14
        case .keyCreate, .keyRevoke, .subscriptionChange:  // §A.5.3.13; a subscription routes patients' events to a URL
            return (Code("110113", "Security Alert"), "E", Code("110129", "Security Configuration"), nil)
        case .recordsDropped: return (Code("110113", "Security Alert"), "E", Code("110133", "Audit Recording Stopped"), nil)
        case .auditRead: return (Code("110101", "Audit Log Used"), "R", nil, nil)  // §A.5.3.1
        default: return (Code("110103", "DICOM Instances Accessed"), "R", nil, destination)  // metadata, frames, rendered, bulk data
        }
    }

    /// One `<AuditMessage>` (PS3.15 §A.5.1): the event, the requestor and Tessera as active
    /// participants, Tessera as the audit source, and the studies and patients as participant objects.
    public func dicomAuditMessage(sourceID: String) -> String {
        let e = dicomEvent
        // §A.5.1 EventOutcomeIndicator: 0 success, 4 minor failure (refused, not found), 8 serious (a server error).
        let outcome = success ? "0" : ((status ?? 0) >= 500 ? "8" : "4")
        var x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<AuditMessage>"
        x += "<EventIdentification EventActionCode=\"\(e.action)\" EventDateTime=\"\(Self.iso8601(time))\" EventOutcomeIndicator=\"\(outcome)\">"
        x += e.id.xml("EventID")
        if let t = e.type { x += t.xml("EventTypeCode") }
        if !success || detail != nil {
            x += "<EventOutcomeDescription>\(Self.escape([status.map { "HTTP \($0)" }, detail].compactMap { $0 }.joined(separator: "; ")))</EventOutcomeDescription>"
        }
        x += "</EventIdentification>"
        // The requestor: a key name or token subject, or "unauthenticated".
        let access = clientAddress.map { " NetworkAccessPointID=\"\(Self.escape($0))\" NetworkAccessPointTypeCode=\"2\"" } ?? ""
        let alternative = requestID.map { " AlternativeUserID=\"\(Self.escape($0))\"" } ?? ""
        x += "<ActiveParticipant UserID=\"\(Self.escape(principalName ?? "unauthenticated"))\"\(alternative) UserIsRequestor=\"true\"\(access)>"
        if let r = e.requestorRole { x += r.xml("RoleIDCode") }
        for role in roles { x += Code(role, role, scheme: "Tessera role").xml("RoleIDCode") }
        x += "</ActiveParticipant>"
        x += "<ActiveParticipant UserID=\"\(Self.escape(sourceID))\" UserIsRequestor=\"false\">\(Code("110150", "Application").xml("RoleIDCode"))</ActiveParticipant>"
        // Audit Source Type Code 4: an application server process (§A.5.1.2.1).
        x += "<AuditSourceIdentification AuditSourceID=\"\(Self.escape(sourceID))\"><AuditSourceTypeCode csd-code=\"4\"/></AuditSourceIdentification>"
        if AuditAction(rawValue: action) == .search {
            // §A.5.3.12: the query object. The trail keeps what the query returned, not its text.
            x += "<ParticipantObjectIdentification ParticipantObjectID=\"1.2.840.10008.5.1.4.1.2.2.1\" ParticipantObjectTypeCode=\"2\" ParticipantObjectTypeCodeRole=\"24\">"
            x += Code("110181", "SOP Class UID").xml("ParticipantObjectIDTypeCode")
            x += "<ParticipantObjectQuery>\(Data("QIDO-RS".utf8).base64EncodedString())</ParticipantObjectQuery></ParticipantObjectIdentification>"
        }
        for study in subjects.studies {
            x += "<ParticipantObjectIdentification ParticipantObjectID=\"\(Self.escape(study))\" ParticipantObjectTypeCode=\"2\" ParticipantObjectTypeCodeRole=\"3\">"
            x += Code("110180", "Study Instance UID").xml("ParticipantObjectIDTypeCode")
            x += "<ParticipantObjectName>\(Self.escape(study))</ParticipantObjectName></ParticipantObjectIdentification>"
        }
        for patient in subjects.patients {
            // Patient Number, RFC 3881 §5.5.4 (the code PS3.15 §A.5.3 uses for patients).
            x += "<ParticipantObjectIdentification ParticipantObjectID=\"\(Self.escape(patient))\" ParticipantObjectTypeCode=\"1\" ParticipantObjectTypeCodeRole=\"1\">"
            x += Code("2", "Patient Number", scheme: "RFC-3881").xml("ParticipantObjectIDTypeCode")
            x += "<ParticipantObjectName>\(Self.escape(patient))</ParticipantObjectName></ParticipantObjectIdentification>"
        }
        return x + "</AuditMessage>"
    }

    static func escape(_ s: String) -> String {
        var w = XMLWriter()
        w.text(s)
        return String(decoding: w.bytes, as: UTF8.self)
    }
}

extension AuditRecord {
    /// The record as one line of JSON (`tessera audit --format json`), as GET /audit writes it.
    public var jsonLine: String { String(buffer: JSONOutput.serialize(jsonObject)) }
}
