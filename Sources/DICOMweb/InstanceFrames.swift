import DICOMCore
import DICOMParser
import ImageSetStore
import NIOCore
import PixelData

/// One instance's frames for a request: stored bytes by range reads from the frame index, and the
/// header (read once, only when a frame must be decoded or rendered). Used by one request at a time,
/// also from its streaming body (hence `@unchecked Sendable`: the caches are never shared).
final class InstanceFrames: @unchecked Sendable {
    let store: Datastore
    let instance: InstanceRecord
    let records: [FrameRecord]
    private var header: DataSet?
    private var table: FrameTable?

    init(store: Datastore, instance: InstanceRecord, records: [FrameRecord]) {
        self.store = store
        self.instance = instance
        self.records = records
    }

    var syntax: String { instance.framesTransferSyntaxUID }

    /// The header, read once (memory-mapped from a local blob, else fetched from the blob store).
    func dataSet() async throws -> DataSet {
        if let header { return header }
        let ds = try await store.parse(instance.framesBlob, options: .headerOnly).dataSet
        header = ds
        return ds
    }

    /// The pixel description, from the header `dataSet()` read (call it first).
    func pixelDescription() throws -> PixelDescription {
        guard let header else { throw DICOMwebError(.internalServerError, "the instance's header was not read") }
        return try PixelDescription(dataSet: header)
    }

    /// Frame `n` (from 1) as stored, appended to `buffer`: range reads of the blob when the frame
    /// lies in place (one copy), else located by parsing (deflated or bit-packed data, rare).
    func stored(_ n: Int, into buffer: inout ByteBuffer) async throws {
        guard n >= 1, n <= records.count else { throw DICOMwebError(.notFound, "frame \(n) is beyond the instance's \(records.count) frames") }
        if instance.framesInPlace {
            return try await store.blobs.read(instance.framesBlob, ranges: records[n - 1].ranges, into: &buffer)
        }
        if table == nil { table = try FrameTable(file: try await store.parse(instance.framesBlob)) }
        guard let table else { throw DICOMwebError(.internalServerError, "no frame table") }
        buffer.writeBytes(try table.encodedFrame(n - 1))
    }

    /// Frame `n` as stored, for a decoder.
    func stored(_ n: Int) async throws -> [UInt8] {
        var buffer = ByteBuffer()
        try await stored(n, into: &buffer)
        return Array(buffer.readableBytesView)
    }

    /// Stored frame bytes decoded to native little-endian samples.
    func decode(_ bytes: [UInt8]) throws -> DecodedFrame {
        guard PixelCodecs.canDecode(syntax) else { throw DICOMwebError(.notAcceptable, "frames in \(syntax) cannot be decoded") }
        return try PixelCodecs.decode(bytes, transferSyntax: syntax, description: try pixelDescription())
    }

    /// Stored frame bytes rendered; JPEG 2000 and HTJ2K decode only the resolution a small viewport needs.
    func render(_ bytes: [UInt8], display: DisplayAttributes, options: RenderingOptions) throws -> RenderedImage {
        guard PixelCodecs.canDecode(syntax) else { throw DICOMwebError(.notAcceptable, "frames in \(syntax) cannot be decoded") }
        return try Renderer.render(encoded: bytes, transferSyntax: syntax, description: try pixelDescription(), display: display, options: options)
    }
}
