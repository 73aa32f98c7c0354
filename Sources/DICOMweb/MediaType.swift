/// A media type with parameters, as in Content-Type and each Accept entry (RFC 9110 §8.3.1).
struct MediaType: Equatable {
    var type: String        // lower-cased, e.g. "multipart/related"
    var parameters: [String: String]  // names lower-cased; values unquoted

    subscript(_ name: String) -> String? { parameters[name] }
    var quality: Double { parameters["q"].flatMap(Double.init) ?? 1 }

    /// Parses `type/subtype; name=value; name="quoted value"`. Nil when there is no type/subtype.
    init?(_ text: Substring) {
        var parts = MediaType.splitOutsideQuotes(text, separator: ";").makeIterator()
        guard let head = parts.next() else { return nil }
        let t = head.trimmingCharacters(in: " \t").lowercased()
        guard t.contains("/") else { return nil }
        type = t
        parameters = [:]
        while let p = parts.next() {
            guard let eq = p.firstIndex(of: "=") else { continue }
            let name = p[..<eq].trimmingCharacters(in: " \t").lowercased()
            var value = p[p.index(after: eq)...].trimmingCharacters(in: " \t")
            if value.count >= 2, value.first == "\"", value.last == "\"" {
                value = String(value.dropFirst().dropLast()).replacingOccurrences(of: "\\\"", with: "\"")
            }
            parameters[name] = value
        }
    }

    init(type: String, parameters: [String: String] = [:]) {
        self.type = type
        self.parameters = parameters
    }

    /// Accept: comma-separated media ranges, best first (q-values, then order); q=0 entries dropped.
    static func accept(_ header: String?) -> [MediaType] {
        guard let header, !header.trimmingCharacters(in: " ").isEmpty else { return [MediaType(type: "*/*")] }
        let entries = splitOutsideQuotes(Substring(header), separator: ",").compactMap(MediaType.init)
        return entries.enumerated().filter { $0.element.quality > 0 }
            .sorted { ($0.element.quality, -$0.offset) > ($1.element.quality, -$1.offset) }.map(\.element)
    }

    /// The media type this Accept range asks a route for, the same on every route (Docs/api.md,
    /// "Accept"): `*/*`, `multipart/*` and `multipart/related` without `type` mean the route's
    /// default; `multipart/related; type=X` and a bare `X` mean X; `X/*` means the first of the
    /// route's types under X (else stays as it is, matching nothing).
    func requestedType(routeTypes: [String]) -> String {
        var t = type
        if t == "multipart/related" { t = self["type"]?.lowercased() ?? "*/*" }
        if t == "*/*" || t == "multipart/*" { return routeTypes[0] }
        if t.hasSuffix("/*") { return routeTypes.first { $0.hasPrefix(t.dropLast()) } ?? t }
        return t
    }

    static func splitOutsideQuotes(_ text: Substring, separator: Character) -> [Substring] {
        var out: [Substring] = []
        var start = text.startIndex
        var quoted = false
        var i = text.startIndex
        while i < text.endIndex {
            let c = text[i]
            if c == "\\" && quoted {
                i = text.index(after: i)  // a quoted-pair (RFC 9110 §5.6.4): the next character is literal
                if i == text.endIndex { break }
            } else if c == "\"" { quoted.toggle() } else if c == separator && !quoted {
                out.append(text[start..<i])
                start = text.index(after: i)
            }
            i = text.index(after: i)
        }
        out.append(text[start...])
        return out
    }
}

extension StringProtocol {
    func trimmingCharacters(in chars: String) -> String {
        var s = Substring(self)
        while let f = s.first, chars.contains(f) { s = s.dropFirst() }
        while let l = s.last, chars.contains(l) { s = s.dropLast() }
        return String(s)
    }
}

/// The media types of compressed frames (PS3.18 Table 8.7.3-2) by transfer syntax.
enum FrameMediaType {
    static func forTransferSyntax(_ uid: String) -> String {
        switch uid {
        case "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70": return "image/jpeg"
        case "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81": return "image/jls"
        case "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91": return "image/jp2"
        case "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203": return "image/jphc"
        case "1.2.840.10008.1.2.5": return "image/dicom-rle"
        default: return "application/octet-stream"
        }
    }
}
