#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DICOMCore

/// Decodes text with ISO 2022 code extensions (PS3.5 §6.1.2.5): escape sequences designate sets to
/// G0 (bytes 0x21–0x7E) and G1 (0xA1–0xFE). Designations return to those of the first value at
/// CR, LF, FF, TAB, at `\` between values, and for PN at `^` and `=` (PS3.5 §6.1.2.5.3) — but
/// only where those bytes are characters, not halves of a two-byte code.
struct ISO2022Decoder {
    let initial: Repertoire
    let vr: VR

    private var initialG0: Repertoire {
        initial == .jisX0201 ? .jisX0201 : (initial.isMultiByte && isG0(initial) ? initial : .ascii)
    }
    private var initialG1: Repertoire? { isG0(initial) ? nil : initial }

    init(initial: Repertoire, vr: VR) {
        self.initial = initial
        self.vr = vr
    }

    private func isG0(_ r: Repertoire) -> Bool {
        switch r {
        case .jisX0208, .jisX0212, .ascii: return true
        default: return false
        }
    }

    func decode(_ bytes: [UInt8]) -> String {
        decodeValues(bytes, splitting: false).joined(separator: "\\")
    }

    func decodeValues(_ bytes: [UInt8]) -> [String] {
        decodeValues(bytes, splitting: true)
    }

    private func decodeValues(_ bytes: [UInt8], splitting: Bool) -> [String] {
        var values: [String] = []
        var current = ""
        var g0 = initialG0
        var g1 = initialG1
        var run: [UInt8] = []
        var runIsG1 = false

        func flush() {
            guard !run.isEmpty else { return }
            if runIsG1 {
                current += (g1 ?? .ascii).decode(run[...])
            } else {
                current += g0 == .ascii || g0 == .jisX0201 ? (g0 == .jisX0201 ? Repertoire.jisX0201.decode(run[...]) : Repertoire.ascii.decode(run[...]))
                    : g0.decode(run[...])
            }
            run.removeAll(keepingCapacity: true)
        }

        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            if b == 0x1B, let (designation, length) = parseEscape(bytes, at: i) {
                flush()
                switch designation {
                case .g0(let r): g0 = r
                case .g1(let r): g1 = r
                }
                i += length
                continue
            }
            let inTwoByteG0 = b < 0x80 && g0.isMultiByte
            if !inTwoByteG0 && isDelimiter(b) {
                flush()
                if b == 0x5C && splitting {
                    values.append(current)
                    current = ""
                } else {
                    current.unicodeScalars.append(Unicode.Scalar(b))
                }
                g0 = initialG0
                g1 = initialG1
                i += 1
                continue
            }
            let isG1 = b >= 0x80
            if isG1 != runIsG1 { flush(); runIsG1 = isG1 }
            // Control characters other than delimiters pass through as themselves.
            if b < 0x20 && !g0.isMultiByte {
                flush()
                current.unicodeScalars.append(Unicode.Scalar(b))
                i += 1
                continue
            }
            let width = (isG1 ? (g1?.isMultiByte ?? false) : g0.isMultiByte) ? 2 : 1
            run.append(contentsOf: bytes[i..<min(i + width, bytes.count)])
            i += width
        }
        flush()
        values.append(current)
        return values
    }

    private func isDelimiter(_ b: UInt8) -> Bool {
        switch b {
        case 0x0D, 0x0A, 0x0C, 0x09, 0x5C: return true
        case 0x5E, 0x3D: return vr == .PN
        default: return false
        }
    }

    enum Designation { case g0(Repertoire), g1(Repertoire) }

    /// The designation an escape sequence at `i` makes, and its length; nil for unknown sequences
    /// (whose bytes are then decoded as text, like pydicom does).
    private func parseEscape(_ bytes: [UInt8], at i: Int) -> (Designation, Int)? {
        func at(_ k: Int) -> UInt8? { i + k < bytes.count ? bytes[i + k] : nil }
        switch (at(1), at(2), at(3)) {
        case (0x28, 0x42, _): return (.g0(.ascii), 3)            // ESC ( B  ISO 646
        case (0x28, 0x4A, _): return (.g0(.jisX0201), 3)         // ESC ( J  JIS X 0201 romaji
        case (0x29, 0x49, _): return (.g1(.jisX0201), 3)         // ESC ) I  JIS X 0201 katakana
        case (0x24, 0x42, _): return (.g0(.jisX0208), 3)         // ESC $ B  JIS X 0208
        case (0x24, 0x28, 0x44): return (.g0(.jisX0212), 4)      // ESC $ ( D  JIS X 0212
        case (0x24, 0x29, 0x43): return (.g1(.ksX1001), 4)       // ESC $ ) C  KS X 1001
        case (0x24, 0x29, 0x41): return (.g1(.gb2312), 4)        // ESC $ ) A  GB 2312
        case (0x2D, let f?, _):                                  // ESC - F  96-character sets
            guard let (number, _) = Repertoire.singleByteSets.first(where: { $0.value.1 == f }),
                  let r = Repertoire(term: "ISO 2022 IR \(number)") else { return nil }
            return (.g1(r), 3)
        default: return nil
        }
    }
}

/// glibc iconv, opened per call: `iconv_t` is not thread-safe and opening costs microseconds.
enum Iconv {
    static func decode(_ bytes: [UInt8], from encoding: String) -> String {
        guard !bytes.isEmpty else { return "" }
        guard let out = convert(bytes, from: encoding, to: "UTF-8") else {
            return String(repeating: "\u{FFFD}", count: 1)
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func encode(_ string: String, to encoding: String) -> [UInt8]? {
        convert(Array(string.utf8), from: "UTF-8", to: encoding, strict: true)
    }

    /// Converts, replacing undecodable input bytes with U+FFFD unless `strict`.
    static func convert(_ input: [UInt8], from: String, to: String, strict: Bool = false) -> [UInt8]? {
        let cd = iconv_open(to, from)
        guard cd != iconv_t(bitPattern: -1) else { return nil }
        defer { iconv_close(cd) }
        var output = [UInt8](repeating: 0, count: input.count * 4 + 16)
        var inputCopy = input
        var produced = 0
        let ok: Bool = inputCopy.withUnsafeMutableBytes { inRaw in
            output.withUnsafeMutableBytes { outRaw in
                var inPtr = inRaw.baseAddress?.assumingMemoryBound(to: CChar.self)
                var inLeft = inRaw.count
                var outPtr = outRaw.baseAddress?.assumingMemoryBound(to: CChar.self)
                var outLeft = outRaw.count
                while inLeft > 0 {
                    if iconv(cd, &inPtr, &inLeft, &outPtr, &outLeft) != -1 { break }
                    if strict || errno == E2BIG { return false }
                    // EILSEQ / EINVAL: skip one byte, emit U+FFFD (when decoding to UTF-8).
                    inPtr = inPtr.map { $0 + 1 }
                    inLeft -= 1
                    if to == "UTF-8", outLeft >= 3 {
                        for byte in [0xEF, 0xBF, 0xBD] as [UInt8] {
                            outPtr?.pointee = CChar(bitPattern: byte)
                            outPtr = outPtr.map { $0 + 1 }
                        }
                        outLeft -= 3
                    }
                }
                produced = outRaw.count - outLeft
                return true
            }
        }
        return ok ? Array(output[0..<produced]) : nil
    }
}
