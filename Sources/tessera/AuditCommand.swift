import ArgumentParser
import DICOMweb
import Foundation
import ImageSetStore

/// `tessera audit`: the audit trail of a data folder, read only (beside a running server).
struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "List, export or verify the audit trail of a data folder.",
        subcommands: [AuditListCommand.self, AuditVerifyCommand.self],
        defaultSubcommand: AuditListCommand.self)
}

struct AuditListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "Print audit records, oldest first (the default subcommand).",
        discussion: """
            --format text (default): one line per record; json: one JSON object per line, as GET /audit; \
            dicom: one DICOM audit message (PS3.15 Annex A.5, IHE ATNA XML) per line.
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable { case text, json, dicom }

    @Option(help: "The data folder (read only: nothing is created or changed).") var data: String
    @Option(name: .customLong("patient-id"), help: "Only records naming this Patient ID.") var patientID: String?
    @Option(name: .customLong("study-uid"), help: "Only records naming this Study Instance UID.") var studyUID: String?
    @Option(help: "Only records of this identity (API key name or token subject).") var identity: String?
    @Option(help: "Only records of this action (search, retrieve, store, delete, …).") var action: String?
    @Option(help: "Only records at or after this time (ISO 8601).") var from: String?
    @Option(help: "Only records at or before this time (ISO 8601).") var to: String?
    @Option(help: "Only records after this sequence number.") var after: Int64 = 0
    @Option(help: "Most records printed.") var limit = 1000
    @Option(help: "text, json or dicom.") var format: Format = .text
    @Option(name: .customLong("source-id"), help: "AuditSourceID of DICOM audit messages (default: this host's name).") var sourceID: String?

    func run() async throws {
        let store = try Diagnostics.open(data, access: .readOnly)
        var f = AuditFilter()
        f.patientID = patientID; f.studyInstanceUID = studyUID; f.identity = identity; f.action = action; f.after = after
        f.from = try from.map { try Self.time($0, "--from") }
        f.to = try to.map { try Self.time($0, "--to") }
        let source = sourceID ?? ProcessInfo.processInfo.hostName
        var remaining = max(limit, 0)
        // In pages, so a long trail is never read into memory at once.
        while remaining > 0 {
            f.limit = min(remaining, AuditFilter.maximumLimit)
            let page = try await store.auditRecords(f)
            for r in page {
                switch format {
                case .json: print(r.jsonLine)
                case .dicom: print(r.dicomAuditMessage(sourceID: source).replacingOccurrences(of: "\n", with: ""))
                case .text: print(Self.line(r))
                }
            }
            remaining -= page.count
            guard page.count == f.limit, let last = page.last else { break }
            f.after = last.sequence
        }
    }

    static func time(_ text: String, _ name: String) throws -> Date {
        let plain = ISO8601DateFormatter(), fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        guard let d = plain.date(from: text) ?? fractional.date(from: text) else {
            throw ValidationError("\(name) '\(text)' is not an ISO 8601 time such as 2026-01-31T12:00:00Z")
        }
        return d
    }

    static func line(_ r: AuditRecord) -> String {
        let who = r.principalName.map { "\($0) (\(r.principalKind ?? "")\(r.roles.isEmpty ? "" : " " + r.roles.joined(separator: ",")))" } ?? "unauthenticated"
        let s = r.subjects
        var parts = ["#\(r.sequence)", AuditRecord.iso8601Text(r.time), r.action, r.success ? "success" : "failure",
                     r.status.map { "\($0)" } ?? "-", who, r.clientAddress ?? "-"]
        if s.patientCount > 0 { parts.append("patients=\(s.patients.joined(separator: ","))\(s.patientCount > s.patients.count ? "(+\(s.patientCount - s.patients.count))" : "")") }
        if s.studyCount > 0 { parts.append("studies=\(s.studyCount)") }
        if s.instanceCount > 0 { parts.append("instances=\(s.instanceCount)") }
        if let d = r.detail { parts.append("\"\(d)\"") }
        return parts.joined(separator: " ")
    }
}

struct AuditVerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check the audit trail's hash chain; exit 1 naming the first record edited, deleted or missing.",
        discussion: """
            Detects an edited record, a deleted or inserted one, and records deleted from the end when the \
            trail's head (kept beside it in the index) was left alone. Whoever can rewrite the whole index can \
            rewrite the head too: keep the printed `head` line elsewhere (or send the trail to syslog) and pass \
            it back with --anchor SEQUENCE:HASH to prove the trail still holds that record.
            """)

    @Option(help: "The data folder (read only).") var data: String
    @Option(help: "SEQUENCE:HASH from an earlier verify's head line: that record must still be in the trail.") var anchor: String?

    func run() async throws {
        let store = try Diagnostics.open(data, access: .readOnly)
        var pinned: (Int64, String)?
        if let anchor {
            let parts = anchor.split(separator: ":")
            guard parts.count == 2, let s = Int64(parts[0]), parts[1].count == 64 else {
                throw ValidationError("--anchor is SEQUENCE:HASH (a sequence number and 64 hex digits)")
            }
            pinned = (s, String(parts[1]).lowercased())
        }
        let v = try await store.verifyAuditTrail(anchor: pinned)
        if let problem = v.problem {
            print("audit trail broken: \(problem)")
            throw ExitCode.failure
        }
        print("checked \(v.records) audit record(s)")
        print("head \(v.headSequence):\(v.headHash)")
        print("ok")
    }
}
