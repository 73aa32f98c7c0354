import DICOMCore
import DICOMParser

/// What a frame's pixels are, from the Image Pixel module (PS3.3 C.7.6.3).
public struct PixelDescription: Sendable, Hashable {
    public var rows: Int
    public var columns: Int
    public var samplesPerPixel: Int
    public var bitsAllocated: Int
    public var bitsStored: Int
    public var highBit: Int
    /// 0 unsigned, 1 two's complement.
    public var pixelRepresentation: Int
    /// 0 interleaved (R1G1B1R2…), 1 planar (R…G…B…); only meaningful when samplesPerPixel > 1.
    public var planarConfiguration: Int
    public var photometricInterpretation: String
    public var numberOfFrames: Int

    public init(rows: Int, columns: Int, samplesPerPixel: Int, bitsAllocated: Int, bitsStored: Int, highBit: Int,
                pixelRepresentation: Int, planarConfiguration: Int, photometricInterpretation: String, numberOfFrames: Int) {
        self.rows = rows
        self.columns = columns
        self.samplesPerPixel = samplesPerPixel
        self.bitsAllocated = bitsAllocated
        self.bitsStored = bitsStored
        self.highBit = highBit
        self.pixelRepresentation = pixelRepresentation
        self.planarConfiguration = planarConfiguration
        self.photometricInterpretation = photometricInterpretation
        self.numberOfFrames = numberOfFrames
    }

    /// Bytes of one native frame (1-bit frames are packed: rows×columns×samples bits, rounded up).
    public var nativeFrameLength: Int {
        let bits = rows * columns * samplesPerPixel * bitsAllocated
        return (bits + 7) / 8
    }
}

/// A decoded frame: native little-endian samples as DICOM defines them, interleaved
/// (planar configuration 0), with the photometric interpretation the samples are now in
/// (e.g. a JPEG baseline YBR_FULL_422 frame decoded to RGB says "RGB").
public struct DecodedFrame: Sendable {
    public var bytes: [UInt8]
    public var description: PixelDescription

    public init(bytes: [UInt8], description: PixelDescription) {
        self.bytes = bytes
        self.description = description
    }
}

/// Decodes the frames of one or more transfer syntaxes. Decoders are stateless values, safe to
/// call from many threads at once.
public protocol PixelDecoder: Sendable {
    /// Transfer Syntax UIDs this decoder handles.
    var transferSyntaxUIDs: [String] { get }
    /// `encoded` is one frame's stored bytes (fragments of the frame concatenated, or the native
    /// frame's bytes); `description` comes from the data set. Corrupt or truncated input throws a
    /// `DICOMError` (kind `.invalidValue` or `.truncated`), never traps.
    func decode(_ encoded: [UInt8], description: PixelDescription) throws(DICOMError) -> DecodedFrame
}

/// Encodes native frames into a transfer syntax.
public protocol PixelEncoder: Sendable {
    var transferSyntaxUID: String { get }
    /// `frame` is a native little-endian frame, interleaved, described by `description`.
    /// Returns the encoded frame (one fragment's worth, even-padded by the caller) and the
    /// description the encoded stream carries (e.g. photometric interpretation after a colour transform).
    func encode(_ frame: [UInt8], description: PixelDescription) throws(DICOMError) -> (bytes: [UInt8], description: PixelDescription)
}
