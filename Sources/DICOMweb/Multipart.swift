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
