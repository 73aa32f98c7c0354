import DICOMCore
import DICOMDictionary
import DICOMParser
import Foundation
import NIOCore

/// One QIDO-RS result (PS3.18 §10.6.3), its attributes as DICOM JSON (PS3.18 §F.2) written straight
/// into a `JSONWriter`. The route used to build a `[String: Any]` tree per result and hand it to
/// `JSONOutput`: at 100 studies per page that was half the server's CPU (dynamic casts, a dictionary
/// per attribute, sorting their keys), more than PostgreSQL spent on the query. The bytes are the same
/// as that tree's (`QIDOJSONTests` compares them): keys in code-point order, a key set twice keeps its
/// last value, `"Value"` before `"vr"`.
struct QIDOResult {
    enum Value {
        /// An index column's text, shaped by the attribute's VR as the stored JSON would have it.
        case column(vr: String, text: String)
        /// An IS count (NumberOf…Related…).
        case count(Int)
        /// A CS list, no `Value` when empty (ModalitiesInStudy).
        case codes([String])
        /// A UR (RetrieveURL).
        case url(String)
        /// An element of the representative instance's stored JSON, as decoded (includefield).
        case stored(Any)
    }

    // Two arrays, not one of pairs: sorting compares keys only, without copying values.
    var keys: [String] = []
    var values: [Value] = []

    init() {
        keys.reserveCapacity(24)
        values.reserveCapacity(24)
    }

    mutating func set(_ tag: Tag, _ value: Value) { set(tag.hexString, value) }
    mutating func set(_ key: String, _ value: Value) {
        keys.append(key)
        values.append(value)
    }

    static func serialize(_ results: [QIDOResult]) -> ByteBuffer {
        var w = JSONWriter()
        w.bytes.reserveCapacity(results.count * 1_500)
        w.byte(UInt8(ascii: "["))
        for (n, result) in results.enumerated() {
            if n > 0 { w.byte(UInt8(ascii: ",")) }
            result.write(into: &w)
        }
        w.byte(UInt8(ascii: "]"))
        return ByteBuffer(bytes: w.bytes)
    }

    func write(into w: inout JSONWriter) {
        // Sorted by key, then by when it was set, so the last of equal keys is the one written.
        let order = keys.indices.sorted { a, b in keys[a] == keys[b] ? a < b : keys[a] < keys[b] }
        w.byte(UInt8(ascii: "{"))
        var first = true
        for (n, i) in order.enumerated() where n + 1 == order.count || keys[order[n + 1]] != keys[i] {
            if !first { w.byte(UInt8(ascii: ",")) }
            first = false
            w.string(keys[i])
            w.byte(UInt8(ascii: ":"))
            Self.write(values[i], into: &w)
        }
        w.byte(UInt8(ascii: "}"))
    }

    static func write(_ value: Value, into w: inout JSONWriter) {
        switch value {
        case .column(let vr, let text):
            guard !text.isEmpty else { return element(vr: vr, into: &w) }
            switch vr {
            case "PN":
                element(vr: vr, into: &w) { w in list(parts(text), into: &w) { w, name in personName(name, into: &w) } }
            case "IS", "US", "UL", "SS", "SL":
                element(vr: vr, into: &w) { w in w.byte(UInt8(ascii: "[")); w.integer(Int64(Int(text) ?? 0)); w.byte(UInt8(ascii: "]")) }
            default:
                // Most values are one, written without splitting.
                guard text.utf8.contains(UInt8(ascii: "\\")) else {
                    return element(vr: vr, into: &w) { w in w.byte(UInt8(ascii: "[")); w.string(text); w.byte(UInt8(ascii: "]")) }
                }
                element(vr: vr, into: &w) { w in list(parts(text), into: &w) { w, s in w.string(String(s)) } }
            }
        case .count(let n):
            element(vr: "IS", into: &w) { w in w.byte(UInt8(ascii: "[")); w.integer(Int64(n)); w.byte(UInt8(ascii: "]")) }
        case .codes(let codes):
            guard !codes.isEmpty else { return element(vr: "CS", into: &w) }
            element(vr: "CS", into: &w) { w in list(codes, into: &w) { w, s in w.string(s) } }
        case .url(let url):
            element(vr: "UR", into: &w) { w in w.byte(UInt8(ascii: "[")); w.string(url); w.byte(UInt8(ascii: "]")) }
        case .stored(let any):
            JSONOutput.write(any, into: &w)
        }
    }

    /// A value's parts at its backslashes; most values have none, and are not split.
    static func parts(_ text: String) -> [Substring] {
        text.utf8.contains(UInt8(ascii: "\\")) ? text.split(separator: "\\", omittingEmptySubsequences: false) : [Substring(text)]
    }

    /// `{"Value":…,"vr":"XX"}`.
    static func element(vr: String, into w: inout JSONWriter, _ values: (inout JSONWriter) -> Void) {
        w.raw("{\"Value\":")
        values(&w)
        w.raw(",\"vr\":")
        w.string(vr)
        w.byte(UInt8(ascii: "}"))
    }

    /// `{"vr":"XX"}`: an attribute without values.
    static func element(vr: String, into w: inout JSONWriter) {
        w.raw("{\"vr\":")
        w.string(vr)
        w.byte(UInt8(ascii: "}"))
    }

    static func list<S: Sequence>(_ items: S, into w: inout JSONWriter, _ item: (inout JSONWriter, S.Element) -> Void) {
        w.byte(UInt8(ascii: "["))
        var first = true
        for x in items {
            if !first { w.byte(UInt8(ascii: ",")) }
            first = false
            item(&w, x)
        }
        w.byte(UInt8(ascii: "]"))
    }

    /// One PN value as an object of its component groups (PS3.18 §F.2.2), as DICOMJSON.encode writes
    /// them: trailing empty groups dropped, an empty name is null.
    static func personName(_ value: Substring, into w: inout JSONWriter) {
        var name = value
        while name.hasSuffix("=") { name = name.dropLast() }
        guard !name.isEmpty else { return w.raw("null") }
        let groups = name.split(separator: "=", maxSplits: 2, omittingEmptySubsequences: false)
        w.byte(UInt8(ascii: "{"))
        for (n, (key, group)) in zip(["\"Alphabetic\":", "\"Ideographic\":", "\"Phonetic\":"], groups).enumerated() {
            if n > 0 { w.byte(UInt8(ascii: ",")) }
            w.raw(key)
            w.string(String(group))
        }
        w.byte(UInt8(ascii: "}"))
    }
}

