import HummingbirdCore
import NIOCore

/// multipart/related bodies (RFC 2387) written part by part.
struct MultipartWriter {
    let boundary: String
    init() {
        let (a, b) = BoundaryRandomness.shared.next()
        boundary = "tessera-" + String(a, radix: 36) + String(b, radix: 36)
    }

    func contentType(type: String, transferSyntax: String? = nil) -> String {
        var value = "multipart/related; type=\"\(type)\"; boundary=\(boundary)"
        if let transferSyntax { value += "; transfer-syntax=\(transferSyntax)" }
        return value
    }

    func partHeader(contentType: String, location: String? = nil) -> ByteBuffer {
        ByteBuffer(string: partHeaderText(contentType: contentType, location: location))
    }

    func partHeaderText(contentType: String, location: String? = nil) -> String {
        var s = "--\(boundary)\r\nContent-Type: \(contentType)\r\n"
        if let location { s += "Content-Location: \(location)\r\n" }
        return s + "\r\n"
    }

    static let partEndText = "\r\n"
    var partEnd: ByteBuffer { ByteBuffer(string: Self.partEndText) }
    var closingText: String { "--\(boundary)--\r\n" }
    var closing: ByteBuffer { ByteBuffer(string: closingText) }
}

extension MultipartWriter: Sendable {
    /// The body for `count` parts: one part is built before the response starts, so an error in it
    /// is still a proper status; several are streamed (`streamingBody`).
    func body(count: Int, contentType: @escaping @Sendable (Int) -> String,
              part: @escaping @Sendable (Int) async throws -> ByteBuffer) async throws -> ResponseBody {
        guard count == 1 else { return streamingBody(count: count, contentType: contentType, part: part) }
        return ResponseBody(contentsOf: [partHeader(contentType: contentType(0)), try await part(0), partEnd, closing])
    }

    /// A body of one part of `size` bytes that `fill` appends, in one buffer with its header and the
    /// closing delimiter: one allocation and one write, where four buffers went down the channel.
    func singlePart(contentType: String, size: Int, fill: (inout ByteBuffer) async throws -> Void) async throws -> ByteBuffer {
        let head = partHeaderText(contentType: contentType), tail = Self.partEndText + closingText
        var buffer = ByteBufferAllocator().buffer(capacity: head.utf8.count + size + tail.utf8.count)
        buffer.writeString(head)
        try await fill(&buffer)
        buffer.writeString(tail)
        return buffer
    }

    /// A body of `count` parts made one at a time as the client reads them, so a response holds
    /// one part in memory however many it has (a study's instances, a thousand frames). A part
    /// that fails to build ends the body early; callers check what they can before they start.
    func streamingBody(count: Int, contentType: @escaping @Sendable (Int) -> String,
                       part: @escaping @Sendable (Int) async throws -> ByteBuffer) -> ResponseBody {
        ResponseBody { writer in
            for i in 0..<count {
                try await writer.write(partHeader(contentType: contentType(i)))
                try await writer.write(try await part(i))
                try await writer.write(partEnd)
            }
            try await writer.write(closing)
            try await writer.finish(nil)
        }
    }
}
