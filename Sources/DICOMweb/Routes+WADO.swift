import CompressNIO
import DICOMCore
import DICOMParser
import Foundation
import HTTPTypes
import Hummingbird
import ImageSetStore
import NIOCore
import PixelData

extension DICOMwebService {
    func addWADORoutes(to group: RouterGroup<TesseraRequestContext>) {
        onEachLevel(of: group, .get) { try await self.retrieve($0, study: $1, series: $2, sop: $3) }
        onEachLevel(of: group, .delete) { try await self.delete($0, study: $1, series: $2, sop: $3) }
        onEachLevel(of: group, .get, "/metadata") { try await self.metadata($0, study: $1, series: $2, sop: $3) }
        group.get("studies/:study/series/:series/instances/:sop/frames/:frames") { r, c in
            try await self.frames(r, study: c.parameters.require("study"), series: c.parameters.require("series"),
                            sop: c.parameters.require("sop"), list: c.parameters.require("frames"))
        }
        group.get("studies/:study/series/:series/instances/:sop/bulkdata/**") { r, c in
            try await self.bulkdata(r, study: c.parameters.require("study"), series: c.parameters.require("series"),
                              sop: c.parameters.require("sop"), path: c.parameters.getCatchAll().joined(separator: "/"))
        }
    }

    /// The current instances a request addresses, in the image sets it may see (`scope(_:)`): 400 for
    /// a malformed UID, 404 when there are none.
    func instances(_ request: Request, study: String, series: String?, sop: String?) async throws -> [InstanceRecord] {
        try Self.requireValidUIDs(study, series, sop)
        let scope = try Self.scope(request)
        let found = try await index("currentInstances") { try await store.index.currentInstances(study: study, series: series, sop: sop, scope: scope) }
        guard !found.isEmpty else {
            let what = sop != nil ? "instance" : series != nil ? "series" : "study"
            if case .imageSet(let id) = scope { throw DICOMwebError(.notFound, "no such \(what) in image set \(id)") }
            throw DICOMwebError(.notFound, "no such \(what)")
        }
        RequestNotes.current?.touched(found)  // for the request's audit record
        return found
    }

    /// 400 for the first UID of a request's path that is not valid (PS3.5 §9.1); nil ones are absent levels.
    static func requireValidUIDs(_ uids: String?...) throws {
        for uid in uids.compactMap({ $0 }) where !UID.isValid(uid) {
            throw DICOMwebError(.badRequest, "'\(uid.prefix(80))' is not a valid UID")
        }
    }

    /// The image sets a DICOMweb request sees: the primary set of each study, unless `imageSetId`
    /// names one (a non-primary set holding instances whose patient/study attributes conflict).
    static func scope(_ request: Request) throws -> ImageSetScope {
        guard let raw = request.uri.queryParameters["imageSetId"] else { return .primary }
        let id = String(raw).lowercased()
        guard id.utf8.count == 32, id.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
            throw DICOMwebError(.badRequest, "imageSetId '\(raw.prefix(80))' is not an image set id (32 hexadecimal digits)")
        }
        return .imageSet(id)
    }

    /// What links in a response append so that they stay in the request's image set.
    static func scopeQuery(_ scope: ImageSetScope) -> String {
        if case .imageSet(let id) = scope { return "?imageSetId=\(id)" }
        return ""
    }

    /// Registers `handle` at study, series and instance level (`studies/:study`, then
    /// `/series/:series`, then `/instances/:sop`, each followed by `suffix`); series and SOP are nil
    /// above their level.
    func onEachLevel(of group: RouterGroup<TesseraRequestContext>, _ method: HTTPRequest.Method, _ suffix: String = "",
                     _ handle: @escaping @Sendable (Request, String, String?, String?) async throws -> Response) {
        for path in ["studies/:study", "studies/:study/series/:series", "studies/:study/series/:series/instances/:sop"] {
            group.on(RouterPath(path + suffix), method: method) { r, c in
                try await handle(r, try c.parameters.require("study"), c.parameters.get("series"), c.parameters.get("sop"))
            }
        }
    }

    // MARK: Delete

    /// Removes a study, series or instance in a new version of its image sets (PS3.18 §10.7).
    /// Blobs stay while a retained version references them (Docs/store.md, "Versions and retention").
    func delete(_ request: Request, study: String, series: String?, sop: String?) async throws -> Response {
        _ = try await instances(request, study: study, series: series, sop: sop)  // 400 for bad UIDs, 404 when absent
        let removed = try await removeAudited(study: study, series: series, sop: sop, scope: try Self.scope(request))
        let body = ByteBuffer(string: "{\"removedInstances\":\(removed)}")
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: body))
    }

    // MARK: Metadata

    /// Study, series or instance metadata (PS3.18 §10.4.1.1.2). Series documents are stored gzipped;
    /// placeholders become absolute bulk data URLs for this request's root.
    func metadata(_ request: Request, study: String, series: String?, sop: String?) async throws -> Response {
        // The `accept` query parameter wins over the header (PS3.18 §8.3.3.1).
        let accept = request.uri.queryParameters["accept"].map(String.init) ?? request.headers[.accept]
        switch try Self.negotiateMetadata(accept) {
        case .json: break
        case .xml: return try await metadataXML(request, study: study, series: series, sop: sop)  // Routes+MetadataXML.swift
        }
        let found = try await instances(request, study: study, series: series, sop: sop)
        var json = ByteBuffer()
        json.writeString("[")
        if sop != nil {
            for (n, i) in found.enumerated() {
                if n > 0 { json.writeString(",") }
                json.writeBytes(try await index("metadata") { try await store.index.metadata(of: i.id) } ?? [])
            }
        } else {
            var seen = Set<[String]>()
            var first = true
            for i in found where seen.insert([i.imageSetID, i.seriesInstanceUID]).inserted {
                var array = try await store.index.seriesMetadata(imageSetID: i.imageSetID, seriesInstanceUID: i.seriesInstanceUID)
                // Strip the series array's brackets to splice series together.
                guard array.readableBytes > 2 else { continue }
                array.moveReaderIndex(forwardBy: 1)
                array.moveWriterIndex(to: array.writerIndex - 1)
                if !first { json.writeString(",") }
                first = false
                json.writeBuffer(&array)
            }
        }
        json.writeString("]")
        var body = Self.replacing(BulkURI.prefix, with: root(request), in: json, appendingToURL: Self.scopeQuery(try Self.scope(request)))
        var headers: HTTPFields = [.contentType: "application/dicom+json"]
        if request.headers[.acceptEncoding]?.contains("gzip") == true && body.readableBytes > 1024 {
            body = try body.compress(with: .gzip)
            headers[.contentEncoding] = "gzip"
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: body))
    }

    enum MetadataFormat { case json, xml }

    /// The metadata format from Accept (PS3.18 §8.7.3.5.1; Docs/api.md, "Accept"): DICOM JSON by
    /// default and for `application/dicom+json` or `application/json`; XML for
    /// `multipart/related; type="application/dicom+xml"`; 406 for anything else.
    static func negotiateMetadata(_ accept: String?) throws -> MetadataFormat {
        for range in MediaType.accept(accept) {
            switch range.requestedType(routeTypes: ["application/dicom+json", "application/dicom+xml"]) {
            case "application/dicom+json", "application/json": return .json
            case "application/dicom+xml": return .xml
            default: continue
            }
        }
        throw DICOMwebError(.notAcceptable, "metadata is sent as application/dicom+json or multipart/related; type=\"application/dicom+xml\"")
    }

    /// Every occurrence of `placeholder` in `buffer` replaced, scanning bytes rather than
    /// round-tripping megabytes of JSON through String. A non-empty `suffix` is added at the end of
    /// each URL the placeholder starts (before the JSON string's closing quote).
    static func replacing(_ placeholder: String, with replacement: String, in buffer: ByteBuffer,
                          appendingToURL suffix: String = "") -> ByteBuffer {
        let needle = Array(placeholder.utf8), with = Array(replacement.utf8), tail = Array(suffix.utf8)
        var out = ByteBuffer()
        buffer.withUnsafeReadableBytes { raw in
            out.reserveCapacity(raw.count + raw.count / 8)
            var start = 0
            while let at = ByteSearch.find(needle, in: UnsafeRawBufferPointer(rebasing: raw[start...])) {
                out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[start..<(start + at)]))
                out.writeBytes(with)
                start += at + needle.count
                if !tail.isEmpty, let quote = raw[start...].firstIndex(of: UInt8(ascii: "\"")) {
                    out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[start..<quote]))
                    out.writeBytes(tail)
                    start = quote
                }
            }
            out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[start...]))
        }
        return out
    }

    // MARK: Instances

    /// Study, series or instance retrieval as multipart/related; type="application/dicom", in the
    /// transfer syntax the Accept header asks for: `*` as stored, else Explicit VR LE by default,
    /// or a lossless syntax Tessera encodes.
    func retrieve(_ request: Request, study: String, series: String?, sop: String?) async throws -> Response {
        let found = try await instances(request, study: study, series: series, sop: sop)
        let target = try Self.negotiateInstanceSyntax(request.headers[.accept], stored: Set(found.map(\.transferSyntaxUID)))
        // What cannot be transcoded is a 406 before the body starts (a streamed body can only stop).
        if target != "*", let stuck = found.first(where: { $0.transferSyntaxUID != target && !PixelCodecs.canDecode($0.transferSyntaxUID) }) {
            throw DICOMwebError(.notAcceptable, "instance \(stuck.sopInstanceUID) is stored in \(stuck.transferSyntaxUID), which cannot be decoded to send in \(target)")
        }
        // Big Endian is not used with web services (PS3.18 §8.7.3): such instances go as Explicit VR LE even for `*`.
        @Sendable func syntax(_ i: InstanceRecord) -> String {
            target != "*" ? target : i.transferSyntaxUID == Self.bigEndian ? Self.explicitLittleEndian : i.transferSyntaxUID
        }
        let store = self.store, pool = self.pool
        // Transcoding is pool work (WorkPool): admitted before the response starts, held to its end.
        let transcoding = found.contains { syntax($0) != $0.transferSyntaxUID }
        let ticket = transcoding ? try pool.admit() : nil
        // Across a series the instances are what runs in parallel; one instance's frames only alone.
        let series = transcoding && found.count > 1
        @Sendable func part(_ k: Int) async throws -> ByteBuffer {
            let i = found[k]
            let target = syntax(i)
            var part = ByteBuffer()
            if target == i.transferSyntaxUID {
                try await blob("read") { try await store.blobs.read(i.blob, ranges: [0..<i.blobSize], into: &part) }
            } else {
                let file = try await store.parse(i.blob)
                _ = ticket  // captured: held as long as the body
                part.writeBytes(try await Self.transcoded(file, to: target, sop: i.sopInstanceUID, pool: pool, parallelFrames: !series))
            }
            return part
        }
        let writer = MultipartWriter()
        let headers: HTTPFields = [.contentType: writer.contentType(type: "application/dicom", transferSyntax: target == "*" ? nil : target)]
        // A series or study streams in order; instances to transcode are made ahead on all of the
        // pool's threads, at most `prefetchWindow` of them in memory besides the one being written,
        // and fewer when they are large (`seriesPrefetchWindow`).
        let ahead = series ? OrderedPrefetch(count: found.count, window: Self.seriesPrefetchWindow(found, pool: pool), part) : nil
        let body = try await writer.body(count: found.count, contentType: { k in
            "application/dicom; transfer-syntax=\(syntax(found[k]))"
        }, part: { k in
            if let ahead { return try await ahead.value(k) }
            return try await part(k)
        })
        return Response(status: .ok, headers: headers, body: body)
    }

    /// An instance as Part 10 bytes in `target`. The frames of a multi-frame instance are decoded
    /// and encoded in parallel on the pool (`prefetchWindow` at a time) and assembled in order.
    static func transcoded(_ file: DICOMFile, to target: String, sop: String, pool: WorkPool, parallelFrames: Bool = true) async throws -> [UInt8] {
        @Sendable func refusal(_ error: any Error) -> DICOMwebError {
            DICOMwebError(.notAcceptable, "instance \(sop) cannot be sent in \(target): \(error)")
        }
        let plan: Transcoder.Plan
        do { plan = try Transcoder.Plan(file, to: target) } catch { throw refusal(error) }
        var frames: [(bytes: [UInt8], description: PixelDescription)] = []
        if plan.frameCount > 1 {
            let ahead = OrderedPrefetch(count: plan.frameCount, window: parallelFrames ? pool.prefetchWindow : 1) { f in
                try await pool.run {
                    do { return try plan.encodeFrame(f) } catch { throw refusal(error) }
                }
            }
            frames.reserveCapacity(plan.frameCount)
            for f in 0..<plan.frameCount { frames.append(try await ahead.value(f)) }
        }
        let encoded = frames
        return try await pool.run {
            do {
                let (ds, syntax) = plan.frameCount > 1 ? plan.finish(encoded) : try Transcoder.transcode(file, to: target)
                return try DICOMWriter.part10(ds, transferSyntax: syntax, meta: file.meta)
            } catch {
                throw refusal(error)
            }
        }
    }

    /// Decoded bytes one series response may hold ahead of the instance being written.
    static let seriesPrefetchBudget = 256 << 20

    /// The series prefetch window: `prefetchWindow`, fewer when the largest instance's decoded
    /// pixels (rows × columns × 3 samples × bytes × frames, the worst photometric case) would
    /// take the window past `seriesPrefetchBudget`; at least 1 (the serial path's own instance).
    static func seriesPrefetchWindow(_ found: [InstanceRecord], pool: WorkPool) -> Int {
        let largest = found.map { i -> Int in
            let a = i.attributes
            let frame = max(a.rows ?? 1, 1).multipliedReportingOverflow(by: max(a.columns ?? 1, 1)).partialValue
            let bytes = frame.multipliedReportingOverflow(by: 3 * max((a.bitsAllocated ?? 16) / 8, 1)).partialValue
            return bytes.multipliedReportingOverflow(by: max(a.numberOfFrames ?? 1, 1)).partialValue
        }.max() ?? 1
        return max(1, min(pool.prefetchWindow, seriesPrefetchBudget / max(largest, 1)))
    }

    static let explicitLittleEndian = TransferSyntax.explicitVRLittleEndian.uid
    static let bigEndian = TransferSyntax.explicitVRBigEndian.uid

    /// The transfer syntax to send instances in, from Accept (PS3.18 §8.7.3.5.2); 406 when none
    /// fits. A syntax Tessera encodes, or the one every instance is stored in, or `*`.
    static func negotiateInstanceSyntax(_ accept: String?, stored: Set<String>) throws -> String {
        let producible = PixelCodecs.encodableTransferSyntaxes
        for range in MediaType.accept(accept) where range.requestedType(routeTypes: ["application/dicom"]) == "application/dicom" {
            guard let ts = range["transfer-syntax"] else { return explicitLittleEndian }
            if ts == bigEndian { continue }
            if ts == "*" || producible.contains(ts) || stored == [ts] { return ts }
        }
        throw DICOMwebError(.notAcceptable, "none of the accepted media types can be produced; application/dicom with transfer-syntax *, as stored, or one of \(producible.joined(separator: ", "))")
    }

    // MARK: Frames

    /// Most frames one request may list.
    static let maximumFramesPerRequest = 1000

    /// The `{frames}` path segment (frames, rendered frames): 1 to 1,000 distinct numbers from 1.
    /// A frame listed twice is refused, not deduplicated: the response's parts answer the list in
    /// its order, and `1,1,1,…` was a 2 kB URL that cost a thousand decodes and encodes of one frame.
    static func frameList(_ text: String) throws -> [Int] {
        let numbers = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: " ")) }
        guard !numbers.isEmpty, numbers.allSatisfy({ ($0 ?? 0) >= 1 }) else {
            throw DICOMwebError(.badRequest, "frame list '\(text.prefix(80))' is not a comma-separated list of numbers from 1")
        }
        guard numbers.count <= maximumFramesPerRequest else {
            throw DICOMwebError(.badRequest, "the frame list names \(numbers.count) frames; at most \(maximumFramesPerRequest) per request")
        }
        var seen = Set<Int>()
        if let twice = numbers.compactMap({ $0 }).first(where: { !seen.insert($0).inserted }) {
            throw DICOMwebError(.badRequest, "frame \(twice) is listed more than once; each frame at most once per request")
        }
        return numbers.compactMap { $0 }
    }

    /// Frames from the stored frame index by range reads; decoded or transcoded only when Accept asks.
    func frames(_ request: Request, study: String, series: String?, sop: String, list: String) async throws -> Response {
        let (instance, records) = try await frameLocation(request, study: study, series: series, sop: sop)
        let numbers = try Self.frameList(list)
        guard !records.isEmpty else { throw DICOMwebError(.notFound, "the instance has no frames") }
        let storedSyntax = instance.framesTransferSyntaxUID
        let (mediaType, target) = try frameNegotiation.negotiate(request.headers[.accept], storedSyntax: storedSyntax)

        let source = InstanceFrames(store: store, instance: instance, records: records)
        if let beyond = numbers.first(where: { $0 > records.count }) {
            throw DICOMwebError(.notFound, "frame \(beyond) is beyond the instance's \(records.count) frames")
        }
        let ts = target == "*" ? storedSyntax : target
        let asStored = target == "*" || target == storedSyntax
        let writer = MultipartWriter()
        if asStored && numbers.count == 1 {
            // One stored frame, the viewer's usual request: header, bytes and closing in one buffer, one write.
            let body = try await writer.singlePart(contentType: "\(mediaType); transfer-syntax=\(ts)", size: records[numbers[0] - 1].ranges.reduce(0) { $0 + $1.count }) { buffer in
                try await blob("readFrame") { try await source.stored(numbers[0], into: &buffer) }
            }
            return Response(status: .ok, headers: [.contentType: writer.contentType(type: mediaType)], body: .init(byteBuffer: body))
        }
        // Stored frames are range reads and never wait for the pool; decoding and encoding do (WorkPool).
        let ticket = asStored ? nil : try pool.admit()
        // A decoder needs the pixel description, from the header: read once, before the body starts.
        if !asStored { _ = try await source.dataSet() }
        let pool = self.pool
        @Sendable func part(_ i: Int) async throws -> ByteBuffer {
            let n = numbers[i]
            var part = ByteBuffer()
            if asStored {
                try await blob("readFrame") { try await source.stored(n, into: &part) }
            } else {
                let stored = try await source.stored(n)
                _ = ticket  // captured: held as long as the body
                part.writeBytes(try await pool.run {
                    let decoded = try source.decode(stored)
                    if target == Self.explicitLittleEndian { return decoded.bytes }
                    guard let encoder = PixelCodecs.encoder(for: target) else { throw DICOMwebError(.notAcceptable, "cannot encode \(target)") }
                    return try encoder.encode(decoded.bytes, description: decoded.description).bytes
                })
            }
            return part
        }
        let body = try await writer.body(count: numbers.count, contentType: { _ in "\(mediaType); transfer-syntax=\(ts)" }, part: part)
        return Response(status: .ok, headers: [.contentType: writer.contentType(type: mediaType)], body: body)
    }

    /// (media type, transfer syntax or "*" for as stored) for frames (PS3.18 §8.7.3.5.3).
    /// application/octet-stream without a syntax means Explicit VR Little Endian, i.e. decoded;
    /// Big Endian frames are never sent as stored (§8.7.3) but decoded to little endian.
    static func negotiateFrameSyntax(_ accept: String?, storedType: String, storedSyntax: String, isNative: Bool) throws -> (String, String) {
        let lossless: [String: String] = ["image/jp2": "1.2.840.10008.1.2.4.90", "image/jphc": "1.2.840.10008.1.2.4.201"]
        let nativeAsStored = storedSyntax == bigEndian ? explicitLittleEndian : "*"
        for range in MediaType.accept(accept) {
            let type = range.requestedType(routeTypes: [storedType, "application/octet-stream"])
            let ts = range["transfer-syntax"]
            if ts == bigEndian { continue }
            switch type {
            case "application/octet-stream":
                if isNative && (ts == nil || ts == "*" || ts == storedSyntax || ts == explicitLittleEndian) { return (type, nativeAsStored) }
                if ts == "*" { return (storedType, "*") }
                if ts == nil || ts == explicitLittleEndian { return (type, explicitLittleEndian) }
            case storedType where !isNative:
                if ts == nil || ts == "*" || ts == storedSyntax { return (storedType, "*") }
                if let t = lossless[type], ts == t { return (type, t) }
            case "image/jp2", "image/jphc":
                if let t = lossless[type], ts == nil || ts == t { return (type, t) }
            default:
                continue
            }
        }
        throw DICOMwebError(.notAcceptable, "frames are stored as \(storedType) (\(storedSyntax)); they can be sent as stored, as application/octet-stream (Explicit VR LE), image/jp2 or image/jphc")
    }

    // MARK: Bulk data

    /// A bulk value by tag path; sequences resolve through their first item containing the tag.
    func bulkdata(_ request: Request, study: String, series: String?, sop: String, path: String) async throws -> Response {
        guard let instance = try await instances(request, study: study, series: series, sop: sop).first else { throw DICOMwebError(.notFound, "no such instance") }
        let tags = try path.split(separator: "/").map { part -> Tag in
            guard part.count == 8, let raw = UInt32(part, radix: 16) else { throw DICOMwebError(.badRequest, "'\(part.prefix(20))' is not a tag") }
            return Tag(raw)
        }
        guard let last = tags.last else { throw DICOMwebError(.badRequest, "no tag path") }
        let dicom = try await store.parse(instance.blob)
        var ds = dicom.dataSet
        for (k, t) in tags.dropLast().enumerated() {
            // The first item holding the next tag of the path.
            let next = tags[k + 1]
            guard let items = ds[t]?.items, let item = items.first(where: { $0.contains(next) }) ?? items.first else {
                throw DICOMwebError(.notFound, "no \(t) sequence")
            }
            ds = item
        }
        guard let element = ds[last] else { throw DICOMwebError(.notFound, "no element \(last)") }
        let storedSyntax = dicom.transferSyntax.uid
        let fragments: Bool
        if case .fragments = element.value { fragments = true } else { fragments = false }
        let decode = try Self.negotiateBulkData(request.headers[.accept], storedSyntax: fragments ? storedSyntax : nil)
        let writer = MultipartWriter()
        var parts: [ByteBuffer] = []
        switch element.value {
        case .fragments:
            let table = try FrameTable(file: dicom)
            let type = decode ? "application/octet-stream" : FrameMediaType.forTransferSyntax(storedSyntax)
            for i in table.frames.indices {
                parts.append(writer.partHeader(contentType: "\(type); transfer-syntax=\(decode ? Self.explicitLittleEndian : storedSyntax)"))
                parts.append(ByteBuffer(bytes: decode ? try table.decodeFrame(i).bytes : try table.encodedFrame(i)))
                parts.append(writer.partEnd)
            }
        case .bytes, .bulk:
            var bytes = element.valueBytes ?? []
            // Bulk data is little endian (PS3.18 §8.7.3.5.5): swap values of a big-endian data set.
            if ds.isBigEndian, let width = [VR.OW: 2, .OF: 4, .OL: 4, .OD: 8, .OV: 8, .US: 2, .SS: 2, .UL: 4, .SL: 4, .FL: 4, .FD: 8][element.vr] {
                bytes = stride(from: 0, to: bytes.count - width + 1, by: width).flatMap { bytes[$0..<$0 + width].reversed() }
            }
            parts.append(writer.partHeader(contentType: "application/octet-stream"))
            parts.append(ByteBuffer(bytes: bytes))
            parts.append(writer.partEnd)
        case .sequence:
            throw DICOMwebError(.badRequest, "\(last) is a sequence, not bulk data")
        }
        parts.append(writer.closing)
        let type = fragments && !decode ? FrameMediaType.forTransferSyntax(storedSyntax) : "application/octet-stream"
        return Response(status: .ok, headers: [.contentType: writer.contentType(type: type)], body: .init(contentsOf: parts))
    }

    /// Whether bulk data goes decoded, from Accept (PS3.18 §8.7.3.5.5; Docs/api.md, "Accept"):
    /// values are application/octet-stream, little endian. Encapsulated Pixel Data
    /// (`storedSyntax` set) goes as stored in its frames' media type, or decoded to native
    /// samples for application/octet-stream without `transfer-syntax=*`. 406 for anything else.
    static func negotiateBulkData(_ accept: String?, storedSyntax: String?) throws -> Bool {
        let storedType = storedSyntax.map(FrameMediaType.forTransferSyntax)
        for range in MediaType.accept(accept) {
            let ts = range["transfer-syntax"]
            switch range.requestedType(routeTypes: [storedType, "application/octet-stream"].compactMap { $0 }) {
            case storedType where ts == nil || ts == "*" || ts == storedSyntax:
                return false
            case "application/octet-stream" where ts == nil || ts == "*" || ts == explicitLittleEndian:
                return storedSyntax != nil && ts != "*"
            default:
                continue
            }
        }
        throw DICOMwebError(.notAcceptable, "bulk data is sent as application/octet-stream\(storedType.map { " or \($0) as stored" } ?? "")")
    }
}
