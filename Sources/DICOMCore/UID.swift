/// Unique identifier rules of PS3.5 §9.1.
public enum UID {
    public static let maximumLength = 64

    /// Valid when 1–64 characters of digits and dots, components non-empty and without leading
    /// zeros (a lone `0` is allowed). Trailing NUL padding must be trimmed first (see `trimmed`).
    /// Inlinable so that callers in other modules get it specialised for their string type: the
    /// generic copy walked `utf8` through protocol witnesses (1 % of a stored frame's CPU, perf).
    @inlinable
    public static func isValid(_ uid: some StringProtocol) -> Bool {
        let bytes = uid.utf8
        guard !bytes.isEmpty, bytes.count <= maximumLength else { return false }
        var componentLength = 0
        var leadingZero = false
        for b in bytes {
            if b == UInt8(ascii: ".") {
                if componentLength == 0 { return false }
                componentLength = 0
                leadingZero = false
            } else if b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") {
                if leadingZero { return false }
                if componentLength == 0 && b == UInt8(ascii: "0") { leadingZero = true }
                componentLength += 1
            } else {
                return false
            }
        }
        return componentLength > 0
    }

    /// Removes the NUL (and, leniently, space) padding that makes UI values even-length.
    public static func trimmed(_ uid: String) -> String {
        var s = Substring(uid)
        while let last = s.utf8.last, last == 0 || last == 0x20 { s = s.dropLast() }
        while let first = s.utf8.first, first == 0x20 { s = s.dropFirst() }
        return String(s)
    }

    /// Checks a UID received from outside, naming the attribute in the error.
    public static func validate(_ uid: String, for tag: Tag? = nil) throws(DICOMError) -> String {
        let t = trimmed(uid)
        guard isValid(t) else {
            throw DICOMError(.invalidUID, tag: tag, message: "'\(t.prefix(80))' is not a valid UID (PS3.5 §9.1)")
        }
        return t
    }
}
