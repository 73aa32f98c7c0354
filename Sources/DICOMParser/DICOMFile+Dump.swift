import DICOMCore
import DICOMDictionary

/// A dcmdump-like listing: one line per element, items indented two spaces per level.
/// `(GGGG,EEEE) VR value  # length, VM Keyword`; sequences show `u/l` for undefined lengths.
///
/// The listing is written as UTF-8 bytes into one buffer (`write`): `tessera dump` spent most of
/// its time building, padding and joining Swift strings per element, more than parsing the files.
public enum DICOMDump {
    public static let valueWidth = 64

    public static func lines(_ file: DICOMFile) -> [String] {
        var out: [UInt8] = []
        write(file, to: &out)
        if out.last == 0x0A { out.removeLast() }
        return String(decoding: out, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    }

    /// Keywords already looked up, kept across the files of one listing: a dump of a series asks
    /// the dictionaries for the same few hundred tags in every file, and each answer (an entry
    /// built from the generated tables, a private creator's row) costs more than the line it names.
    /// Not for use from two threads at once.
    public final class KeywordCache {
        var publicKeywords: [UInt32: String] = [:]
        var privateNames: [PrivateKey: String] = [:]
        public init() {}

        struct PrivateKey: Hashable {
            var creator: String
            var tag: UInt32
        }
    }

    /// The listing's lines, each ended by a newline, appended to `out`.
    public static func write(_ file: DICOMFile, to out: inout [UInt8], cache: KeywordCache = KeywordCache()) {
        out.reserveCapacity(out.count + 120 * (file.meta.count + file.dataSet.count + 4))
        if !file.meta.isEmpty {
            out += "# Dicom-Meta-Information-Header\n".utf8
            append(file.meta, depth: 0, cache: cache, to: &out)
        }
        out += "# Dicom-Data-Set\n# Used TransferSyntax: ".utf8
        out += file.transferSyntax.uid.utf8
        if let name = name(ofUID: file.transferSyntax.uid) { out += " (\(name))".utf8 }
        out.append(0x0A)
        append(file.dataSet, depth: 0, cache: cache, to: &out)
    }

    static func name(ofUID uid: String) -> String? { UIDRegistry.entry(for: uid)?.name }

    public static func append(_ ds: DataSet, depth: Int, to out: inout [String]) {
        var bytes: [UInt8] = []
        append(ds, depth: depth, to: &bytes)
        out += String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    static func append(_ ds: DataSet, depth: Int, cache: KeywordCache = KeywordCache(), to out: inout [UInt8]) {
        var keywords = Keywords(ds, cache: cache)
        for e in ds.elements {
            let keyword = keywords.keyword(for: e.tag)
            let length: Int? = e.declaredLength.map { $0 == ElementHeader.undefinedLength ? nil : Int($0) } ?? e.valueLength
            switch e.value {
            case .sequence(let items):
                line(depth, e.tag, e.vr, Text("(Sequence #=\(items.count))"), length, 1, keyword, to: &out)
                for (n, item) in items.enumerated() {
                    indent(depth + 1, &out)
                    out += "(FFFE,E000) na (Item #\(n + 1), \(item.count) elements)\n".utf8
                    append(item, depth: depth + 2, cache: cache, to: &out)
                }
            case .fragments(let f):
                line(depth, e.tag, e.vr, Text("(PixelSequence #=\(f.fragments.count + 1))"), length, 1, keyword, to: &out)
                for (n, r) in ([f.basicOffsetTable] + f.fragments).enumerated() {
                    let what = n == 0 ? "Basic Offset Table" : "Fragment \(n)"
                    indent(depth + 1, &out)
                    out += "(FFFE,E000) pi (\(what) at byte \(r.lowerBound))  # \(r.count), 1 Item\n".utf8
                }
            case .bytes, .bulk:
                let (text, vm) = valueText(e, in: ds)
                line(depth, e.tag, e.vr, text, length, vm, keyword, to: &out)
            }
        }
    }

    /// A value as shown: its UTF-8 bytes and its width in Characters (what the padding counts).
    struct Text {
        var bytes: [UInt8]
        var width: Int
        init(_ s: String) {
            bytes = Array(s.utf8)
            width = bytes.allSatisfy { $0 < 0x80 } ? bytes.count : s.count
        }
        init(ascii: [UInt8]) { bytes = ascii; width = ascii.count }
    }

    @inline(__always) private static func indent(_ depth: Int, _ out: inout [UInt8]) {
        for _ in 0..<(2 * depth) { out.append(0x20) }
    }

    private static let hexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)

    @inline(__always) private static func appendHex(_ v: UInt32, digits: Int, upper: Bool = true, to out: inout [UInt8]) {
        var shift = 4 * (digits - 1)
        while shift >= 0 {
            let d = hexDigits[Int((v >> UInt32(shift)) & 0xF)]
            out.append(!upper && d >= 0x41 ? d + 0x20 : d)
            shift -= 4
        }
    }

    @inline(__always) static func appendDecimal(_ v: Int64, to out: inout [UInt8]) {
        if v < 0 { out.append(0x2D) }
        var m = v.magnitude
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = 0
        withUnsafeMutableBytes(of: &digits) { d in
            repeat { d[n] = UInt8(0x30 + m % 10); m /= 10; n += 1 } while m > 0
            while n > 0 { n -= 1; out.append(d[n]) }
        }
    }

    @inline(__always) private static func appendTag(_ tag: Tag, to out: inout [UInt8]) {
        out.append(0x28)
        appendHex(UInt32(tag.group), digits: 4, to: &out)
        out.append(0x2C)
        appendHex(UInt32(tag.element), digits: 4, to: &out)
        out.append(0x29)
    }

    /// `indent(GGGG,EEEE) VR value`, padded to 52 columns, then ` # length, vm Keyword` (length
    /// right-aligned in 3 columns, `u/l` when undefined).
    private static func line(_ depth: Int, _ tag: Tag, _ vr: VR, _ value: Text, _ length: Int?, _ vm: Int, _ keyword: String,
                             to out: inout [UInt8]) {
        indent(depth, &out)
        appendTag(tag, to: &out)
        out.append(0x20)
        out.append(UInt8(vr.rawValue >> 8)); out.append(UInt8(vr.rawValue & 0xFF))
        out.append(0x20)
        out += value.bytes
        let width = 2 * depth + 15 + value.width
        if width < 52 { for _ in width..<52 { out.append(0x20) } }
        out.append(0x20); out.append(0x23); out.append(0x20)
        if let length {
            if length < 10 { out.append(0x20); out.append(0x20) } else if length < 100 { out.append(0x20) }
            appendDecimal(Int64(length), to: &out)
        } else {
            out += "u/l".utf8
        }
        out.append(0x2C); out.append(0x20)
        appendDecimal(Int64(vm), to: &out)
        out.append(0x20)
        out += keyword.utf8
        out.append(0x0A)
    }

    static func keyword(for tag: Tag, in ds: DataSet) -> String {
        var k = Keywords(ds, cache: KeywordCache())
        return k.keyword(for: tag)
    }

    /// Keywords of one data set's tags; private creators are read once per block rather than once
    /// per element, and dictionary answers come from the listing's `KeywordCache`.
    struct Keywords {
        let ds: DataSet
        let cache: KeywordCache
        var creators: [Tag: String?] = [:]
        init(_ ds: DataSet, cache: KeywordCache) {
            self.ds = ds
            self.cache = cache
        }

        mutating func keyword(for tag: Tag) -> String {
            if tag.isPrivate, !tag.isPrivateCreator {
                guard let creatorTag = tag.privateCreatorTag else { return "PrivateTag" }
                let creator: String?
                if let cached = creators[creatorTag] {
                    creator = cached
                } else {
                    creator = ds.string(creatorTag)
                    creators[creatorTag] = .some(creator)
                }
                guard let creator else { return "PrivateTag" }
                let key = KeywordCache.PrivateKey(creator: creator, tag: tag.rawValue)
                if let known = cache.privateNames[key] { return known }
                var name = "PrivateTag"
                if let entry = DataDictionary.privateEntry(creator: creator, tag: tag), !entry.name.isEmpty { name = entry.name }
                cache.privateNames[key] = name
                return name
            }
            if tag.isPrivateCreator { return "PrivateCreator" }
            if tag.isGroupLength && tag.group != 0x0002 { return "GenericGroupLength" }
            if let known = cache.publicKeywords[tag.rawValue] { return known }
            let keyword = DataDictionary.entry(for: tag)?.keyword ?? "UnknownTag"
            cache.publicKeywords[tag.rawValue] = keyword
            return keyword
        }
    }

    /// The value as dcmdump shows it, shortened to `valueWidth`, and its value multiplicity.
    static func valueText(_ e: DataElement, in ds: DataSet) -> (Text, Int) {
        guard let length = e.valueLength, length > 0 else { return (Text(ascii: Array("(no value available)".utf8)), 0) }
        if e.tag == .pixelData || (e.vr.isBinaryBulk && length > 256) {
            return (Text("(binary data, \(length) bytes)"), 1)
        }
        if e.vr.isString {
            if let fast = asciiStrings(e, in: ds) { return fast }
            let values = e.strings(characterSet: ds.characterSet) ?? []
            return (shorten(values.joined(separator: "\\"), bracketed: true), values.count)
        }
        var joined: [UInt8] = []
        var count = 0
        func next() {
            if count > 0 { joined.append(0x5C) }
            count += 1
        }
        switch e.vr {
        case .AT:
            for t in e.attributeTags(bigEndian: ds.isBigEndian) ?? [] { next(); appendTag(t, to: &joined) }
        case .FL, .FD, .OF, .OD:
            for v in e.doubles(bigEndian: ds.isBigEndian) ?? [] { next(); joined += "\(v)".utf8 }
        case .US, .SS, .UL, .SL, .SV:
            for v in e.integers(bigEndian: ds.isBigEndian) ?? [] { next(); appendDecimal(v, to: &joined) }
        case .UV:
            for v in e.unsigned64(bigEndian: ds.isBigEndian) ?? [] { next(); joined += "\(v)".utf8 }
        case .OW:
            for v in BinaryValues.decode(e.valueBytes ?? [], as: UInt16.self, bigEndian: ds.isBigEndian) {
                next(); appendHex(UInt32(v), digits: 4, upper: false, to: &joined)
            }
        case .OL:
            for v in BinaryValues.decode(e.valueBytes ?? [], as: UInt32.self, bigEndian: ds.isBigEndian) { next(); joined += String(v, radix: 16).utf8 }
        default:
            for b in e.valueBytes ?? [] { next(); appendHex(UInt32(b), digits: 2, upper: false, to: &joined) }
        }
        let vm = e.vr.isBinaryBulk ? 1 : count
        return (shortenASCII(joined, bracketed: false), vm)
    }

    /// Text values whose bytes are ASCII in a character set that reads ASCII as itself, listed
    /// straight from the bytes with the trimming `DataElement.strings` applies; nil otherwise.
    private static func asciiStrings(_ e: DataElement, in ds: DataSet) -> (Text, Int)? {
        guard let bytes = e.valueBytes, !bytes.isEmpty, bytes.allSatisfy({ $0 < 0x80 && $0 != 0x1B }) else { return nil }
        guard !e.vr.usesSpecificCharacterSet || ds.characterSet.readsASCIIAsASCII else { return nil }
        var joined: [UInt8] = []
        joined.reserveCapacity(bytes.count)
        var count = 0
        func add(_ value: ArraySlice<UInt8>) {
            var s = value
            while let c = s.last, c == 0x20 || c == 0 { s = s.dropLast() }
            switch e.vr {
            case .AE, .AS, .CS, .DA, .DS, .DT, .IS, .TM, .UI:
                while let c = s.first, c == 0x20 { s = s.dropFirst() }
            case .PN:
                while let c = s.last, c == 0x3D { s = s.dropLast() }
            default: break
            }
            if count > 0 { joined.append(0x5C) }
            joined += s
            count += 1
        }
        if e.vr.isSingleValuedText {
            add(bytes[...])
        } else {
            for part in bytes.split(separator: 0x5C, omittingEmptySubsequences: false) { add(part) }
        }
        return (shortenASCII(joined, bracketed: true), count)
    }

    /// Keeps one line per element: control characters are shown escaped, long values cut.
    private static func shortenASCII(_ s: [UInt8], bracketed: Bool) -> Text {
        var out: [UInt8] = []
        out.reserveCapacity(min(s.count, valueWidth) + 5)
        if bracketed { out.append(0x5B) }
        let start = out.count
        for b in s {
            switch b {
            case 0x0A: out.append(0x5C); out.append(0x6E)
            case 0x0D: out.append(0x5C); out.append(0x72)
            case 0x09: out.append(0x5C); out.append(0x74)
            case _ where b < 0x20 || b == 0x7F: out.append(0x2E)
            default: out.append(b)
            }
            if out.count - start > valueWidth {
                out.removeSubrange((start + valueWidth - 3)...)
                out += "...".utf8
                break
            }
        }
        if bracketed { out.append(0x5D) }
        return Text(ascii: out)
    }

    /// As `shortenASCII`, for text that is not all ASCII (counted in Characters, as before).
    private static func shorten(_ s: String, bracketed: Bool) -> Text {
        if s.utf8.allSatisfy({ $0 < 0x80 }) { return shortenASCII(Array(s.utf8), bracketed: bracketed) }
        var out = ""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F: out += "."
            default: out.unicodeScalars.append(scalar)
            }
            if out.count > valueWidth { out = String(out.prefix(valueWidth - 3)) + "..."; break }
        }
        return Text(bracketed ? "[" + out + "]" : out)
    }
}
