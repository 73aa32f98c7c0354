import HummingbirdCore
import ImageSetStore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1

/// Hummingbird's HTTP/1.1 connection with the stored-frame fast path in its pipeline, right after
/// the HTTP/1 codec and before the conversion to Swift HTTP types, where a response body may still
/// be a `FileRegion` (sendfile). Everything else about the connection is HTTP1Channel's.
struct FastPathHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value
    let http1: HTTP1Channel
    let fastPath: StoredFrameFastPath?
    /// False under TLS, whose handler cannot send a file region: the frame is then read into the buffer.
    let sendfile: Bool

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        http1.setup(channel: channel, logger: logger).flatMapThrowing { [fastPath, sendfile] value in
            if let fastPath {
                let pipeline = channel.pipeline.syncOperations
                let codec = try pipeline.handler(type: HTTP1ToHTTPServerCodec.self)
                try pipeline.addHandler(StoredFrameFastPathHandler(fastPath, sendfile: sendfile), position: .before(codec))
            }
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await http1.handle(value: value, logger: logger)
    }
}

/// One connection's side of the fast path. A request head that may be a frame request is held
/// until its end; then the fast path answers it here or it goes up, whole and in order, to
/// Hummingbird. HTTP/1.1 answers in request order, so while a request that went up is unanswered
/// every later one goes up too (`passedUp`); answers written here queue in the channel ahead of
/// anything Hummingbird writes after them.
final class StoredFrameFastPathHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    let fastPath: StoredFrameFastPath
    let sendfile: Bool
    private var held: HTTPRequestHead?
    /// Requests handed up whose response has not ended.
    private var passedUp = 0
    /// Responses written here that have not gone out yet; at most `maximumAnswering` (each holds an
    /// open file), and none begun while the channel is not writable (a client not reading).
    private var answering = 0
    static let maximumAnswering = 2
    /// How long a shutdown waits for this connection's answers to go out before Hummingbird closes it.
    static let quiesceGrace = TimeAmount.seconds(2)
    /// A shutdown's quiesce event, held until the responses under way here are written.
    private var heldQuiesce: Any?
    private var quiescing = false
    private weak var timeouts: ConnectionTimeoutsHandler?

    init(_ fastPath: StoredFrameFastPath, sendfile: Bool) {
        self.fastPath = fastPath
        self.sendfile = sendfile
    }

    func handlerAdded(context: ChannelHandlerContext) {
        timeouts = try? context.pipeline.syncOperations.handler(type: ConnectionTimeoutsHandler.self)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            if held == nil, passedUp == 0, answering < Self.maximumAnswering, !quiescing, context.channel.isWritable,
               StoredFrameFastPath.isCandidate(head) {
                held = head
                return
            }
            passUp(context, head)
        case .body:
            // A body on a GET: not a request this path knows how to answer.
            if let head = held { held = nil; passUp(context, head) }
            context.fireChannelRead(data)
            releaseQuiesceWhenDone(context)
        case .end:
            guard let head = held else { return context.fireChannelRead(data) }
            held = nil
            guard let answer = fastPath.answer(head, peer: context.channel.remoteAddress), write(answer, context: context) else {
                passUp(context, head)
                context.fireChannelRead(data)
                return releaseQuiesceWhenDone(context)
            }
        }
    }

    private func passUp(_ context: ChannelHandlerContext, _ head: HTTPRequestHead) {
        passedUp += 1
        context.fireChannelRead(wrapInboundOut(.head(head)))
    }

    /// Writes the answer; false when the blob could not be read whole (under TLS, where it is read
    /// here), and then the router answers the request (a 500 with its log line).
    private func write(_ answer: StoredFrameFastPath.Answer, context: ChannelHandlerContext) -> Bool {
        var bodyParts: [IOData]
        if sendfile {
            bodyParts = [.byteBuffer(answer.partHeader)]
            for range in answer.ranges where !range.isEmpty {
                bodyParts.append(.fileRegion(FileRegion(fileHandle: answer.file, readerIndex: range.lowerBound, endIndex: range.upperBound)))
            }
            bodyParts.append(.byteBuffer(answer.tail))
        } else {
            var body = context.channel.allocator.buffer(capacity: answer.bodyBytes)
            body.writeImmutableBuffer(answer.partHeader)
            let complete = (try? answer.file.withUnsafeFileDescriptor { fd in
                answer.ranges.allSatisfy { range in
                    range.count == body.writeWithUnsafeMutableBytes(minimumWritableBytes: range.count) { raw in
                        FileBlobStore.readFully(fd, into: UnsafeMutableRawBufferPointer(rebasing: raw[..<range.count]), at: range.lowerBound)
                    }
                }
            }) ?? false
            fastPath.close(answer)
            guard complete else {
                fastPath.declined()
                return false
            }
            body.writeImmutableBuffer(answer.tail)
            bodyParts = [.byteBuffer(body)]
        }
        answering += 1
        fastPath.answering(answer)
        // The deadlines see the request answered once its end is queued, as one the router answers:
        // a client that stops reading is closed at the idle deadline, its answers' files with it.
        timeouts?.answeringBelow()
        context.write(wrapOutboundOut(.head(answer.head)), promise: nil)
        for part in bodyParts { context.write(wrapOutboundOut(.body(part)), promise: nil) }
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
        timeouts?.answeredBelow()
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        written.futureResult.whenComplete { result in
            let (handler, context) = loopBound.value
            if handler.sendfile { handler.fastPath.close(answer) }
            var failure: (any Error)?
            if case .failure(let error) = result { failure = error }
            handler.fastPath.finished(answer, error: failure)
            handler.answering -= 1
            handler.releaseQuiesceWhenDone(context)
        }
        return true
    }

    private func releaseQuiesceWhenDone(_ context: ChannelHandlerContext) {
        if answering == 0, held == nil, let event = heldQuiesce {
            heldQuiesce = nil
            context.fireUserInboundEventTriggered(event)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { passedUp = max(passedUp - 1, 0) }
        context.write(data, promise: promise)
    }

    /// A graceful shutdown: Hummingbird closes an idle connection at once, and this one is not idle
    /// while a response written here is still going out; nothing new is answered here after it.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            quiescing = true
            if answering > 0 || held != nil {
                heldQuiesce = event
                // Bounded: a client that does not read its answers does not hold up the shutdown.
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                context.eventLoop.scheduleTask(in: Self.quiesceGrace) {
                    let (handler, context) = loopBound.value
                    guard let event = handler.heldQuiesce else { return }
                    handler.heldQuiesce = nil
                    context.fireUserInboundEventTriggered(event)
                }
                return
            }
        }
        context.fireUserInboundEventTriggered(event)
    }
}

@available(*, unavailable)
extension StoredFrameFastPathHandler: Sendable {}
