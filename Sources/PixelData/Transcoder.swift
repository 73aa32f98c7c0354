import DICOMCore
import DICOMParser

/// Rewrites an instance's Pixel Data in another transfer syntax: every frame decoded, then
/// encoded; the Image Pixel attributes follow what the encoder produced. Everything else in the
/// data set is kept as it was.
public enum Transcoder {
    public static func transcode(_ file: DICOMFile, to uid: String) throws(DICOMError) -> (dataSet: DataSet, transferSyntax: TransferSyntax) {
        let plan = try Plan(file, to: uid)
        var frames: [(bytes: [UInt8], description: PixelDescription)] = []
        frames.reserveCapacity(plan.frameCount)
        for i in 0..<plan.frameCount { frames.append(try plan.encodeFrame(i)) }
        return plan.finish(frames)
    }

    /// A transcoding in three steps, so that a caller can encode the frames in parallel: `Plan`
    /// checks the target, `encodeFrame` decodes and encodes one frame (any order, any thread),
    /// `finish` assembles the data set from the frames in order. `frameCount` is 0 when the
    /// Pixel Data need no re-encoding (only the data set's encoding changes).
    public struct Plan: Sendable {
        let dataSet: DataSet
        let target: TransferSyntax
        let table: FrameTable?
        let encoder: (any PixelEncoder)?

        public init(_ file: DICOMFile, to uid: String) throws(DICOMError) {
            guard let target = TransferSyntax(uid: uid), let encoder = PixelCodecs.encoder(for: target.uid) else {
                throw DICOMError(.unsupportedTransferSyntax, message:
                    "cannot encode to \(uid); targets are \(PixelCodecs.encodableTransferSyntaxes.joined(separator: ", "))")
            }
            self.dataSet = file.dataSet
            self.target = target
            let ds = file.dataSet
            guard [Tag.pixelData, .floatPixelData, .doubleFloatPixelData].contains(where: ds.contains),
                  file.transferSyntax.uid != target.uid, file.transferSyntax.isEncapsulated || target.isEncapsulated else {
                // Nothing to transcode, or the writer swaps bytes between native encodings.
                (self.table, self.encoder) = (nil, nil)
                return
            }
            let table = try FrameTable(file: file)
            if table.description.bitsAllocated == 1 && target.isEncapsulated {
                throw DICOMError(.invalidValue, tag: .bitsAllocated, message: "1-bit Pixel Data can only be stored natively")
            }
            (self.table, self.encoder) = (table, encoder)
        }

        public var frameCount: Int { table?.frames.count ?? 0 }

        /// Frame `i` decoded and encoded in the target syntax, with the description the encoder produced.
        public func encodeFrame(_ i: Int) throws(DICOMError) -> (bytes: [UInt8], description: PixelDescription) {
            guard let table, let encoder else { throw DICOMError(.invalidValue, message: "no frames to transcode") }
            let decoded = try table.decodeFrame(i)
            var frameBytes = decoded.bytes
            var frameDesc = decoded.description
            if table.description.bitsAllocated == 1 {
                frameBytes = packBits(frameBytes)
                frameDesc.bitsAllocated = 1
            }
            return try encoder.encode(frameBytes, description: frameDesc)
        }

        /// The data set with `frames` (every frame's `encodeFrame`, in order) as its Pixel Data.
        public func finish(_ frames: [(bytes: [UInt8], description: PixelDescription)]) -> (dataSet: DataSet, transferSyntax: TransferSyntax) {
            guard let table else { return (dataSet, target) }
            var ds = dataSet
            var desc = table.description
            if let r = frames.last?.description {
                desc.photometricInterpretation = r.photometricInterpretation
                desc.planarConfiguration = r.planarConfiguration
            }
            let encodedFrames = frames.map(\.bytes)
            ds.set(DataElement(tag: .photometricInterpretation, vr: .CS, value: .bytes(evenPadded(Array(desc.photometricInterpretation.utf8), pad: 0x20))))
            if desc.samplesPerPixel > 1 {
                ds.set(DataElement(tag: .planarConfiguration, vr: .US, value: .bytes(ds.isBigEndian ? le16(desc.planarConfiguration).reversed() : le16(desc.planarConfiguration))))
            }
            _ = ds.remove(.extendedOffsetTable)
            _ = ds.remove(.extendedOffsetTableLengths)
            if target.isEncapsulated {
                let (fragments, eot) = Encapsulation.encapsulate(encodedFrames)
                if let eot {
                    ds.set(DataElement(tag: .extendedOffsetTable, vr: .OV, value: .bytes(eot.offsets)))
                    ds.set(DataElement(tag: .extendedOffsetTableLengths, vr: .OV, value: .bytes(eot.lengths)))
                }
                ds.set(DataElement(tag: .pixelData, vr: .OB, value: .fragments(fragments)))
            } else {
                var all = [UInt8]()
                for f in encodedFrames { all += f }
                ds.set(DataElement(tag: .pixelData, vr: desc.bitsAllocated > 8 ? .OW : .OB, value: .bytes(evenPadded(all, pad: 0))))
            }
            return (ds, target)
        }
    }

    static func packBits(_ samples: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: (samples.count + 7) / 8)
        for (i, s) in samples.enumerated() where s & 1 == 1 { out[i / 8] |= 1 << UInt8(i % 8) }
        return out
    }

    static func evenPadded(_ b: [UInt8], pad: UInt8) -> [UInt8] { b.count % 2 == 0 ? b : b + [pad] }
    static func le16(_ v: Int) -> [UInt8] { [UInt8(truncatingIfNeeded: v), UInt8(truncatingIfNeeded: v >> 8)] }
}

/// Encapsulated Pixel Data (PS3.5 §A.4) built from encoded frames: one fragment per frame, a
/// Basic Offset Table while offsets fit 32 bits, an Extended Offset Table beyond that.
public enum Encapsulation {
    public static func encapsulate(_ frames: [[UInt8]]) -> (EncapsulatedFragments, (offsets: [UInt8], lengths: [UInt8])?) {
        var itemOffsets: [Int] = []
        var offset = 0
        for f in frames {
            itemOffsets.append(offset)
            offset += 8 + f.count + f.count % 2
        }
        let fitsBOT = offset <= Int(UInt32.max)
        var bytes = [UInt8]()
        bytes.reserveCapacity(offset + (fitsBOT ? 4 * frames.count : 0))
        if fitsBOT { for o in itemOffsets { append(UInt64(o), width: 4, to: &bytes) } }
        let bot = 0..<bytes.count
        var ranges: [Range<Int>] = []
        for f in frames {
            let start = bytes.count
            bytes += f
            if f.count % 2 == 1 { bytes.append(0) }
            ranges.append(start..<bytes.count)
        }
        let fragments = EncapsulatedFragments(storage: ByteStorage(copying: bytes), basicOffsetTable: bot, fragments: ranges)
        guard !fitsBOT else { return (fragments, nil) }
        var offsets = [UInt8](), lengths = [UInt8]()
        for (o, f) in zip(itemOffsets, frames) {
            append(UInt64(o), width: 8, to: &offsets)
            append(UInt64(f.count), width: 8, to: &lengths)
        }
        return (fragments, (offsets, lengths))
    }

    private static func append(_ v: UInt64, width: Int, to out: inout [UInt8]) {
        for b in 0..<width { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(b)))) }
    }
}
