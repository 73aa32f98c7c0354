import DICOMCore
import DICOMParser

extension PixelDescription {
    /// Frames above this count are refused: a hostile Number of Frames must not size an allocation.
    public static let maximumFrames = 1 << 20
    /// Rows × Columns × Samples per frame above this are refused for the same reason.
    public static let maximumSamplesPerFrame = 1 << 28

    /// Reads the Image Pixel module. Missing or out-of-range attributes are an `.invalidValue`
    /// error naming the attribute: a frame cannot be located or decoded without them.
    public init(dataSet ds: DataSet) throws(DICOMError) {
        func required(_ tag: Tag, _ name: String, _ valid: ClosedRange<Int>) throws(DICOMError) -> Int {
            guard let v = ds.integer(tag) else {
                throw DICOMError(.invalidValue, tag: tag, message: "\(name) is missing")
            }
            guard valid.contains(Int(clamping: v)) else {
                throw DICOMError(.invalidValue, tag: tag, message: "\(name) \(v) is out of range \(valid)")
            }
            return Int(v)
        }
        let rows = try required(.rows, "Rows", 1...65535)
        let columns = try required(.columns, "Columns", 1...65535)
        let spp = ds.contains(.samplesPerPixel) ? try required(.samplesPerPixel, "Samples per Pixel", 1...4) : 1
        // Float and Double Float Pixel Data imply their Bits Allocated (PS3.3 C.7.6.24).
        let bitsAllocated: Int
        if ds.contains(.floatPixelData) && !ds.contains(.bitsAllocated) { bitsAllocated = 32 }
        else if ds.contains(.doubleFloatPixelData) && !ds.contains(.bitsAllocated) { bitsAllocated = 64 }
        else { bitsAllocated = try required(.bitsAllocated, "Bits Allocated", 1...64) }
        guard [1, 8, 16, 32, 64].contains(bitsAllocated) else {
            throw DICOMError(.invalidValue, tag: .bitsAllocated, message: "Bits Allocated \(bitsAllocated) is not 1, 8, 16, 32 or 64")
        }
        let bitsStored = ds.contains(.bitsStored) ? try required(.bitsStored, "Bits Stored", 1...bitsAllocated) : bitsAllocated
        let highBit = ds.integer(.highBit).map { Int(clamping: $0) } ?? bitsStored - 1
        let pixelRepresentation = ds.contains(.pixelRepresentation) ? try required(.pixelRepresentation, "Pixel Representation", 0...1) : 0
        let planar = spp > 1 ? (ds.integer(.planarConfiguration).map { $0 == 1 ? 1 : 0 } ?? 0) : 0
        let pi = ds.string(.photometricInterpretation) ?? (spp == 3 ? "RGB" : "MONOCHROME2")
        // Number of Frames is IS; absent, empty or zero means one frame.
        let frames = ds.integer(.numberOfFrames).map { Int(clamping: $0) } ?? 1
        guard frames <= Self.maximumFrames else {
            throw DICOMError(.invalidValue, tag: .numberOfFrames, message: "Number of Frames \(frames) exceeds \(Self.maximumFrames)")
        }
        guard rows * columns * spp <= Self.maximumSamplesPerFrame else {
            throw DICOMError(.invalidValue, tag: .rows, message: "frame of \(rows)×\(columns)×\(spp) samples is too large")
        }
        self.init(rows: rows, columns: columns, samplesPerPixel: spp, bitsAllocated: bitsAllocated, bitsStored: bitsStored,
                  highBit: highBit, pixelRepresentation: pixelRepresentation, planarConfiguration: planar,
                  photometricInterpretation: pi, numberOfFrames: max(frames, 1))
    }

    var bytesPerSample: Int { (bitsAllocated + 7) / 8 }
    var samplesPerFrame: Int { rows * columns * samplesPerPixel }
    var isSigned: Bool { pixelRepresentation == 1 }
}
