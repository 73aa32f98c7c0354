import DICOMCore
import CompressNIO
import NIOCore

/// A parsed DICOM Part 10 file (or a bare data set): file meta group, data set, and where things are.
public struct DICOMFile: Sendable {
    /// The bytes read: the file itself.
    public let storage: ByteStorage
    /// Whether a 128-byte preamble and `DICM` were present.
    public let hasPreamble: Bool
    /// Group 0002 (empty for bare data sets).
    public var meta: DataSet
    public var dataSet: DataSet
    /// The syntax the data set was actually read with (after detection, see `syntaxWasDetected`).
    public let transferSyntax: TransferSyntax
    /// True when the meta group named no usable syntax, or named one the bytes contradict.
    public let syntaxWasDetected: Bool
    /// Byte offset in `storage` where the data set starts.
    public let dataSetOffset: Int
    /// The storage that data-set offsets refer to: `storage`, or the inflated bytes for Deflated syntaxes.
    public let dataSetStorage: ByteStorage

    /// Reads a file from disk (memory-mapped: untouched pages are never read).
    public static func read(path: String, options: ReadOptions = .default) throws(DICOMError) -> DICOMFile {
        try read(storage: ByteStorage.map(path: path), options: options)
    }

    public static func read(bytes: some Collection<UInt8>, options: ReadOptions = .default) throws(DICOMError) -> DICOMFile {
        try read(storage: ByteStorage(copying: bytes), options: options)
    }

    public static func read(storage: ByteStorage, options: ReadOptions = .default) throws(DICOMError) -> DICOMFile {
        var partial: DICOMFile? = nil
        return try read(storage: storage, options: options, partial: &partial)
    }

    /// Like `read`, but on an error `partial` receives what could be read before it (for `dump`,
    /// which prints what it can).
    public static func read(storage: ByteStorage, options: ReadOptions = .default,
                            partial: inout DICOMFile?) throws(DICOMError) -> DICOMFile {
        let b = storage.bytes
        var offset = 0
        var hasPreamble = false
        if b.count >= 132, b[128] == 0x44, b[129] == 0x49, b[130] == 0x43, b[131] == 0x4D {
            offset = 132
            hasPreamble = true
        } else if b.count >= 4, b[0] == 0x44, b[1] == 0x49, b[2] == 0x43, b[3] == 0x4D {
            offset = 4 // "DICM" without preamble, as some writers emit
        }
        guard b.count > offset else {
            throw DICOMError(.notDICOM, offset: offset, message: b.isEmpty ? "empty file" : "no data set after the header")
        }

        // File meta group: Explicit VR LE by definition; a few writers use implicit, which we detect.
        var meta = DataSet()
        if offset + 8 <= b.count, b[offset] == 0x02, b[offset + 1] == 0x00 {
            let metaExplicit = offset + 6 <= b.count && VR(byte0: b[offset + 4], byte1: b[offset + 5]) != nil
            var options = DICOMTokenReader.Options()
            options.onlyGroup = 0x0002
            var reader = DICOMTokenReader(storage: storage, start: offset, explicitVR: metaExplicit, bigEndian: false, options: options)
            meta = try DataSet.read(&reader, options: .default)
            offset = reader.position
        } else if hasPreamble == false && offset == 0 && looksLikeDataSet(b) == nil {
            throw DICOMError(.notDICOM, offset: 0, message: "no DICM prefix and no recognisable data set")
        }

        let declared: TransferSyntax? = meta[.transferSyntaxUID]?.valueBytes
            .flatMap { TransferSyntax(uid: String(decoding: $0, as: UTF8.self)) }
        if let uidBytes = meta[.transferSyntaxUID]?.valueBytes, declared == nil {
            let uid = UID.trimmed(String(decoding: uidBytes, as: UTF8.self))
            if !uid.isEmpty && !uid.hasPrefix("1.2.840.10008.") {
                throw DICOMError(.unsupportedTransferSyntax, tag: .transferSyntaxUID, offset: offset,
                                 message: "transfer syntax '\(uid.prefix(64))' is not one this reader knows")
            }
        }

        var syntax = declared ?? .explicitVRLittleEndian
        var detected = declared == nil
        var dataStorage = storage
        var start = offset

        if syntax.isDeflated {
            dataStorage = try inflate(storage, from: offset, options: options)
            start = 0
        }
        // Files whose meta group contradicts their data set exist (pydicom corrects these too):
        // trust the bytes of the first element.
        if let guess = looksLikeDataSet(dataStorage.bytes, at: start),
           guess.explicitVR != syntax.isExplicitVR || guess.bigEndian != syntax.isBigEndian {
            let uid: String
            if declared != nil { uid = syntax.uid }
            else if !guess.explicitVR { uid = TransferSyntax.implicitVRLittleEndian.uid }
            else { uid = guess.bigEndian ? TransferSyntax.explicitVRBigEndian.uid : TransferSyntax.explicitVRLittleEndian.uid }
            syntax = TransferSyntax(uid: uid, isExplicitVR: guess.explicitVR, isBigEndian: guess.bigEndian,
                                    isDeflated: syntax.isDeflated, isEncapsulated: syntax.isEncapsulated)
            detected = true
        }

        var readerOptions = DICOMTokenReader.Options()
        readerOptions.maximumDepth = options.maximumDepth
        if options.stopBeforePixelData { readerOptions.stopAtTag = .pixelData }
        var reader = DICOMTokenReader(storage: dataStorage, start: start, explicitVR: syntax.isExplicitVR,
                                      bigEndian: syntax.isBigEndian, options: readerOptions)
        var partialSet: DataSet? = nil
        do throws(DICOMError) {
            let dataSet = try DataSet.read(&reader, options: options, partial: &partialSet)
            return DICOMFile(storage: storage, hasPreamble: hasPreamble, meta: meta, dataSet: dataSet,
                             transferSyntax: syntax, syntaxWasDetected: detected, dataSetOffset: start, dataSetStorage: dataStorage)
        } catch {
            partial = DICOMFile(storage: storage, hasPreamble: hasPreamble, meta: meta, dataSet: partialSet ?? DataSet(),
                                transferSyntax: syntax, syntaxWasDetected: detected, dataSetOffset: start, dataSetStorage: dataStorage)
            throw error
        }
    }

    /// Guesses the encoding of the element at `at` (PS3.5 gives no marker): a valid explicit VR in
    /// bytes 4–5 means explicit; a group that reads smaller byte-swapped means big endian.
    static func looksLikeDataSet(_ b: UnsafeRawBufferPointer, at: Int = 0) -> (explicitVR: Bool, bigEndian: Bool)? {
        guard at + 8 <= b.count else { return nil }
        let groupLE = UInt16(b[at]) | UInt16(b[at + 1]) << 8
        let groupBE = UInt16(b[at + 1]) | UInt16(b[at]) << 8
        let explicit = VR(byte0: b[at + 4], byte1: b[at + 5]) != nil
        let bigEndian = groupBE < groupLE && groupBE != 0
        // Plausible first groups are small (0002, 0008, 0010 …) in either byte order; group 0000
        // belongs to DIMSE commands, never to stored data sets (and is what zero bytes look like).
        let group = min(groupLE, groupBE)
        guard group != 0, group <= 0x0100 else { return nil }
        return (explicit, explicit && bigEndian)
    }

    /// Inflates a Deflated Explicit VR LE data set under a size cap and an inflation-ratio cap, so a
    /// deflate bomb ends in an error, not in exhausted memory.
    static func inflate(_ storage: ByteStorage, from offset: Int, options: ReadOptions) throws(DICOMError) -> ByteStorage {
        let compressed = UnsafeRawBufferPointer(rebasing: storage.bytes[offset...])
        var input = ByteBuffer(bytes: compressed)
        let cap = min(options.maximumInflatedSize, max(1 << 20, compressed.count.multipliedReportingOverflow(by: options.maximumInflationRatio).partialValue))
        do {
            let output = try input.decompress(with: .deflate(), maxSize: cap)
            return output.withUnsafeReadableBytes { ByteStorage(copying: $0) }
        } catch let error as CompressNIOError where error == .bufferOverflow {
            throw DICOMError(.limitExceeded, offset: offset,
                             message: "deflated data set inflates beyond \(cap) bytes (\(compressed.count) compressed)")
        } catch {
            throw DICOMError(.deflate, offset: offset, message: "deflated data set does not inflate: \(error)")
        }
    }
}
