import DICOMCore
import DICOMParser

extension DataSet {
    /// Describes the first difference between two data sets (tags, VRs, value bytes in little-endian
    /// order, items, fragments), or nil when they are equivalent. Odd-length values compare equal to
    /// their padded form, since a writer must pad them.
    public func firstDifference(from other: DataSet, path: String = "") -> String? {
        guard tags == other.tags else {
            let a = Set(tags), b = Set(other.tags)
            return "\(path) tags differ: only left \(a.subtracting(b).sorted().prefix(5)), only right \(b.subtracting(a).sorted().prefix(5))"
        }
        for (x, y) in zip(elements, other.elements) {
            let here = "\(path)\(x.tag)"
            guard x.vr == y.vr else { return "\(here) VR \(x.vr) vs \(y.vr)" }
            switch (x.value, y.value) {
            case (.sequence(let xi), .sequence(let yi)):
                guard xi.count == yi.count else { return "\(here) \(xi.count) vs \(yi.count) items" }
                for (n, (a, b)) in zip(xi, yi).enumerated() {
                    if let d = a.firstDifference(from: b, path: "\(here)[\(n)].") { return d }
                }
            case (.fragments(let a), .fragments(let b)):
                let fa = ([a.basicOffsetTable] + a.fragments).map { a.storage.copy($0) ?? [] }
                let fb = ([b.basicOffsetTable] + b.fragments).map { b.storage.copy($0) ?? [] }
                guard fa.count == fb.count else { return "\(here) \(fa.count) vs \(fb.count) fragments" }
                for (n, (p, q)) in zip(fa, fb).enumerated() where p != q && p + [0] != q {
                    return "\(here) fragment \(n) differs"
                }
            case (.sequence, _), (_, .sequence), (.fragments, _), (_, .fragments):
                return "\(here) value kinds differ"
            default:
                let a = littleEndianBytes(x, bigEndian: isBigEndian)
                let b = littleEndianBytes(y, bigEndian: other.isBigEndian)
                if a != b && a + [x.vr.paddingByte] != b && a != b + [y.vr.paddingByte] {
                    return "\(here) values differ (\(a.count) vs \(b.count) bytes)"
                }
            }
        }
        return nil
    }

    private func littleEndianBytes(_ e: DataElement, bigEndian: Bool) -> [UInt8] {
        let bytes = e.valueBytes ?? []
        guard bigEndian else { return bytes }
        let width = e.vr == .AT ? 2 : (e.vr.numericWidth ?? 1)
        var out = bytes
        var i = 0
        while width > 1 && i + width <= out.count { out[i..<(i + width)].reverse(); i += width }
        return out
    }
}
