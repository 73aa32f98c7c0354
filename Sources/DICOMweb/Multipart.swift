import HummingbirdCore
import NIOCore

/// multipart/related bodies (RFC 2387) written part by part.
struct MultipartWriter {
    let boundary: String
    init() {
        var g = SystemRandomNumberGenerator()
        boundary = "tessera-" + String(g.next() as UInt64, radix: 36) + String(g.next() as UInt64, radix: 36)
    }

    func contentType(type: String, transferSyntax: String? = nil) -> String {
        var value = "multipart/related; type=\"\(type)\"; boundary=\(boundary)"
        if let transferSyntax { value += "; transfer-syntax=\(transferSyntax)" }
        return value
    }

    func partHeader(contentType: String, location: String? = nil) -> ByteBuffer {
        var s = "--\(boundary)\r\nContent-Type: \(contentType)\r\n"
        if let location { s += "Content-Location: \(location)\r\n" }
        s += "\r\n"
        return ByteBuffer(string: s)
    }

    var partEnd: ByteBuffer { ByteBuffer(string: "\r\n") }
    var closing: ByteBuffer { ByteBuffer(string: "--\(boundary)--\r\n") }
}

extension MultipartWriter: Sendable {
    /// The body for `count` parts: one part is built before the response starts, so an error in it
    /// is still a proper status; several are streamed (`streamingBody`).
    func body(count: Int, contentType: @escaping @Sendable (Int) -> String,
              part: @escaping @Sendable (Int) async throws -> ByteBuffer) async throws -> ResponseBody {
        guard count == 1 else { return streamingBody(count: count, contentType: contentType, part: part) }
        return ResponseBody(contentsOf: [partHeader(contentType: contentType(0)), try await part(0), partEnd, closing])
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
