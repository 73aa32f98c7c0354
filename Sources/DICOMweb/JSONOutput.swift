import DICOMParser
import Foundation
import NIOCore

/// Serializes the `[String: Any]` trees the routes build (strings, numbers, arrays, objects, null),
/// keys sorted by code point, slashes unescaped, through DICOMParser's `JSONWriter` (which also
/// escapes the strings). Foundation's JSONSerialization on Linux spent 80% of a 50-instance QIDO
/// response sorting keys through NSString locale comparison.
enum JSONOutput {
    static func serialize(_ value: Any) -> ByteBuffer {
        var w = JSONWriter()
        write(value, into: &w)
        return ByteBuffer(bytes: w.bytes)
    }

    static func write(_ value: Any, into w: inout JSONWriter) {
        switch value {
        case let s as String:
            w.string(s)
        case let s as Substring:
            w.string(String(s))
        case let b as Bool where type(of: value) == Bool.self:
            w.raw(b ? "true" : "false")
        case let i as Int:
            w.raw(String(i))
        case let d as Double:
            w.raw(d.isFinite ? (d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : "\(d)") : "null")
        case let object as [String: Any]:
            w.byte(UInt8(ascii: "{"))
            for (n, key) in object.keys.sorted().enumerated() {
                if n > 0 { w.byte(UInt8(ascii: ",")) }
                w.string(key)
                w.byte(UInt8(ascii: ":"))
                write(object[key] as Any, into: &w)
            }
            w.byte(UInt8(ascii: "}"))
        case let array as [Any]:
            w.byte(UInt8(ascii: "["))
            for (n, element) in array.enumerated() {
                if n > 0 { w.byte(UInt8(ascii: ",")) }
                write(element, into: &w)
            }
            w.byte(UInt8(ascii: "]"))
        case let n as NSNumber:
            w.raw(n.stringValue)
        default:
            w.raw("null")
        }
    }
}
