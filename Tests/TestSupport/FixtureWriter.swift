import DICOMCore

/// Writes data-set bytes by hand, element by element, so parser tests can state exactly which bytes
/// they feed in (including malformed ones no real writer would produce).
public struct FixtureWriter {
    public private(set) var bytes: [UInt8] = []
    public let explicitVR: Bool
    public let bigEndian: Bool

    public init(explicitVR: Bool = true, bigEndian: Bool = false) {
        self.explicitVR = explicitVR
        self.bigEndian = bigEndian
    }

    public mutating func u16(_ v: UInt16) { withUnsafeBytes(of: bigEndian ? v.bigEndian : v.littleEndian) { bytes += $0 } }
    public mutating func u32(_ v: UInt32) { withUnsafeBytes(of: bigEndian ? v.bigEndian : v.littleEndian) { bytes += $0 } }
    public mutating func raw(_ b: [UInt8]) { bytes += b }

    public mutating func header(_ tag: UInt32, _ vr: VR, length: UInt32) {
        u16(UInt16(tag >> 16)); u16(UInt16(tag & 0xFFFF))
        if explicitVR {
            bytes += [UInt8(vr.rawValue >> 8), UInt8(vr.rawValue & 0xFF)]
            if vr.hasLongExplicitLength { bytes += [0, 0]; u32(length) } else { u16(UInt16(truncatingIfNeeded: length)) }
        } else {
            u32(length)
        }
    }

    public mutating func element(_ tag: UInt32, _ vr: VR, _ value: [UInt8]) {
        header(tag, vr, length: UInt32(value.count))
        bytes += value
    }

    /// A text value, padded to even length with the VR's padding byte.
    public mutating func element(_ tag: UInt32, _ vr: VR, _ text: String) {
        var value = Array(text.utf8)
        if value.count % 2 == 1 { value.append(vr.paddingByte) }
        element(tag, vr, value)
    }

    public mutating func us(_ tag: UInt32, _ values: UInt16...) {
        header(tag, .US, length: UInt32(values.count * 2))
        for v in values { u16(v) }
    }

    /// Item or delimiter: tag and 32-bit length, no VR.
    public mutating func delimiter(_ tag: UInt32, length: UInt32 = 0) {
        u16(UInt16(tag >> 16)); u16(UInt16(tag & 0xFFFF)); u32(length)
    }

    public mutating func sequenceStart(_ tag: UInt32, length: UInt32 = 0xFFFF_FFFF, vr: VR = .SQ) { header(tag, vr, length: length) }
    public mutating func itemStart(length: UInt32 = 0xFFFF_FFFF) { delimiter(0xFFFE_E000, length: length) }
    public mutating func itemEnd() { delimiter(0xFFFE_E00D) }
    public mutating func sequenceEnd() { delimiter(0xFFFE_E0DD) }

    /// A Part 10 file around `dataSet` bytes: preamble, DICM, a minimal meta group naming `syntax`.
    public static func part10(syntax: String, dataSet: [UInt8], sopClass: String = "1.2.840.10008.5.1.4.1.1.7",
                              sopInstance: String = "1.2.3.4.5") -> [UInt8] {
        var meta = FixtureWriter()
        meta.element(0x0002_0001, .OB, [0, 1])
        meta.element(0x0002_0002, .UI, sopClass)
        meta.element(0x0002_0003, .UI, sopInstance)
        meta.element(0x0002_0010, .UI, syntax)
        let out = [UInt8](repeating: 0, count: 128) + Array("DICM".utf8)
        var group = FixtureWriter()
        group.element(0x0002_0000, .UL, withUnsafeBytes(of: UInt32(meta.bytes.count).littleEndian) { Array($0) })
        return out + group.bytes + meta.bytes + dataSet
    }
}
