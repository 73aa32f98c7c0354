import DICOMCore

/// The uncompressed syntaxes: Implicit/Explicit VR Little Endian, Deflated (the data set is
/// deflated, the pixels are not), Explicit VR Big Endian, and Encapsulated Uncompressed.
public struct NativeCodec: PixelDecoder, PixelEncoder {
    public init() {}

    public var transferSyntaxUIDs: [String] {
        ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.98"]
    }
    public var transferSyntaxUID: String { "1.2.840.10008.1.2.1" }

    public func decode(_ encoded: [UInt8], description: PixelDescription) throws(DICOMError) -> DecodedFrame {
        try decode(encoded, description: description, bigEndian: false)
    }

    /// Output is what pydicom's `pixel_array` holds for the frame in little-endian order:
    /// interleaved, 1-bit samples one per byte, bits above Bits Stored corrected. YBR_FULL stays
    /// YBR_FULL (the native frame as DICOM defines it; pydicom converts it to RGB by default).
    public func decode(_ encoded: [UInt8], description d: PixelDescription, bigEndian: Bool) throws(DICOMError) -> DecodedFrame {
        var out = d
        out.numberOfFrames = 1
        out.planarConfiguration = 0
        if d.bitsAllocated == 1 {
            let count = d.samplesPerFrame
            guard encoded.count * 8 >= count else { throw Self.short(encoded.count, (count + 7) / 8) }
            out.bitsAllocated = 8
            out.highBit = 7
            return DecodedFrame(bytes: SampleLayout.unpackBits(encoded, count: count), description: out)
        }
        let width = d.bytesPerSample
        if d.photometricInterpretation == "YBR_FULL_422" && d.samplesPerPixel == 3 && width == 1 {
            let needed = d.rows * ((d.columns + 1) / 2) * 4
            guard encoded.count >= needed else { throw Self.short(encoded.count, needed) }
            out.photometricInterpretation = "YBR_FULL"
            return DecodedFrame(bytes: SampleLayout.expand422(encoded, rows: d.rows, columns: d.columns), description: out)
        }
        let needed = d.samplesPerFrame * width
        guard encoded.count >= needed else { throw Self.short(encoded.count, needed) }
        var bytes = encoded.count == needed ? encoded : Array(encoded[0..<needed])
        if bigEndian { SampleLayout.swapBytes(&bytes, width: width) }
        if d.planarConfiguration == 1 {
            bytes = SampleLayout.interleave(bytes, pixels: d.rows * d.columns, samples: d.samplesPerPixel, width: width)
        }
        SampleLayout.correctUnusedBits(&bytes, bitsAllocated: d.bitsAllocated, bitsStored: d.bitsStored, signed: d.isSigned)
        return DecodedFrame(bytes: bytes, description: out)
    }

    public func encode(_ frame: [UInt8], description: PixelDescription) throws(DICOMError) -> (bytes: [UInt8], description: PixelDescription) {
        let needed = description.nativeFrameLength
        guard frame.count >= needed else { throw Self.short(frame.count, needed) }
        return (Array(frame[0..<needed]), description)
    }

    static func short(_ have: Int, _ need: Int) -> DICOMError {
        DICOMError(.truncated, tag: .pixelData, message: "frame has \(have) bytes, \(need) needed")
    }
}
