import NIOCore
import NIOHTTPTypes

/// Deadlines per connection, so that a client that opens connections and sends nothing, drips a
/// request's headers byte by byte (slowloris) or announces a body it never sends holds a socket
/// for seconds, not for ever (Docs/security.md, "Limits"). One timer per connection, on its event loop:
///
/// - idle: no byte of a next request since the connection opened or the last response ended (keep-alive);
/// - header: from the first byte of a request to its last header line; dripping bytes does not extend it;
/// - body: while the server waits for the client's next piece of a request body (a stalled or
///   announced-but-unsent upload); closing the connection ends the request body with an error, and
///   STOW-RS removes what it staged. The clock runs only while a read is outstanding: when the
///   server stops reading (backpressure: STOW-RS parsing or transcoding a large part) the client is
///   not to blame. Over a body, the client must also average `minimumBodyRate` bytes per second of
///   that waiting time, so a client that drips a byte just inside each deadline is closed too.
///
/// On HTTP/2 each stream has its own (DICOMwebServer+HTTP2.swift): a stream is one request, and a
/// deadline missed resets that stream; the connection's idle deadline is HummingbirdHTTP2's.
///
/// No deadline runs while a request is being answered: a slow transcode or a long download is
/// bounded elsewhere (the work pool, the client's own reading).
final class ConnectionTimeoutsHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    struct Timeouts: Sendable {
        var idle: TimeAmount
        var header: TimeAmount
        var body: TimeAmount
    }

    enum Phase { case idle, head, body, answering }

    private let timeouts: Timeouts
    private var phase = Phase.idle
    /// Requests begun whose response has not ended (HTTP/1.1 pipelining can queue several).
    private var unanswered = 0
    /// When the connection is closed unless something happens first; nil while no deadline runs.
    private var deadline: NIODeadline?
    /// The one scheduled task, and when it fires. Moving a deadline later (every request on a
    /// keep-alive connection does, two or three times) only sets `deadline`: the task, firing
    /// early, schedules itself again for it. Cancelling and scheduling a task per phase cost an
    /// allocation and a heap update each, several per stored frame (perf, Docs/performance.md).
    private var timer: Scheduled<Void>?
    private var timerFires = NIODeadline.distantFuture
    /// Answered early; closing soon whatever the client still sends.
    private var lingering = false
    static let linger = TimeAmount.milliseconds(500)
    private var context: ChannelHandlerContext?
    /// The body's bytes so far, and the time spent waiting for them (`waitingSince`: a read is outstanding).
    private var bodyBytes = 0
    private var bodyWaited = TimeAmount.zero
    private var waitingSince: NIODeadline?
    /// The slowest a body may arrive, averaged over the time the server waited for it, once that time exceeds the body deadline.
    static let minimumBodyRate = 1024.0

    init(_ timeouts: Timeouts) { self.timeouts = timeouts }

    /// On an HTTP/2 stream, its connection's idle backstop (counting the streams open).
    private var backstop: IdleStreamsBackstop?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        backstop = IdleStreamsBackstop.of(context.channel)
        backstop?.streamOpened()
        // Bytes are seen before the HTTP decoder has a whole head: the header deadline starts at the first one.
        try? context.pipeline.syncOperations.addHandler(FirstByteObserver(owner: self), position: .first)
        if context.channel.isActive { arm(timeouts.idle) }
    }

    /// An accepted connection becomes active after its pipeline is set up: the idle deadline starts here.
    func channelActive(context: ChannelHandlerContext) {
        if phase == .idle { arm(timeouts.idle) }
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        deadline = nil
        self.context = nil
        backstop?.streamClosed()
        backstop = nil
    }

    /// Raw bytes arrived (from `FirstByteObserver`): an idle connection starts a request.
    func bytesArrived() {
        guard phase == .idle else { return }
        phase = .head
        arm(timeouts.header)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            unanswered += 1
            // A pipelined request behind one being answered waits its turn without a deadline.
            if phase != .answering {
                phase = .body
                (bodyBytes, bodyWaited) = (0, .zero)
                waitBody()
            }
        case .body(let bytes):
            if phase == .body && !lingering {
                if let since = waitingSince { bodyWaited = bodyWaited + (context.eventLoop.now - since) }
                disarm()
                bodyBytes += bytes.readableBytes
                let waited = Double(bodyWaited.nanoseconds) / 1e9
                if bodyWaited > timeouts.body, Double(bodyBytes) < Self.minimumBodyRate * waited {
                    context.close(promise: nil)
                    return
                }
            }
        case .end:
            if unanswered == 0 {
                // Answered before its body was read whole (413, 415, an early error): idle now.
                phase = .idle
                lingering = false
                arm(timeouts.idle)
            } else {
                phase = .answering
                disarm()
            }
        }
        context.fireChannelRead(data)
    }

    /// A request that the stored-frame fast path, below this handler, answers itself (it never
    /// comes up here): no deadline runs while its response is written, as for one answered here…
    func answeringBelow() {
        unanswered += 1
        phase = .answering
        disarm()
    }

    /// …and once it is written the connection is idle again, unless more requests are unanswered.
    func answeredBelow() {
        unanswered = max(unanswered - 1, 0)
        if phase == .answering && unanswered == 0 {
            phase = .idle
            arm(timeouts.idle)
        }
    }

    /// The request's reader asks for more: from now the client owes the next piece of the body.
    func read(context: ChannelHandlerContext) {
        if phase == .body && !lingering && deadline == nil { waitBody() }
        context.read()
    }

    private func waitBody() {
        arm(timeouts.body)
        waitingSince = context?.eventLoop.now
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            unanswered = max(unanswered - 1, 0)
            if phase == .answering && unanswered == 0 {
                phase = .idle
                arm(timeouts.idle)
            } else if phase == .body && unanswered == 0 {
                // Answered before the body arrived (413 on Content-Length, 415, an early error):
                // Hummingbird would read the rest of a body it will not use, gigabytes maybe. The
                // connection closes a moment after the answer, time for the client to read it.
                lingering = true
                arm(Self.linger)
            }
        }
        context.write(data, promise: promise)
    }

    func channelInactive(context: ChannelHandlerContext) {
        disarm()
        context.fireChannelInactive()
    }

    private func arm(_ delay: TimeAmount) {
        guard let context else { return }
        let when = context.eventLoop.now + delay
        deadline = when
        if timer != nil, timerFires <= when { return }
        timer?.cancel()
        schedule(at: when)
    }

    private func schedule(at when: NIODeadline) {
        guard let context else { return }
        timerFires = when
        timer = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(deadline: when) { [weak self] in
            guard let self else { return }
            self.timer = nil
            guard let deadline = self.deadline, let loop = self.context?.eventLoop else { return }
            if deadline <= loop.now {
                self.deadline = nil
                self.context?.close(promise: nil)
            } else {
                self.schedule(at: deadline)
            }
        }
    }

    /// No deadline runs; the task, if one is scheduled, finds none when it fires.
    private func disarm() {
        deadline = nil
        waitingSince = nil
    }
}

/// Tells `ConnectionTimeoutsHandler` that request bytes arrived; sits first in the pipeline, ahead
/// of the HTTP decoder, and passes everything on unchanged: bytes on a connection, frame payloads
/// on an HTTP/2 stream (whose HEADERS frame then starts its request).
final class FirstByteObserver: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias InboundOut = NIOAny
    // Owned by the same pipeline (one event loop); unowned would dangle after a removal, weak does not.
    private weak var owner: ConnectionTimeoutsHandler?

    init(owner: ConnectionTimeoutsHandler) { self.owner = owner }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        owner?.bytesArrived()
        context.fireChannelRead(data)
    }
}

@available(*, unavailable)
extension ConnectionTimeoutsHandler: Sendable {}
@available(*, unavailable)
extension FirstByteObserver: Sendable {}
