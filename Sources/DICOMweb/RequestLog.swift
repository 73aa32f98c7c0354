import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// One structured log line per request, written when its last body byte has gone to the
/// connection (a streamed series can take seconds after its headers): id, method, path, status,
/// client address, identity, response bytes, `ms` to the last byte and `headersMs` to the headers.
/// The same moments feed the request metrics (ServerMetrics), when on: counted once, where the bytes are.
struct RequestLogMiddleware: RouterMiddleware {
    let trusted: [CIDR]
    var metrics: ServerMetrics? = nil

    func handle(_ request: Request, context: TesseraRequestContext,
                next: (Request, TesseraRequestContext) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let logger = context.logger
        // The line's fields, handed to the log call once: set one by one on the logger, each made
        // StreamLogHandler format all its metadata again (5 % of a stored frame's CPU, perf).
        var line: Logger.Metadata = ["method": "\(request.method.rawValue)", "path": "\(request.uri.path)"]
        let notes = context.notes
        // Worked out once per request: the audit middleware inside records the same address.
        notes.clientAddress = AuditMiddleware.clientAddress(request, context: context, trusted: trusted)
        line["client"] = "\(notes.clientAddress ?? "-")"
        do {
            var response = try await next(request, context)
            line["status"] = "\(response.status.code)"
            line["headersMs"] = "\(Self.milliseconds(since: start))"
            let log = logger, fields = line
            let record = metrics.map { Self.recorder($0, request, context, status: response.status.code, start: start) }
            // Hummingbird drops the body of an answer to HEAD without writing it: log now.
            if request.method == .head {
                Self.finished(log, fields, notes: notes, bytes: 0, start: start, error: nil)
                record?(0)
                return response
            }
            let body = response.body
            response.body = ResponseBody(contentLength: body.contentLength) { writer in
                let counter = ByteCounter()
                do {
                    try await body.write(CountingWriter(base: writer, counter: counter))
                    Self.finished(log, fields, notes: notes, bytes: counter.value, start: start, error: nil)
                    record?(counter.value)
                } catch {
                    Self.finished(log, fields, notes: notes, bytes: counter.value, start: start, error: error)
                    record?(counter.value)
                    throw error
                }
            }
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            // An error's body is a short JSON line written after this: its bytes are not counted.
            if let metrics { Self.recorder(metrics, request, context, status: status, start: start)(0) }
            line["status"] = "\(status)"
            line["identity"] = "\(notes.principal?.name ?? "-")"
            line["ms"] = "\(Self.milliseconds(since: start))"
            if let reason = notes.authenticationFailure { line["reason"] = "\(reason)" }
            // A 4xx message may quote what the client sent (a Patient ID, a birth date): the client
            // reads it in the response body; the log, which many people read, keeps patient data out.
            if status >= 500 { line["error"] = "\(error)" }
            logger.info("request failed", metadata: line)
            throw error
        }
    }

    /// Records the request in `metrics` when called with the response bytes written. The route is
    /// the router's pattern (never the path: Docs/operations.md); the bytes in are the declared
    /// Content-Length (a chunked body's are not counted).
    static func recorder(_ metrics: ServerMetrics, _ request: Request, _ context: TesseraRequestContext, status: Int,
                         start: ContinuousClock.Instant) -> @Sendable (Int) -> Void {
        let method = request.method
        let route = context.endpointPath
        let bytesIn = request.headers[.contentLength].flatMap { Int($0) } ?? 0
        return { bytesOut in
            metrics.request(method: method, route: route, status: status, duration: ContinuousClock.now - start, bytesIn: bytesIn, bytesOut: bytesOut)
        }
    }

    static func finished(_ logger: Logger, _ fields: Logger.Metadata, notes: RequestNotes, bytes: Int, start: ContinuousClock.Instant, error: (any Error)?) {
        finished(logger, fields, identity: notes.principal?.name, bytes: bytes, start: start, error: error)
    }

    /// The line of a request whose response has been written (or failed to be): also the stored-frame fast path's.
    static func finished(_ logger: Logger, _ fields: Logger.Metadata, identity: String?, bytes: Int, start: ContinuousClock.Instant, error: (any Error)?) {
        var line = fields
        line["identity"] = "\(identity ?? "-")"
        line["bytes"] = "\(bytes)"
        line["ms"] = "\(milliseconds(since: start))"
        if let error {
            line["error"] = "\(error)"
            logger.info("request body failed", metadata: line)
        } else {
            logger.info("request", metadata: line)
        }
    }

    /// Milliseconds with two decimals. Integer arithmetic: Foundation's `String(format:)` cost
    /// 1.5 % of a frame request's CPU (perf, Tools/bench-builds), twice per request.
    static func milliseconds(since start: ContinuousClock.Instant) -> String {
        let d = ContinuousClock.now - start
        let tenMicroseconds = d.components.seconds * 100_000 + d.components.attoseconds / 10_000_000_000_000
        let fraction = tenMicroseconds % 100
        return "\(tenMicroseconds / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}

/// The bytes a response body wrote so far.
final class ByteCounter: Sendable {
    private let count = NIOLockedValueBox(0)
    func add(_ n: Int) { count.withLockedValue { $0 += n } }
    var value: Int { count.withLockedValue { $0 } }
}

/// Passes a response body through, counting its bytes.
struct CountingWriter: ResponseBodyWriter {
    var base: any ResponseBodyWriter
    let counter: ByteCounter

    mutating func write(_ buffer: ByteBuffer) async throws {
        counter.add(buffer.readableBytes)
        try await base.write(buffer)
    }

    mutating func write(contentsOf buffers: some Sequence<ByteBuffer>) async throws {
        for b in buffers { counter.add(b.readableBytes) }
        try await base.write(contentsOf: buffers)
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {
        try await base.finish(trailingHeaders)
    }
}
