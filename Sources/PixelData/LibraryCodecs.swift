import CCodecs
import DICOMCore

/// What a C codec handed back: samples of `info.bytes_per_sample` bytes, interleaved, little endian.
struct CodecOutput {
    var info: ccodecs_info
    var bytes: [UInt8]

    /// The NUL-terminated message a C codec wrote into `message`.
    static func text(_ message: [CChar]) -> String {
        String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Calls a `ccodecs_*_decode`-shaped function and takes ownership of its malloc'ed output.
    static func call(_ body: (UnsafeMutablePointer<ccodecs_info>, UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>,
                              UnsafeMutablePointer<Int>, UnsafeMutablePointer<CChar>, Int) -> Int32) throws(DICOMError) -> CodecOutput {
        var info = ccodecs_info()
        var out: UnsafeMutablePointer<UInt8>?
        var length = 0
        var message = [CChar](repeating: 0, count: 256)
        let rc = message.withUnsafeMutableBufferPointer { m in
            body(&info, &out, &length, m.baseAddress!, m.count)
        }
        defer { ccodecs_free(out) }
        guard rc == 0, let out else {
            let text = CodecOutput.text(message)
            throw DICOMError(.invalidValue, tag: .pixelData, message: text.isEmpty ? "the codec failed" : text)
        }
        return CodecOutput(info: info, bytes: Array(UnsafeBufferPointer(start: out, count: length)))
    }

    /// Turns codec samples into the DICOM frame: checks the geometry against the data set, widens
    /// or narrows to Bits Allocated, and applies the sign correction pydicom applies when the
    /// codestream's signedness disagrees with Pixel Representation (PS3.5 §8.2.4 allows neither,
    /// real files do both).
    func frame(for d: PixelDescription, signednessFromStream: Bool) throws(DICOMError) -> DecodedFrame {
        guard Int(info.width) == d.columns, Int(info.height) == d.rows, Int(info.components) == d.samplesPerPixel else {
            throw DICOMError(.invalidValue, tag: .pixelData, message:
                "codestream is \(info.width)×\(info.height)×\(info.components), the data set says \(d.columns)×\(d.rows)×\(d.samplesPerPixel)")
        }
        guard d.bitsAllocated % 8 == 0, d.bitsAllocated <= 32, d.bitsAllocated >= Int(info.precision) || d.bitsAllocated >= 8 * Int(info.bytes_per_sample) else {
            throw DICOMError(.invalidValue, tag: .bitsAllocated, message:
                "codestream precision \(info.precision) does not fit Bits Allocated \(d.bitsAllocated)")
        }
        let from = Int(info.bytes_per_sample), to = d.bitsAllocated / 8
        var bytes = bytes
        if from != to {
            // Sign-extend (signed streams) or zero-extend into the wider container.
            let count = bytes.count / from
            var widened = [UInt8](repeating: 0, count: count * to)
            let signed = info.is_signed != 0
            for i in 0..<count {
                var v: UInt32 = 0
                for b in 0..<from { v |= UInt32(bytes[i * from + b]) << (8 * UInt32(b)) }
                if signed && from < 4 {
                    let shift = UInt32(32 - 8 * from)
                    v = UInt32(bitPattern: Int32(bitPattern: v << shift) >> Int32(shift))
                }
                for b in 0..<to { widened[i * to + b] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(b))) }
            }
            bytes = widened
        }
        let streamSigned = signednessFromStream ? info.is_signed != 0 : false
        if streamSigned != d.isSigned || !signednessFromStream {
            SampleLayout.correctUnusedBits(&bytes, bitsAllocated: d.bitsAllocated, bitsStored: Int(info.precision), signed: d.isSigned)
        }
        var desc = d
        desc.numberOfFrames = 1
        desc.planarConfiguration = 0
        return DecodedFrame(bytes: bytes, description: desc)
    }
}

/// JPEG 2000 (lossless and lossy) and HTJ2K decoding through OpenJPEG, and JPEG 2000 lossless encoding.
public struct OpenJPEGCodec: ReducedResolutionDecoder, PixelEncoder {
    /// Threads OpenJPEG may use for one frame; 1 keeps a server's cores for parallel requests.
    public var threads: Int
    public init(threads: Int = 1) { self.threads = threads }

    public var transferSyntaxUIDs: [String] {
        ["1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"]
    }
    public var transferSyntaxUID: String { "1.2.840.10008.1.2.4.90" }

    public func decode(_ encoded: [UInt8], description d: PixelDescription) throws(DICOMError) -> DecodedFrame {
        try decode(encoded, description: d, reduce: 0)
    }

    public func decode(_ encoded: [UInt8], description d: PixelDescription, reduce: Int) throws(DICOMError) -> DecodedFrame {
        let output = try encoded.withUnsafeBufferPointer { (src) throws(DICOMError) -> CodecOutput in
            try CodecOutput.call { info, out, length, err, errLength in
                ccodecs_j2k_decode_reduced(src.baseAddress, src.count, Int32(threads), UInt32(clamping: max(reduce, 0)), d.samplesPerFrame,
                                           info, out, length, err, errLength)
            }
        }
        // Reduced samples are averages of the stream's values: when its signedness disagrees with
        // Pixel Representation they were averaged across the wrap and no sign correction mends
        // them. Decode in full, the renderer halves the corrected samples.
        if output.info.reduce > 0 && (output.info.is_signed != 0) != d.isSigned {
            return try decode(encoded, description: d, reduce: 0)
        }
        var frame = try output.frame(for: d.reduced(by: Int(output.info.reduce)), signednessFromStream: true)
        // The decoder has undone the RCT/ICT; YBR_RCT/YBR_ICT data are RGB from here on.
        if output.info.color_transformed != 0 || ["YBR_RCT", "YBR_ICT"].contains(d.photometricInterpretation) {
            frame.description.photometricInterpretation = "RGB"
        }
        return frame
    }

    public func encode(_ frame: [UInt8], description d: PixelDescription) throws(DICOMError) -> (bytes: [UInt8], description: PixelDescription) {
        var info = try Self.encodeInfo(d, frame: frame)
        let mct = d.samplesPerPixel == 3 && d.photometricInterpretation == "RGB"
        let bytes = try Self.callEncoder { out, length, err, errLength in
            frame.withUnsafeBufferPointer { src in
                ccodecs_j2k_encode(src.baseAddress, src.count, &info, mct ? 1 : 0, out, length, err, errLength)
            }
        }
        var desc = d
        desc.planarConfiguration = 0
        if mct { desc.photometricInterpretation = "YBR_RCT" }
        return (bytes, desc)
    }

    static func encodeInfo(_ d: PixelDescription, frame: [UInt8]) throws(DICOMError) -> ccodecs_info {
        guard [8, 16].contains(d.bitsAllocated), d.bitsStored <= 16 else {
            throw DICOMError(.invalidValue, tag: .bitsAllocated, message: "lossless JPEG 2000 encoding takes 8- or 16-bit samples, not \(d.bitsAllocated)")
        }
        guard d.samplesPerPixel == 1 || d.samplesPerPixel == 3 else {
            throw DICOMError(.invalidValue, tag: .samplesPerPixel, message: "cannot encode \(d.samplesPerPixel) samples per pixel")
        }
        guard frame.count >= d.samplesPerFrame * d.bytesPerSample else { throw NativeCodec.short(frame.count, d.samplesPerFrame * d.bytesPerSample) }
        var info = ccodecs_info()
        info.width = UInt32(d.columns)
        info.height = UInt32(d.rows)
        info.components = UInt32(d.samplesPerPixel)
        info.precision = UInt32(d.bitsStored)
        info.is_signed = Int32(d.pixelRepresentation)
        info.bytes_per_sample = UInt32(d.bytesPerSample)
        return info
    }

    static func callEncoder(_ body: (UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>, UnsafeMutablePointer<Int>,
                                     UnsafeMutablePointer<CChar>, Int) -> Int32) throws(DICOMError) -> [UInt8] {
        var out: UnsafeMutablePointer<UInt8>?
        var length = 0
        var message = [CChar](repeating: 0, count: 256)
        let rc = message.withUnsafeMutableBufferPointer { m in body(&out, &length, m.baseAddress!, m.count) }
        defer { ccodecs_free(out) }
        guard rc == 0, let out else {
            let text = CodecOutput.text(message)
            throw DICOMError(.invalidValue, message: text.isEmpty ? "the encoder failed" : text)
        }
        var bytes = Array(UnsafeBufferPointer(start: out, count: length))
        if bytes.count % 2 == 1 { bytes.append(0) }  // fragments are even-length; trailing 0 after EOC is harmless
        return bytes
    }
}

/// JPEG baseline and extended (processes 1 and 2/4): 8-bit samples through libjpeg(-turbo), 12-bit
/// samples (process 4, Bits Stored > 8) through DCMTK's libijg12. The stream's frame header says
/// which, not the data set: Bits Stored may say 12 over an 8-bit stream (it is widened), and the
/// two libraries each refuse the other's precision.
public struct LibJPEGCodec: PixelDecoder {
    public init() {}
    public var transferSyntaxUIDs: [String] { ["1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"] }

    public func decode(_ encoded: [UInt8], description d: PixelDescription) throws(DICOMError) -> DecodedFrame {
        // DICOM says RGB: a stream without JFIF/Adobe markers holds RGB components, untransformed.
        let assumeRGB: Int32 = d.photometricInterpretation == "RGB" ? 1 : 0
        let output = try encoded.withUnsafeBufferPointer { (src) throws(DICOMError) -> CodecOutput in
            let decode = ccodecs_jpeg_sof_precision(src.baseAddress, src.count) == 12 ? ccodecs_jpeg12_decode : ccodecs_jpeg_decode
            return try CodecOutput.call { info, out, length, err, errLength in
                decode(src.baseAddress, src.count, assumeRGB, d.samplesPerFrame, info, out, length, err, errLength)
            }
        }
        var frame = try output.frame(for: d, signednessFromStream: false)
        if d.samplesPerPixel == 3 { frame.description.photometricInterpretation = "RGB" }
        return frame
    }
}

/// JPEG-LS lossless and near-lossless through CharLS.
public struct CharLSCodec: PixelDecoder {
    public init() {}
    public var transferSyntaxUIDs: [String] { ["1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"] }

    public func decode(_ encoded: [UInt8], description d: PixelDescription) throws(DICOMError) -> DecodedFrame {
        let output = try encoded.withUnsafeBufferPointer { (src) throws(DICOMError) -> CodecOutput in
            try CodecOutput.call { info, out, length, err, errLength in
                ccodecs_jls_decode(src.baseAddress, src.count, d.samplesPerFrame, info, out, length, err, errLength)
            }
        }
        // JPEG-LS has no notion of signedness: signed data are always sign-extended from the precision.
        return try output.frame(for: d, signednessFromStream: false)
    }
}
