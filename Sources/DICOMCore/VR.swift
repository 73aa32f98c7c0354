/// Value Representation (PS3.5 §6.2).
public enum VR: UInt16, CaseIterable, Sendable, Hashable {
    // Raw value is the two ASCII characters, first in the high byte, so that an explicit-VR header
    // maps to a case with one integer comparison.
    case AE = 0x4145, AS = 0x4153, AT = 0x4154, CS = 0x4353, DA = 0x4441, DS = 0x4453, DT = 0x4454
    case FD = 0x4644, FL = 0x464C, IS = 0x4953, LO = 0x4C4F, LT = 0x4C54, OB = 0x4F42, OD = 0x4F44
    case OF = 0x4F46, OL = 0x4F4C, OV = 0x4F56, OW = 0x4F57, PN = 0x504E, SH = 0x5348, SL = 0x534C
    case SQ = 0x5351, SS = 0x5353, ST = 0x5354, SV = 0x5356, TM = 0x544D, UC = 0x5543, UI = 0x5549
    case UL = 0x554C, UN = 0x554E, UR = 0x5552, US = 0x5553, UT = 0x5554, UV = 0x5556

    /// From the two header bytes of an explicit-VR element; nil when they are not a known VR.
    @inlinable public init?(byte0: UInt8, byte1: UInt8) {
        self.init(rawValue: UInt16(byte0) << 8 | UInt16(byte1))
    }

    public init?(code: some StringProtocol) {
        let u = Array(code.utf8)
        guard u.count == 2 else { return nil }
        self.init(byte0: u[0], byte1: u[1])
    }

    public var code: String {
        String(decoding: [UInt8(rawValue >> 8), UInt8(rawValue & 0xFF)], as: UTF8.self)
    }

    /// Explicit-VR encodings of these use 2 reserved bytes and a 32-bit length (PS3.5 Table 7.1-1).
    public var hasLongExplicitLength: Bool {
        switch self {
        case .OB, .OD, .OF, .OL, .OV, .OW, .SQ, .SV, .UC, .UN, .UR, .UT, .UV: return true
        default: return false
        }
    }

    /// Character-string VRs, whose values are text (possibly multi-valued with `\`).
    public var isString: Bool {
        switch self {
        case .AE, .AS, .CS, .DA, .DS, .DT, .IS, .LO, .LT, .PN, .SH, .ST, .TM, .UC, .UI, .UR, .UT: return true
        default: return false
        }
    }

    /// String VRs decoded with the Specific Character Set; the rest are always ISO 646 (ASCII).
    public var usesSpecificCharacterSet: Bool {
        switch self {
        case .LO, .LT, .PN, .SH, .ST, .UC, .UT: return true
        default: return false
        }
    }

    /// VRs whose value is never split on backslash (single-valued by definition).
    public var isSingleValuedText: Bool {
        switch self {
        case .LT, .ST, .UT, .UR: return true
        default: return false
        }
    }

    /// Byte used to pad a value to even length: NUL for UI and binary VRs, space for other strings.
    public var paddingByte: UInt8 {
        (isString && self != .UI) ? 0x20 : 0x00
    }

    /// Size of one binary number for numeric VRs (used for byte swapping and typed access); nil otherwise.
    public var numericWidth: Int? {
        switch self {
        case .SS, .US, .OW: return 2
        case .SL, .UL, .FL, .OF, .OL, .AT: return 4
        case .FD, .OD, .SV, .UV, .OV: return 8
        default: return nil
        }
    }

    /// Binary VRs carried as bulk data in DICOM JSON (InlineBinary / BulkDataURI).
    public var isBinaryBulk: Bool {
        switch self {
        case .OB, .OD, .OF, .OL, .OV, .OW, .UN: return true
        default: return false
        }
    }
}

extension VR: CustomStringConvertible {
    public var description: String { code }
}
