import Foundation
import NIOCore

/// Serializes the `[String: Any]` trees the routes build (strings, numbers, arrays, objects, null),
/// keys sorted by code point, slashes unescaped. Foundation's JSONSerialization on Linux spent 80%
/// of a 50-instance QIDO response sorting keys through NSString locale comparison.
enum JSONOutput {
    static func serialize(_ value: Any) -> ByteBuffer {
        var out = ByteBuffer()
        write(value, into: &out)
        return out
    }

    static func write(_ value: Any, into out: inout ByteBuffer) {
        switch value {
        case let s as String:
            writeString(s, into: &out)
        case let s as Substring:
            writeString(String(s), into: &out)
        case let b as Bool where type(of: value) == Bool.self:
            out.writeString(b ? "true" : "false")
        case let i as Int:
            out.writeString(String(i))
        case let d as Double:
            out.writeString(d.isFinite ? (d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : "\(d)") : "null")
        case let object as [String: Any]:
            out.writeInteger(UInt8(ascii: "{"))
            for (n, key) in object.keys.sorted().enumerated() {
                if n > 0 { out.writeInteger(UInt8(ascii: ",")) }
                writeString(key, into: &out)
                out.writeInteger(UInt8(ascii: ":"))
                write(object[key] as Any, into: &out)
            }
            out.writeInteger(UInt8(ascii: "}"))
        case let array as [Any]:
            out.writeInteger(UInt8(ascii: "["))
            for (n, element) in array.enumerated() {
                if n > 0 { out.writeInteger(UInt8(ascii: ",")) }
                write(element, into: &out)
            }
            out.writeInteger(UInt8(ascii: "]"))
        case let n as NSNumber:
            out.writeString(n.stringValue)
        default:
            out.writeString("null")
        }
    }

    static func writeString(_ s: String, into out: inout ByteBuffer) {
        out.writeInteger(UInt8(ascii: "\""))
        let utf8 = s.utf8
        // Most values need no escaping: write them in one piece.
        if !utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }) {
            out.writeString(s)
        } else {
            for b in utf8 {
                switch b {
                case 0x22: out.writeStaticString("\\\"")
                case 0x5C: out.writeStaticString("\\\\")
                case 0x0A: out.writeStaticString("\\n")
                case 0x0D: out.writeStaticString("\\r")
                case 0x09: out.writeStaticString("\\t")
                case ..<0x20: out.writeString(String(format: "\\u%04x", b))
                default: out.writeInteger(b)
                }
            }
        }
        out.writeInteger(UInt8(ascii: "\""))
    }
}
