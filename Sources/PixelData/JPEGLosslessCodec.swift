import CCodecs
import DICOMCore

/// JPEG lossless, processes 14 and 14 SV1 (.57, .70), through Tessera's own decoder.
public struct JPEGLosslessCodec: PixelDecoder {
    public init() {}
    public var transferSyntaxUIDs: [String] { ["1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"] }

    public func decode(_ encoded: [UInt8], description d: PixelDescription) throws(DICOMError) -> DecodedFrame {
        let image = try encoded.withUnsafeBufferPointer { (p) throws(DICOMError) in
            try JPEGLosslessDecoder.decode(UnsafeRawBufferPointer(p))
        }
        var info = ccodecs_info()
        info.width = UInt32(clamping: image.width)
        info.height = UInt32(clamping: image.height)
        info.components = UInt32(clamping: image.components)
        info.precision = UInt32(clamping: image.precision)
        info.bytes_per_sample = image.precision <= 8 ? 1 : 2
        var bytes = [UInt8](repeating: 0, count: image.samples.count * Int(info.bytes_per_sample))
        if info.bytes_per_sample == 1 {
            for (i, s) in image.samples.enumerated() { bytes[i] = UInt8(truncatingIfNeeded: s) }
        } else {
            for (i, s) in image.samples.enumerated() { bytes[2 * i] = UInt8(truncatingIfNeeded: s); bytes[2 * i + 1] = UInt8(truncatingIfNeeded: s >> 8) }
        }
        // Lossless JPEG codes the sample bit patterns; signed data are sign-extended from the precision.
        return try CodecOutput(info: info, bytes: bytes).frame(for: d, signednessFromStream: false)
    }
}
