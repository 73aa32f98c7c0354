#if canImport(Glibc)
import Glibc
#endif
import Foundation
import ImageSetStore
import Logging

/// Sends each new audit record as a DICOM audit message to a syslog receiver (RFC 5424), the way
/// IHE ATNA transmits them: facility authpriv (10), MSGID `IHE+RFC-3881`, the XML as MSG. Over
/// UDP one datagram per message (RFC 5426); over TCP octet-counted frames (RFC 6587 §3.4.1).
/// It follows the trail from its head at start-up: records committed by any path (a change's
/// transaction, the read buffer) are sent in sequence order; while the receiver is unreachable
/// they wait in the trail and go when it is back. Delivery is best effort, never a request's concern.
public final class AuditSyslogForwarder: @unchecked Sendable {
    public enum Transport: String, Sendable { case udp, tcp }
    let store: Datastore
    let host: String, port: Int, transport: Transport
    let hostname: String
    let logger: Logger
    private var fd: Int32 = -1
    private var sent: Int64
    private var stopped = false
    private let lock = NSLock()
    /// Sends block on the socket: they run on an executor of their own, off Swift's cooperative threads.
    private let executor = BlockingExecutor(label: "tessera.audit-syslog")
    private var task: Task<Void, Never>?

    public init(store: Datastore, host: String, port: Int, transport: Transport, logger: Logger) async throws {
        self.store = store; self.host = host; self.port = port; self.transport = transport; self.logger = logger
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, name.count)
        hostname = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        sent = try await store.auditHeadSequence()
    }

    /// `HOST:PORT`, `udp://HOST:PORT` or `tcp://HOST:PORT` (UDP when no scheme).
    public static func parse(_ text: String) -> (Transport, String, Int)? {
        var rest = Substring(text), transport = Transport.udp
        if let r = rest.range(of: "://") {
            guard let t = Transport(rawValue: String(rest[..<r.lowerBound])) else { return nil }
            transport = t
            rest = rest[r.upperBound...]
        }
        guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        let host = rest[..<colon].trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        return host.isEmpty ? nil : (transport, host, port)
    }

    public func start(interval: Double = 0.5) {
        let task = Task(executorPreference: executor) { await self.loop(interval) }
        lock.withLock { self.task = task }
    }

    public func stop() async {
        lock.withLock { stopped = true }
        await lock.withLock({ task })?.value
        if fd >= 0 { close(fd); fd = -1 }
    }

    private func loop(_ interval: Double) async {
        while !lock.withLock({ stopped }) {
            var f = AuditFilter()
            f.after = sent
            f.limit = 500
            if let records = try? await store.auditRecords(f) {
                for r in records {
                    guard send(frame(r)) else { break }
                    sent = r.sequence
                }
            }
            try? await Task.sleep(nanoseconds: UInt64(interval * 1e9))
        }
    }

    /// RFC 5424 §6: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG`, severity notice (5),
    /// warning (4) for failures; MSG is UTF-8 with its BOM (§6.4).
    func frame(_ r: AuditRecord) -> [UInt8] {
        let pri = 10 * 8 + (r.success ? 5 : 4)
        let header = "<\(pri)>1 \(AuditRecord.iso8601(r.time)) \(hostname.isEmpty ? "-" : hostname) tessera \(getpid()) IHE+RFC-3881 - "
        return Array(header.utf8) + [0xEF, 0xBB, 0xBF] + Array(r.dicomAuditMessage(sourceID: hostname.isEmpty ? "tessera" : hostname).utf8)
    }

    private func send(_ message: [UInt8]) -> Bool {
        if fd < 0 { fd = connectSocket() }
        guard fd >= 0 else { return false }
        let bytes = transport == .tcp ? Array("\(message.count) ".utf8) + message : message
        let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if n == bytes.count { return true }
        logger.warning("audit syslog: cannot send", metadata: ["receiver": "\(host):\(port)", "error": "\(DataFolderError.errnoText())"])
        close(fd)
        fd = -1
        return false
    }

    private func connectSocket() -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = Int32(transport == .tcp ? SOCK_STREAM.rawValue : SOCK_DGRAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else { return -1 }
        defer { freeaddrinfo(list) }
        var a: UnsafeMutablePointer<addrinfo>? = first
        while let ai = a {
            let s = socket(ai.pointee.ai_family, ai.pointee.ai_socktype, ai.pointee.ai_protocol)
            if s >= 0 {
                if connect(s, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 { return s }
                close(s)
            }
            a = ai.pointee.ai_next
        }
        return -1
    }
}
