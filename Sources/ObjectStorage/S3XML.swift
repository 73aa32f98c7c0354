import Crypto
import Foundation
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// Just enough XML for S3's answers (ListBucketResult, InitiateMultipartUploadResult, Error): flat
/// elements without attributes, found by name. A full parser would buy nothing for these shapes, and
/// FoundationXML would bring libxml2 into the server.
enum S3XML {
    /// The text of every `<name>…</name>`, entities decoded (inner markup kept for nested use).
    static func all(_ name: String, in xml: String) -> [String] {
        var out: [String] = []
        let open = "<\(name)>", close = "</\(name)>"
        var rest = xml[...]
        while let start = rest.range(of: open) {
            guard let end = rest.range(of: close, range: start.upperBound..<rest.endIndex) else { break }
            out.append(String(rest[start.upperBound..<end.lowerBound]))
            rest = rest[end.upperBound...]
        }
        return out
    }

    static func first(_ name: String, in xml: String) -> String? {
        let open = "<\(name)>", close = "</\(name)>"
        guard let start = xml.range(of: open), let end = xml.range(of: close, range: start.upperBound..<xml.endIndex) else { return nil }
        return unescape(String(xml[start.upperBound..<end.lowerBound]))
    }

    static func unescape(_ s: String) -> String {
        guard s.contains("&") else { return s }
        var out = ""
        var i = s.startIndex
        while i < s.endIndex {
            if s[i] == "&", let semi = s[i...].firstIndex(of: ";") {
                let entity = s[s.index(after: i)..<semi]
                var scalar: Character? = switch entity {
                case "amp": "&"
                case "lt": "<"
                case "gt": ">"
                case "quot": "\""
                case "apos": "'"
                default: nil
                }
                if scalar == nil, entity.hasPrefix("#") {
                    let digits = entity.dropFirst()
                    let value = digits.hasPrefix("x") ? UInt32(digits.dropFirst(), radix: 16) : UInt32(digits)
                    scalar = value.flatMap(Unicode.Scalar.init).map(Character.init)
                }
                if let scalar {
                    out.append(scalar)
                    i = s.index(after: semi)
                    continue
                }
            }
            out.append(s[i])
            i = s.index(after: i)
        }
        return out
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    /// `2026-12-01T09:05:07.000Z` (ListObjectsV2's LastModified), fractional seconds optional.
    static func date(_ s: String) -> Date? {
        let u = Array(s.utf8)
        guard u.count >= 20, u[4] == 0x2D, u[7] == 0x2D, u[10] == 0x54, u[13] == 0x3A, u[16] == 0x3A else { return nil }
        func number(_ r: Range<Int>) -> Int32? { Int32(String(decoding: u[r], as: UTF8.self)) }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10), let hour = number(11..<13),
              let minute = number(14..<16), let second = number(17..<19) else { return nil }
        var fraction = 0.0
        if u[19] == 0x2E, let end = u[20...].firstIndex(where: { !(0x30...0x39).contains($0) }) {
            fraction = Double("0." + String(decoding: u[20..<end], as: UTF8.self)) ?? 0
        }
        var parts = tm()
        parts.tm_year = year - 1900
        parts.tm_mon = month - 1
        parts.tm_mday = day
        parts.tm_hour = hour
        parts.tm_min = minute
        parts.tm_sec = second
        return Date(timeIntervalSince1970: Double(timegm(&parts)) + fraction)
    }
}

enum SHA256Digest {
    static func of(_ buffer: ByteBuffer) -> SHA256.Digest {
        buffer.withUnsafeReadableBytes { SHA256.hash(data: $0) }
    }
}
