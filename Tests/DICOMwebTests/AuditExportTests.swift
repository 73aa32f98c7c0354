@testable import DICOMweb
import Foundation
import ImageSetStore
import Logging
import TestSupport
import XCTest
import StoreTestSupport

/// DICOM audit messages (PS3.15 Annex A.5, IHE ATNA) and their delivery to syslog (RFC 5424).
final class AuditExportTests: DICOMwebTestCase, @unchecked Sendable {
    static let viewer = Principal(name: "ohif-user", roles: [.viewer], kind: .token)

    /// One record of each kind of message Tessera sends, with awkward text in it.
    func oneOfEach() async throws -> [AuditRecord] {
        var s = AuditSubjects()
        s.add(study: "1.2.3.4", series: "1.2.3.4.5", instance: "1.2.3.4.5.6", patient: "PAT<&>\"1\"")
        let actions: [(AuditAction, Principal?, Bool, Int?)] = [
            (.search, Self.viewer, true, 200), (.retrieve, Self.viewer, true, 200), (.metadata, Self.viewer, false, 404),
            (.store, Principal(name: "gw-1", roles: [.gateway], kind: .apiKey), true, 200), (.delete, nil, false, 500),
            (.authenticationFailed, nil, false, 401), (.keyCreate, Principal(name: "root", roles: [.admin], kind: .local), true, nil),
            (.recordsDropped, nil, false, nil), (.auditRead, Self.viewer, true, 200),
        ]
        try await store.recordAudit(actions.map { a, p, ok, status in
            AuditEvent(action: a, principal: p, clientAddress: "192.0.2.7", requestID: "req-1", subjects: s, success: ok, status: status,
                       detail: a == .keyCreate ? "key 'gw-2' (gateway) created" : nil)
        })
        return try await store.auditRecords(AuditFilter())
    }

    func validate(_ xml: String) async throws -> (Int32, String) {
        let file = folder + "/message-\(UUID().uuidString).xml"
        try xml.write(toFile: file, atomically: true, encoding: .utf8)
        let schema = Corpus.packageRoot.appendingPathComponent("Tools/schemas/dicom-audit-message.rng").path
        let run = try Corpus.runCapturing(try Corpus.tool("xmllint"), ["--noout", "--relaxng", schema, file])
        return (run.status, String(decoding: run.err, as: UTF8.self))
    }

    // PS3.15 §A.5.1: every message validates against the audit message schema (its RELAX NG,
    // written out in Tools/schemas/dicom-audit-message.rng), awkward characters escaped.
    func testMessagesValidateAgainstTheAuditMessageSchema() async throws {
        for r in try await oneOfEach() {
            let xml = r.dicomAuditMessage(sourceID: "tessera-test")
            let (status, err) = try await validate(xml)
            await XCTAssertEqualAsync(status, 0, "\(r.action): \(err)\n\(xml)")
        }
        // The validator does refuse what the schema does not allow: an outcome of 3 (§A.5.1: 0, 4, 8, 12).
        let bad = try await oneOfEach()[0].dicomAuditMessage(sourceID: "t").replacingOccurrences(of: "EventOutcomeIndicator=\"0\"", with: "EventOutcomeIndicator=\"3\"")
        let refused = try await validate(bad).0
        XCTAssertNotEqual(refused, 0)
    }

    // PS3.15 §A.5.3 names the events by codes of PS3.16's DCM scheme; pydicom's code dictionary
    // (from PS3.16) is the oracle for each code and meaning used.
    func testEventCodesAreTheStandardsOwn() async throws {
        let records = try await oneOfEach()
        var used: [String: String] = [:]
        for r in records {
            let e = r.dicomEvent
            used[e.id.code] = e.id.meaning
            if let t = e.type { used[t.code] = t.meaning }
            if let role = e.requestorRole { used[role.code] = role.meaning }
        }
        let script = """
            import sys
            from pydicom.sr.codedict import codes
            names = ["Query", "BeginTransferringDICOMInstances", "DICOMInstancesAccessed", "DICOMInstancesTransferred",
                     "UserAuthentication", "Login", "SecurityAlert", "SecurityConfiguration", "AuditRecordingStopped",
                     "AuditLogUsed", "SourceRoleID", "DestinationRoleID"]
            for n in names:
                c = getattr(codes.DCM, n)
                print(c.value + "\\t" + c.meaning)
            """
        let out = try Corpus.run(Corpus.python, ["-c", script])
        var oracle: [String: String] = [:]
        for line in String(decoding: out, as: UTF8.self).split(separator: "\n") {
            let f = line.split(separator: "\t")
            oracle[String(f[0])] = String(f[1])
        }
        XCTAssertEqual(used, oracle, "codes: 110112 Query, 110102/110103/110104 transfers and access, 110114 + 110122 login, 110113 alerts, 110101 audit log used")
        // §A.5.3.14: a failed login is User Authentication / Login with a failure outcome, by "unauthenticated".
        let failed = try XCTUnwrap(records.first { $0.action == "authentication-failed" }).dicomAuditMessage(sourceID: "t")
        XCTAssertTrue(failed.contains(#"EventOutcomeIndicator="4""#))
        XCTAssertTrue(failed.contains(#"UserID="unauthenticated""#))
        XCTAssertTrue(failed.contains(#"NetworkAccessPointID="192.0.2.7" NetworkAccessPointTypeCode="2""#))
        // Patient participant: RFC 3881 Patient Number, type Person, role Patient (§A.5.3).
        XCTAssertTrue(failed.contains(#"ParticipantObjectID="PAT&lt;&amp;&gt;&quot;1&quot;" ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="1""#))
    }

    /// rsyslog from Debian, run unprivileged on loopback high ports with its own configuration,
    /// receives each record once, as RFC 5424 with MSGID IHE+RFC-3881, over UDP and over TCP.
    func testSyslogReceiverGetsEveryRecord() async throws {
        let rsyslogd = (try? Corpus.tool("rsyslogd")) ?? "/usr/sbin/rsyslogd"
        guard FileManager.default.isExecutableFile(atPath: rsyslogd) else { throw XCTSkip("rsyslog is not installed (Tools/setup installs it)") }
        let dir = folder + "/rsyslog"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let udp = Int.random(in: 20000..<30000), tcp = udp + 1
        try """
            global(workDirectory="\(dir)" maxMessageSize="64k")
            module(load="imudp")
            input(type="imudp" port="\(udp)" address="127.0.0.1")
            module(load="imtcp")
            input(type="imtcp" port="\(tcp)" address="127.0.0.1")
            template(name="raw" type="string" string="%pri% %msgid% %app-name% %msg%\\n")
            *.* action(type="omfile" file="\(dir)/out.log" template="raw")
            """.write(toFile: dir + "/rsyslog.conf", atomically: true, encoding: .utf8)
        let daemon = Process()
        daemon.executableURL = URL(fileURLWithPath: rsyslogd)
        daemon.arguments = ["-n", "-f", dir + "/rsyslog.conf", "-i", dir + "/rsyslog.pid"]
        daemon.standardOutput = FileHandle.nullDevice
        daemon.standardError = FileHandle.nullDevice
        try daemon.run()
        // Not waitUntilExit: in an async test it spins a run loop that never hears of the exit.
        defer { kill(daemon.processIdentifier, SIGKILL) }
        try await Task.sleep(nanoseconds: 1_000_000_000)  // its inputs are listening

        let logger = Logger(label: "test")
        let forwarders = try await [AuditSyslogForwarder(store: store, host: "127.0.0.1", port: udp, transport: .udp, logger: logger),
                              AuditSyslogForwarder(store: store, host: "127.0.0.1", port: tcp, transport: .tcp, logger: logger)]
        for f in forwarders { f.start(interval: 0.1) }
        let records = try await oneOfEach()
        var lines: [Substring] = []
        for _ in 0..<100 {
            lines = (try? String(contentsOfFile: dir + "/out.log", encoding: .utf8))?.split(separator: "\n") ?? []
            if lines.count >= 2 * records.count { break }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        for f in forwarders { await f.stop() }
        XCTAssertEqual(lines.count, 2 * records.count, "each record once per transport")
        // RFC 5424 §6.2.1: PRI = facility × 8 + severity; authpriv (10), notice (5) or warning (4) for failures.
        XCTAssertEqual(Set(lines.map { $0.split(separator: " ")[0] }), ["85", "84"])
        XCTAssertTrue(lines.allSatisfy { $0.contains(" IHE+RFC-3881 tessera ") && $0.contains("<AuditMessage>") && $0.hasSuffix("</AuditMessage>") })
        XCTAssertEqual(lines.filter { $0.contains(#"csd-code="110114""#) }.count, 2, "the failed login, over each transport")
    }

    func testReceiverAddresses() {
        XCTAssertEqual(AuditSyslogForwarder.parse("tcp://logs.example:6514").map { "\($0.0) \($0.1) \($0.2)" }, "tcp logs.example 6514")
        XCTAssertEqual(AuditSyslogForwarder.parse("[::1]:514").map { "\($0.0) \($0.1) \($0.2)" }, "udp ::1 514")
        XCTAssertNil(AuditSyslogForwarder.parse("logs.example"))
        XCTAssertNil(AuditSyslogForwarder.parse("tls://logs.example:6514"))
        XCTAssertNil(AuditSyslogForwarder.parse("h:70000"))
    }
}
