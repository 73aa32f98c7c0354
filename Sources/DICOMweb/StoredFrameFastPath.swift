import AccessControl
import DICOMCore
import Foundation
import HTTPTypes
import Hummingbird
import ImageSetStore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The stored-frame fast path (Docs/architecture.md, "The stored-frame fast path"): a viewer's
/// `GET …/instances/{sop}/frames/{n}` for one frame as stored, answered on the connection's event
/// loop below Hummingbird, the frame's bytes handed to the kernel (sendfile) instead of read into
/// a buffer. Hummingbird's per-request machinery (its async channel, the request task, the
/// middleware chain) cost about 220 µs of CPU per request here (`/health`, Docs/performance.md),
/// four times what nginx spends serving the whole frame.
///
/// It answers only what it can answer exactly as the router would, from memory and without
/// waiting: the caller already authenticated (the API keys' current copy, a token verified
/// earlier, or authentication off), a role the route policy lets read frames, valid UIDs, the
/// instance's frame ranges in the store's frame location cache under the index generation that
/// still stands (so never a deleted or replaced instance), the frame in place in a local blob,
/// and an Accept the stored syntax satisfies. Anything else — a first request, a refusal, an
/// error, a transcoding, a query string, HEAD, `Connection: close` — is `nil` here and goes up to
/// the router, which answers it with every middleware. What the middlewares do for the requests
/// answered here is done here with their own functions: the audit record, the request log line,
/// the metrics, the CORS headers, the client address behind a trusted proxy.
final class StoredFrameFastPath: Sendable {
    /// The route as the router records it (`context.endpointPath`): the policy's and the metrics' key.
    static let route = "/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames/{frames}"

    let store: Datastore
    let authenticator: RequestAuthenticator
    let negotiation = FrameNegotiationCache()
    let cors: AllowedOriginsMiddleware<TesseraRequestContext>
    let trusted: [CIDR]
    let metrics: ServerMetrics.FastPathMetrics?
    let logger: Logger
    let access: RoutePolicy.Access?
    private let date = Mutex<(second: Int, text: String)>((-1, ""))

    init(store: Datastore, configuration: DICOMwebConfiguration, authenticator: RequestAuthenticator, logger: Logger) {
        self.store = store
        self.authenticator = authenticator
        cors = AllowedOriginsMiddleware(origins: configuration.effectiveCORSOrigins)
        trusted = configuration.trustedProxies
        metrics = configuration.metrics?.fastPathMetrics(route: Self.route)
        self.logger = logger
        access = RoutePolicy.access(method: "GET", path: Self.route)
    }

    /// What the fast path sends for one request, and what it records once the response is written.
    struct Answer {
        var head: HTTPResponseHead
        /// The blob's file, open; the caller closes it.
        var file: NIOFileHandle
        var ranges: [Range<Int>]
        var partHeader: ByteBuffer
        var tail: ByteBuffer
        var bodyBytes: Int
        var audit: AuditEvent
        var line: RequestLine
        var start: ContinuousClock.Instant
    }

    /// Whether a request head may be one for the fast path: looked at before its end arrives.
    static func isCandidate(_ head: HTTPRequestHead) -> Bool {
        head.method == .GET && head.version == .http1_1 && head.isKeepAlive && head.uri.hasPrefix("/dicomweb/studies/")
            && head.uri.utf8.last.map { (0x30...0x39).contains($0) } == true
    }

    /// The answer to `head`, or nil: then the router answers it. Runs on the event loop: nothing
    /// here waits. Records nothing yet: the caller says `answering` when it sends the answer.
    func answer(_ head: HTTPRequestHead, peer: SocketAddress?) -> Answer? {
        guard let answer = makeAnswer(head, peer: peer, start: .now) else {
            declined()
            return nil
        }
        return answer
    }

    /// A request handed up to the router after all.
    func declined() {
        metrics?.declined.increment()
    }

    /// The answer is being sent: its audit record goes to the store's buffer, as the audit
    /// middleware's does when a handler returns.
    func answering(_ answer: Answer) {
        metrics?.served.increment()
        _ = store.audit(answer.audit)
    }

    private func makeAnswer(_ head: HTTPRequestHead, peer: SocketAddress?, start: ContinuousClock.Instant) -> Answer? {
        guard let path = Self.framePath(head.uri) else { return nil }
        // One value per header the route reads, as the router's HTTPFields combine repeated ones.
        let headers = head.headers
        // No body, and nothing RequestLimitsMiddleware would refuse (a Content-Encoding is a 415 there).
        guard headers["Content-Length"].allSatisfy({ $0 == "0" }), !headers.contains(name: "Transfer-Encoding"),
              !headers.contains(name: "Content-Encoding") else { return nil }
        let authorization = headers["Authorization"]
        guard authorization.count <= 1, let principal = authenticator.cachedPrincipal(authorization: authorization.first),
              let access, RoutePolicy.allowsByRole(access, principal) == true else { return nil }
        guard let location = store.cachedFrameLocation(study: path.study, series: path.series, sop: path.sop, scope: .primary),
              location.instance.framesInPlace, path.frame <= location.frames.count,
              let file = store.blobs.localPath(location.instance.framesBlob) else { return nil }
        let instance = location.instance
        let accept = headers["Accept"]
        let storedSyntax = instance.framesTransferSyntaxUID
        guard let (mediaType, target) = try? negotiation.negotiate(accept.isEmpty ? nil : accept.joined(separator: ", "), storedSyntax: storedSyntax),
              target == "*" || target == storedSyntax else { return nil }
        let ranges = location.frames[path.frame - 1].ranges
        let size = ranges.reduce(0) { $0 + $1.count }
        guard let handle = openBlob(file, through: ranges.map(\.upperBound).max() ?? 0) else { return nil }

        let writer = MultipartWriter()
        let partHeader = ByteBuffer(string: writer.partHeaderText(contentType: "\(mediaType); transfer-syntax=\(storedSyntax)"))
        let tail = ByteBuffer(string: MultipartWriter.partEndText + writer.closingText)
        let bodyBytes = partHeader.readableBytes + size + tail.readableBytes
        // The headers in the order the router sends them: the route's, CORS's, then Hummingbird's.
        var response = HTTPHeaders()
        response.reserveCapacity(7)
        response.add(name: "Content-Type", value: writer.contentType(type: mediaType))
        response.add(name: "Content-Length", value: String(bodyBytes))
        let origin = headers["Origin"]
        if !origin.isEmpty { response.add(contentsOf: HTTPHeaders(cors.fields(origin: origin.joined(separator: ", "), preflight: false))) }
        response.add(name: "Date", value: httpDate())
        response.add(name: "Server", value: "Tessera")

        let requestID = RequestID().description
        let client = AuditMiddleware.clientAddress(peer: peer, headers: Self.forwardingFields(headers), trusted: trusted)
        var subjects = AuditSubjects()
        subjects.add(study: instance.studyInstanceUID, series: instance.seriesInstanceUID, instance: instance.sopInstanceUID, patient: instance.attributes.patientID)
        let audit = AuditEvent(action: .frames, principal: principal, clientAddress: client, requestID: requestID,
                               subjects: subjects, success: true, status: 200)
        let line = RequestLine(path: String(path.text), client: client ?? "-", requestID: requestID,
                               headersMs: RequestLogMiddleware.milliseconds(since: start))
        return Answer(head: HTTPResponseHead(version: .http1_1, status: .ok, headers: response), file: handle, ranges: ranges,
                      partHeader: partHeader, tail: tail, bodyBytes: bodyBytes, audit: audit, line: line, start: start)
    }

    /// Blob files open for answers not yet written, across connections; beyond it requests go to
    /// the router (whose reads hold no file past the read). The server budgets one file per
    /// connection (`connectionsWithinFileLimit`): this keeps the fast path's own to a fixed few.
    static let maximumOpenFiles = 256
    private let openFiles = Mutex(0)

    /// The blob's file, open, when it holds `end` bytes: a blob shorter than its frame ranges goes
    /// to the router, which answers 500 (sendfile past the end writes nothing, for ever).
    private func openBlob(_ path: String, through end: Int) -> NIOFileHandle? {
        guard openFiles.withLock({ n in n < Self.maximumOpenFiles ? { n += 1; return true }() : false }) else { return nil }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        var info = stat()
        guard fd >= 0, fstat(fd, &info) == 0, Int(info.st_size) >= end else {
            if fd >= 0 { Glibc.close(fd) }
            openFiles.withLock { $0 -= 1 }
            return nil
        }
        return NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: fd)
    }

    /// Closes an answer's file (once its bytes are read or written, or it is not sent).
    func close(_ answer: Answer) {
        guard (try? answer.file.close()) != nil else { return }
        openFiles.withLock { $0 -= 1 }
    }

    /// After the response's last byte went to the socket (or failed to): the request log line and the metrics.
    func finished(_ answer: Answer, error: (any Error)?) {
        answer.line.finished(logger, identity: answer.audit.principal?.name, bytes: error == nil ? answer.bodyBytes : 0,
                             start: answer.start, error: error)
        if let metrics {
            metrics.requests.increment()
            metrics.duration.recordNanoseconds((ContinuousClock.now - answer.start).nanoseconds)
            if error == nil { metrics.bytesOut.increment(by: answer.bodyBytes) }
        }
    }

    /// The two headers `clientAddress` reads behind a trusted proxy, in their order, as
    /// HTTP1ToHTTPServerCodec would convert them for the router; converting every header was
    /// 0.6 % of a frame's CPU (perf).
    static func forwardingFields(_ headers: HTTPHeaders) -> HTTPFields {
        var fields = HTTPFields()
        for (name, value) in headers {
            let n = name.utf8
            guard n.count == 9 || n.count == 15 else { continue }
            if let field = HTTPField.Name(name), field == .forwarded || field == .xForwardedFor {
                fields.append(HTTPField(name: field, value: value))
            }
        }
        return fields
    }

    /// The request log line of a GET answered here, with the fields RequestLogMiddleware gives it.
    struct RequestLine {
        let path: String, client: String, requestID: String, headersMs: String
        /// The module of the router's line (`[DICOMweb]`), which this one matches.
        static let source = String(#fileID.prefix { $0 != "/" })

        /// Written straight into a LineLogHandler's line when the logger is one that adds no fields
        /// of its own (the server's; building a `Logger.Metadata` for it was 2–3 % of a frame's CPU,
        /// perf); through RequestLogMiddleware's metadata otherwise, and on a failure.
        func finished(_ logger: Logger, identity: String?, bytes: Int, start: ContinuousClock.Instant, error: (any Error)?) {
            guard logger.logLevel <= .info else { return }
            let ms = RequestLogMiddleware.milliseconds(since: start)
            if error == nil, let handler = logger.handler as? LineLogHandler,
               handler.logSorted(level: .info, message: "request", source: Self.source, fields: [
                   ("bytes", String(bytes)), ("client", client), ("hb.request.id", requestID), ("headersMs", headersMs),
                   ("identity", identity ?? "-"), ("method", "GET"), ("ms", ms), ("path", path), ("status", "200"),
               ]) { return }
            let fields: Logger.Metadata = ["method": "GET", "path": "\(path)", "client": "\(client)", "status": "200",
                                           "hb.request.id": "\(requestID)", "headersMs": "\(headersMs)"]
            RequestLogMiddleware.finished(logger, fields, identity: identity, bytes: bytes, start: start, error: error)
        }
    }

    struct FramePath {
        let text: Substring
        let study: String, series: String, sop: String
        let frame: Int
    }

    /// `/dicomweb/studies/S/series/R/instances/I/frames/N`: three valid UIDs and one frame number
    /// in plain digits; nil for anything else (a list, a query, an escape, a trailing slash).
    static func framePath(_ uri: String) -> FramePath? {
        // Read left to right, literal by literal: no array of the path's components (perf).
        var rest = Substring(uri)
        func expect(_ literal: StaticString) -> Bool {
            let bytes = UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
            guard rest.utf8.starts(with: bytes) else { return false }
            rest = Substring(rest.utf8.dropFirst(bytes.count))
            return true
        }
        func uid() -> Substring? {
            guard let slash = rest.utf8.firstIndex(of: UInt8(ascii: "/")) else { return nil }
            let value = rest[..<slash]
            rest = rest[rest.utf8.index(after: slash)...]
            return UID.isValid(value) ? value : nil
        }
        guard expect("/dicomweb/studies/"), let study = uid(), expect("series/"), let series = uid(),
              expect("instances/"), let sop = uid(), expect("frames/") else { return nil }
        let number = rest.utf8
        guard (1...7).contains(number.count), number.allSatisfy({ (0x30...0x39).contains($0) }),
              let frame = Int(rest), frame >= 1 else { return nil }
        return FramePath(text: Substring(uri), study: String(study), series: String(series), sop: String(sop), frame: frame)
    }

    /// `Date` (RFC 9110 §5.6.7, IMF-fixdate), made once a second.
    func httpDate() -> String {
        var now = time(nil)
        return date.withLock { cached in
            if cached.second == Int(now) { return cached.text }
            var t = tm()
            gmtime_r(&now, &t)
            let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"], months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
            func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
            let text = "\(days[Int(t.tm_wday)]), \(two(t.tm_mday)) \(months[Int(t.tm_mon)]) \(t.tm_year + 1900) \(two(t.tm_hour)):\(two(t.tm_min)):\(two(t.tm_sec)) GMT"
            cached = (Int(now), text)
            return text
        }
    }
}
