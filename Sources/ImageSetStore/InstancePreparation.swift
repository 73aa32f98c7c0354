import DICOMCore
import DICOMParser
import PixelData

/// Turns a staged blob into a `PreparedInstance`, or the failure a STOW-RS client should see.
enum InstancePreparation {
    /// Syntaxes accepted for storage: those Tessera can parse and whose frames it can decode.
    static var acceptedTransferSyntaxes: Set<String> {
        Set(["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2"])
            .union(PixelCodecs.decodableTransferSyntaxes)
    }

    static func prepare(_ staged: StagedBlob, expectedStudy: String?, options: ReadOptions = .default) -> Result<PreparedInstance, IngestOutcome> {
        let file: DICOMFile
        do {
            file = try DICOMFile.read(storage: try staged.bytes.map(ByteStorage.init(retaining:)) ?? ByteStorage.map(path: staged.path), options: options)
        } catch let error as DICOMError where error.kind == .limitExceeded {
            // A deflate bomb, say: refused for what it would cost, not for its syntax.
            return .failure(.failure(FailureReason.outOfResources, "cannot parse the object: \(error)"))
        } catch {
            return .failure(.failure(FailureReason.cannotUnderstand, "cannot parse the object: \(error)"))
        }
        let ds = file.dataSet
        let sopClass = ds.string(.sopClassUID).map(UID.trimmed)
        let sop = ds.string(.sopInstanceUID).map(UID.trimmed)
        let study = ds.string(.studyInstanceUID).map(UID.trimmed)
        func fail(_ code: UInt16, _ message: String) -> Result<PreparedInstance, IngestOutcome> {
            .failure(.failure(code, message, sop: sop, sopClass: sopClass, study: study))
        }
        // Identifying UIDs must be present and well-formed (PS3.5 §9.1): they become keys, never paths.
        var uids: [String] = []
        for (tag, name) in [(Tag.sopClassUID, "SOP Class UID"), (.sopInstanceUID, "SOP Instance UID"),
                            (.studyInstanceUID, "Study Instance UID"), (.seriesInstanceUID, "Series Instance UID")] {
            guard let raw = ds.string(tag) else { return fail(FailureReason.dataSetDoesNotMatchSOPClass, "\(name) \(tag) is missing") }
            do { uids.append(try UID.validate(raw, for: tag)) } catch {
                return fail(FailureReason.dataSetDoesNotMatchSOPClass, "\(name): \(error.message)")
            }
        }
        if let metaSOP = file.meta.string(.mediaStorageSOPInstanceUID).map(UID.trimmed), !metaSOP.isEmpty, metaSOP != uids[1] {
            return fail(FailureReason.dataSetDoesNotMatchSOPClass, "Media Storage SOP Instance UID \(metaSOP) differs from SOP Instance UID \(uids[1])")
        }
        if let expectedStudy, expectedStudy != uids[2] {
            return fail(FailureReason.dataSetDoesNotMatchSOPClass, "Study Instance UID \(uids[2]) does not match the request's study \(expectedStudy)")
        }
        let syntax = file.transferSyntax.uid
        guard acceptedTransferSyntaxes.contains(syntax) else {
            return fail(FailureReason.transferSyntaxNotSupported, "transfer syntax \(syntax) is not supported")
        }
        var frames: [FrameRecord] = []
        var inPlace = file.dataSetStorage === file.storage
        if ds.contains(.pixelData) || ds.contains(.floatPixelData) || ds.contains(.doubleFloatPixelData) {
            do {
                let table = try FrameTable(file: file)
                frames = records(table)
                if table.swapsWords || table.frames.contains(where: { $0.bitOffset != 0 }) { inPlace = false }
            } catch {
                return fail(FailureReason.cannotUnderstand, "cannot locate the frames: \(error)")
            }
        }
        var options = DICOMJSONOptions()
        let instancePath = "/studies/\(uids[2])/series/\(uids[3])/instances/\(uids[1])"
        options.bulkDataURI = { path, _ in BulkURI.placeholder(instancePath: instancePath, path) }
        let metadata = DICOMJSON.encode(ds, options: options)
        return .success(PreparedInstance(
            studyInstanceUID: uids[2], seriesInstanceUID: uids[3], sopInstanceUID: uids[1], sopClassUID: uids[0],
            transferSyntaxUID: syntax, blob: staged.id, blobSize: staged.size, attributes: InstanceAttributes(ds),
            metadataJSON: metadata, frames: frames, framesInPlace: inPlace))
    }
}

extension InstancePreparation {
    /// A Part 10 copy with Pixel Data in `target`, staged, and its frames. Nil when the instance
    /// cannot be transcoded (unsupported layout, 1-bit data): frames are then served as stored.
    static func transcodedCopy(of staged: StagedBlob, to target: String, blobs: any BlobStore) -> TranscodedCopy? {
        guard let file = try? DICOMFile.read(storage: try staged.bytes.map(ByteStorage.init(retaining:)) ?? ByteStorage.map(path: staged.path)),
              let (ds, syntax) = try? Transcoder.transcode(file, to: target),
              let bytes = try? DICOMWriter.part10(ds, transferSyntax: syntax, meta: file.meta),
              let copy = try? DICOMFile.read(bytes: bytes), let table = try? FrameTable(file: copy),
              let stagedCopy = try? blobs.stage(bytes: bytes) else { return nil }
        return TranscodedCopy(staged: stagedCopy.withoutBytes, frames: records(table), transferSyntaxUID: target)
    }

    /// The index's frame rows for a frame table: first byte, total length, and the fragment
    /// ranges when a frame spans more than one.
    static func records(_ table: FrameTable) -> [FrameRecord] {
        table.frames.enumerated().compactMap { n, f in
            guard let first = f.ranges.first else { return nil }
            return FrameRecord(number: n + 1, offset: first.lowerBound, length: f.length, fragments: f.ranges.count > 1 ? f.ranges : nil)
        }
    }
}

/// A staged Part 10 copy made at ingest, and where its frames are.
struct TranscodedCopy: Sendable {
    let staged: StagedBlob
    let frames: [FrameRecord]
    let transferSyntaxUID: String
}

extension PreparedInstance {
    /// Serve frames from the copy; the original stays in `blob`.
    mutating func serveFrames(from copy: TranscodedCopy) {
        frames = copy.frames
        framesBlob = copy.staged.id
        framesBlobSize = copy.staged.size
        framesTransferSyntaxUID = copy.transferSyntaxUID
        framesInPlace = true
    }
}

/// A failed outcome travels as the error of a `Result`.
extension IngestOutcome: Error {}

/// Stored metadata names bulk data by a placeholder the server turns into a URL by replacing the
/// prefix with its DICOMweb root: `tessera-bulk:/studies/S/series/E/instances/I/bulkdata/` then the
/// tag path, e.g. `7FE00010` or `00540016/00181072` (sequence, then the tag in its first item).
public enum BulkURI {
    public static let prefix = "tessera-bulk:"
    static func placeholder(instancePath: String, _ path: [Tag]) -> String {
        prefix + url(instancePath: instancePath, path)
    }

    /// The bulk data resource of the value at `path` (tags from the top level down), below the
    /// instance's own: what the placeholder names, and what XML metadata links to directly.
    public static func url(instancePath: String, _ path: [Tag]) -> String {
        instancePath + "/bulkdata/" + path.map(\.hexString).joined(separator: "/")
    }
}
