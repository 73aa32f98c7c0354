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
        var log: Logger.Metadata
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
        // As HTTP1ToHTTPServerCodec converts them for the router.
        let client = AuditMiddleware.clientAddress(peer: peer, headers: HTTPFields(headers, splitCookie: false), trusted: trusted)
        var subjects = AuditSubjects()
        subjects.add(study: instance.studyInstanceUID, series: instance.seriesInstanceUID, instance: instance.sopInstanceUID, patient: instance.attributes.patientID)
        let audit = AuditEvent(action: .frames, principal: principal, clientAddress: client, requestID: requestID,
                               subjects: subjects, success: true, status: 200)
        let log: Logger.Metadata = ["method": "GET", "path": "\(path.text)", "client": "\(client ?? "-")", "status": "200",
                                    "hb.request.id": "\(requestID)",
                                    "headersMs": "\(RequestLogMiddleware.milliseconds(since: start))"]
        return Answer(head: HTTPResponseHead(version: .http1_1, status: .ok, headers: response), file: handle, ranges: ranges,
                      partHeader: partHeader, tail: tail, bodyBytes: bodyBytes, audit: audit, log: log, start: start)
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
        RequestLogMiddleware.finished(logger, answer.log, identity: answer.audit.principal?.name, bytes: error == nil ? answer.bodyBytes : 0,
                                      start: answer.start, error: error)
        if let metrics {
            metrics.requests.increment()
            metrics.duration.recordNanoseconds((ContinuousClock.now - answer.start).nanoseconds)
            if error == nil { metrics.bytesOut.increment(by: answer.bodyBytes) }
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
        let c = uri.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        guard c.count == 10, c[0].isEmpty, c[1].elementsEqual("dicomweb".utf8), c[2].elementsEqual("studies".utf8),
              c[4].elementsEqual("series".utf8), c[6].elementsEqual("instances".utf8), c[8].elementsEqual("frames".utf8),
              (1...7).contains(c[9].count), c[9].allSatisfy({ (0x30...0x39).contains($0) }),
              let frame = Int(Substring(c[9])), frame >= 1 else { return nil }
        let study = String(Substring(c[3])), series = String(Substring(c[5])), sop = String(Substring(c[7]))
        guard UID.isValid(study), UID.isValid(series), UID.isValid(sop) else { return nil }
        return FramePath(text: Substring(uri), study: study, series: series, sop: sop, frame: frame)
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
