import DICOMCore
import DICOMDictionary

/// A dcmdump-like listing: one line per element, items indented two spaces per level.
/// `(GGGG,EEEE) VR value  # length, VM Keyword`; sequences show `u/l` for undefined lengths.
public enum DICOMDump {
    public static let valueWidth = 64

    public static func lines(_ file: DICOMFile) -> [String] {
        var out: [String] = []
        if !file.meta.isEmpty {
            out.append("# Dicom-Meta-Information-Header")
            append(file.meta, depth: 0, to: &out)
        }
        out.append("# Dicom-Data-Set")
        out.append("# Used TransferSyntax: \(file.transferSyntax.uid)\(name(ofUID: file.transferSyntax.uid).map { " (\($0))" } ?? "")")
        append(file.dataSet, depth: 0, to: &out)
        return out
    }

    static func name(ofUID uid: String) -> String? { UIDRegistry.entry(for: uid)?.name }

    public static func append(_ ds: DataSet, depth: Int, to out: inout [String]) {
        let indent = String(repeating: "  ", count: depth)
        for e in ds.elements {
            let keyword = keyword(for: e.tag, in: ds)
            let lengthText = e.declaredLength.map { $0 == ElementHeader.undefinedLength ? "u/l" : String($0) }
                ?? e.valueLength.map(String.init) ?? "u/l"
            switch e.value {
            case .sequence(let items):
                out.append(line(indent, e.tag, e.vr, "(Sequence #=\(items.count))", lengthText, 1, keyword))
                for (n, item) in items.enumerated() {
                    out.append("\(indent)  (FFFE,E000) na (Item #\(n + 1), \(item.count) elements)")
                    append(item, depth: depth + 2, to: &out)
                }
            case .fragments(let f):
                out.append(line(indent, e.tag, e.vr, "(PixelSequence #=\(f.fragments.count + 1))", lengthText, 1, keyword))
                for (n, r) in ([f.basicOffsetTable] + f.fragments).enumerated() {
                    let what = n == 0 ? "Basic Offset Table" : "Fragment \(n)"
                    out.append("\(indent)  (FFFE,E000) pi (\(what) at byte \(r.lowerBound))  # \(r.count), 1 Item")
                }
            case .bytes, .bulk:
                let (text, vm) = valueText(e, in: ds)
                out.append(line(indent, e.tag, e.vr, text, lengthText, vm, keyword))
            }
        }
    }

    private static func line(_ indent: String, _ tag: Tag, _ vr: VR, _ value: String, _ length: String, _ vm: Int, _ keyword: String) -> String {
        var head = "\(indent)\(tag) \(vr.code) \(value)"
        let target = 52
        if head.count < target { head += String(repeating: " ", count: target - head.count) }
        let len = length.count < 3 ? String(repeating: " ", count: 3 - length.count) + length : length
        return "\(head) # \(len), \(vm) \(keyword)"
    }

    static func keyword(for tag: Tag, in ds: DataSet) -> String {
        if tag.isPrivate, !tag.isPrivateCreator {
            if let creatorTag = tag.privateCreatorTag, let creator = ds.string(creatorTag),
               let entry = DataDictionary.privateEntry(creator: creator, tag: tag) {
                return entry.name.isEmpty ? "PrivateTag" : entry.name
            }
            return "PrivateTag"
        }
        if tag.isPrivateCreator { return "PrivateCreator" }
        if tag.isGroupLength && tag.group != 0x0002 { return "GenericGroupLength" }
        return DataDictionary.entry(for: tag)?.keyword ?? "UnknownTag"
    }

    /// The value as dcmdump shows it, shortened to `valueWidth`, and its value multiplicity.
    static func valueText(_ e: DataElement, in ds: DataSet) -> (String, Int) {
        guard let length = e.valueLength, length > 0 else { return ("(no value available)", 0) }
        if e.tag == .pixelData || (e.vr.isBinaryBulk && length > 256) {
            return ("(binary data, \(length) bytes)", 1)
        }
        var values: [String]
        if e.vr.isString {
            values = (e.strings(characterSet: ds.characterSet) ?? []).map { $0 }
            let joined = values.joined(separator: "\\")
            return ("[" + shorten(joined) + "]", values.count)
        }
        switch e.vr {
        case .AT: values = (e.attributeTags(bigEndian: ds.isBigEndian) ?? []).map { "\($0)" }
        case .FL, .FD, .OF, .OD: values = (e.doubles(bigEndian: ds.isBigEndian) ?? []).map { "\($0)" }
        case .US, .SS, .UL, .SL, .SV: values = (e.integers(bigEndian: ds.isBigEndian) ?? []).map { "\($0)" }
        case .UV: values = (e.unsigned64(bigEndian: ds.isBigEndian) ?? []).map { "\($0)" }
        case .OW:
            values = BinaryValues.decode(e.valueBytes ?? [], as: UInt16.self, bigEndian: ds.isBigEndian).map { hexWord($0) }
        case .OL:
            values = BinaryValues.decode(e.valueBytes ?? [], as: UInt32.self, bigEndian: ds.isBigEndian).map { String($0, radix: 16) }
        default:
            values = (e.valueBytes ?? []).map { hex($0).lowercased() }
        }
        let vm = e.vr.isBinaryBulk ? 1 : values.count
        return (shorten(values.joined(separator: "\\")), vm)
    }

    private static func hexWord(_ v: UInt16) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 4 - s.count) + s
    }

    /// Keeps one line per element: control characters are shown escaped, long values cut.
    private static func shorten(_ s: String) -> String {
        var out = ""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F: out += "."
            default: out.unicodeScalars.append(scalar)
            }
            if out.count > valueWidth { return String(out.prefix(valueWidth - 3)) + "..." }
        }
        return out
    }
}
