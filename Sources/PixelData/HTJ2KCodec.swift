import CCodecs
import COpenJPH
import DICOMCore

/// HTJ2K (.201 lossless, .202 RPCL lossless, .203 lossy): decoded by OpenJPH, which is several
/// times faster than OpenJPEG on HT code blocks, with OpenJPEG as the fallback for what OpenJPH
/// refuses; encoded losslessly by OpenJPH in RPCL order, as AWS HealthImaging stores frames.
public struct HTJ2KCodec: ReducedResolutionDecoder, PixelEncoder {
    public init() {}
    public var transferSyntaxUIDs: [String] { ["1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"] }
    /// RPCL-ordered lossless output qualifies for the more specific .202 as well; .201 is what every reader accepts.
    public var transferSyntaxUID: String { "1.2.840.10008.1.2.4.201" }

    public func decode(_ encoded: [UInt8], description d: PixelDescription) throws(DICOMError) -> DecodedFrame {
        try decode(encoded, description: d, reduce: 0)
    }

    public func decode(_ encoded: [UInt8], description d: PixelDescription, reduce: Int) throws(DICOMError) -> DecodedFrame {
        do {
            return try decodeWithOpenJPH(encoded, description: d, reduce: reduce)
        } catch {
            if let frame = try? OpenJPEGCodec().decode(encoded, description: d, reduce: reduce) { return frame }
            throw error
        }
    }

    func decodeWithOpenJPH(_ encoded: [UInt8], description full: PixelDescription, reduce: Int = 0) throws(DICOMError) -> DecodedFrame {
        var message = [CChar](repeating: 0, count: 256)
        func failure() -> DICOMError {
            let text = CodecOutput.text(message)
            return DICOMError(.invalidValue, tag: .pixelData, message: "OpenJPH: \(text.isEmpty ? "decoding failed" : text)")
        }
        var info = copenjph_image_info()
        let header = encoded.withUnsafeBufferPointer { src in
            message.withUnsafeMutableBufferPointer { m in
                copenjph_decode_reduced(src.baseAddress, src.count, UInt32(clamping: max(reduce, 0)), &info, nil, 0, m.baseAddress, m.count)
            }
        }
        guard header == 0 else { throw failure() }
        // As OpenJPEGCodec: averages of wrongly signed values cannot be corrected afterwards.
        if info.reduce > 0 && (info.is_signed != 0) != full.isSigned {
            return try decodeWithOpenJPH(encoded, description: full, reduce: 0)
        }
        let d = full.reduced(by: Int(info.reduce))
        let samples = Int(info.width) * Int(info.height) * Int(info.components)
        guard samples > 0, samples <= d.samplesPerFrame, info.bit_depth >= 1, info.bit_depth <= 16 else {
            throw DICOMError(.invalidValue, tag: .pixelData, message:
                "HTJ2K image of \(info.width)×\(info.height)×\(info.components) at \(info.bit_depth) bits does not fit the frame")
        }
        let width = info.bit_depth <= 8 ? 1 : 2
        var out = [UInt8](repeating: 0, count: samples * width)
        let reduced = info.reduce
        let rc = encoded.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                message.withUnsafeMutableBufferPointer { m in
                    copenjph_decode_reduced(src.baseAddress, src.count, reduced, &info, dst.baseAddress, dst.count, m.baseAddress, m.count)
                }
            }
        }
        guard rc == 0 else { throw failure() }
        var c = ccodecs_info()
        c.width = info.width
        c.height = info.height
        c.components = info.components
        c.precision = info.bit_depth
        c.is_signed = info.is_signed
        c.bytes_per_sample = UInt32(width)
        var frame = try CodecOutput(info: c, bytes: out).frame(for: d, signednessFromStream: true)
        if ["YBR_RCT", "YBR_ICT"].contains(d.photometricInterpretation) { frame.description.photometricInterpretation = "RGB" }
        return frame
    }

    public func encode(_ frame: [UInt8], description d: PixelDescription) throws(DICOMError) -> (bytes: [UInt8], description: PixelDescription) {
        let c = try OpenJPEGCodec.encodeInfo(d, frame: frame)
        var info = copenjph_image_info()
        info.width = c.width
        info.height = c.height
        info.components = c.components
        info.bit_depth = c.precision
        info.is_signed = c.is_signed
        let mct = d.samplesPerPixel == 3 && d.photometricInterpretation == "RGB"
        // OpenJPH reads samples in containers of its own width for the bit depth.
        let expectedWidth = Int(c.precision) <= 8 ? 1 : 2
        var input = frame
        if expectedWidth != d.bytesPerSample {
            input = Self.repack(frame, from: d.bytesPerSample, to: expectedWidth, count: d.samplesPerFrame)
        }
        let bytes = try OpenJPEGCodec.callEncoder { out, length, err, errLength in
            input.withUnsafeBufferPointer { src in
                copenjph_encode(src.baseAddress, src.count, &info, mct ? 1 : 0, out, length, err, errLength)
            }
        }
        var desc = d
        desc.planarConfiguration = 0
        if mct { desc.photometricInterpretation = "YBR_RCT" }
        return (bytes, desc)
    }

    static func repack(_ bytes: [UInt8], from: Int, to: Int, count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count * to)
        for i in 0..<count { for b in 0..<min(from, to) { out[i * to + b] = bytes[i * from + b] } }
        return out
    }
}
