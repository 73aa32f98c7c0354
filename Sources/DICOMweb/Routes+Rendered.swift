import DICOMCore
import DICOMParser
import Foundation
import HTTPTypes
import Hummingbird
import ImageSetStore
import NIOCore
import PixelData

/// Rendered resources and thumbnails (PS3.18 §10.4.1.1.3 and §10.4.1.1.4): consumer-ready JPEG or
/// PNG images, windowed and scaled on the server.
extension DICOMwebService {
    func addRenderedRoutes(to group: RouterGroup<TesseraRequestContext>) {
        let instancePath = "studies/:study/series/:series/instances/:sop"
        group.get("\(instancePath)/rendered") { r, c in
            // A multi-frame instance renders its first frame: JPEG and PNG hold one image.
            try await self.rendered(r, study: c.parameters.require("study"), series: c.parameters.require("series"),
                                    sop: c.parameters.require("sop"), frames: [1], thumbnail: false)
        }
        group.get("\(instancePath)/frames/:frames/rendered") { r, c in
            try await self.rendered(r, study: c.parameters.require("study"), series: c.parameters.require("series"),
                                    sop: c.parameters.require("sop"), frames: try Self.frameList(c.parameters.require("frames")), thumbnail: false)
        }
        // A study or series renders every frame of its image instances (PS3.18 §10.4.1.1.3).
        for path in ["studies/:study", "studies/:study/series/:series"] {
            group.get(RouterPath(path + "/rendered")) { r, c in
                try await self.renderedAll(r, study: c.parameters.require("study"), series: c.parameters.get("series"))
            }
        }
        onEachLevel(of: group, .get, "/thumbnail") { try await self.thumbnail($0, study: $1, series: $2, sop: $3) }
        group.get("\(instancePath)/frames/:frames/thumbnail") { r, c in
            try await self.rendered(r, study: c.parameters.require("study"), series: c.parameters.require("series"),
                                    sop: c.parameters.require("sop"), frames: try Self.frameList(c.parameters.require("frames")), thumbnail: true)
        }
    }

    /// A representative image: the middle instance (by Instance Number) of the study's first series
    /// (by Series Instance UID order, as the index lists them), and the middle frame of a multi-frame instance.
    func thumbnail(_ request: Request, study: String, series: String?, sop: String?) async throws -> Response {
        let found = try await instances(request, study: study, series: series, sop: sop).filter { ($0.attributes.rows ?? 0) > 0 }
        guard let firstSeries = found.first?.seriesInstanceUID else { throw DICOMwebError(.notFound, "nothing in it has pixel data") }
        let candidates = found.filter { $0.seriesInstanceUID == firstSeries }
        let chosen = candidates[candidates.count / 2]
        let frames = max(chosen.attributes.numberOfFrames ?? 1, 1)
        return try await rendered(request, instance: chosen, frames: [(frames + 1) / 2], thumbnail: true)
    }

    func rendered(_ request: Request, study: String, series: String, sop: String, frames: [Int], thumbnail: Bool) async throws -> Response {
        guard let instance = try await instances(request, study: study, series: series, sop: sop).first else { throw DICOMwebError(.notFound, "no such instance") }
        return try await rendered(request, instance: instance, frames: frames, thumbnail: thumbnail)
    }

    func rendered(_ request: Request, instance: InstanceRecord, frames: [Int], thumbnail: Bool) async throws -> Response {
        let records = try await store.index.frames(of: instance.id)
        guard !records.isEmpty else { throw DICOMwebError(.notFound, "the instance has no frames") }
        let source = InstanceFrames(store: store, instance: instance, records: records)
        let header = try await source.dataSet()
        let (mediaType, image) = try renderer(request, source: source, header: header, frames: frames, thumbnail: thumbnail)
        if frames.count == 1 {
            let only = try await image(0)
            return Response(status: .ok, headers: [.contentType: mediaType], body: .init(byteBuffer: only))
        }
        let writer = MultipartWriter()
        return Response(status: .ok, headers: [.contentType: writer.contentType(type: mediaType)],
                        body: writer.streamingBody(count: frames.count, contentType: { _ in mediaType }, part: image))
    }

    /// Everything a rendered response needs, checked before it starts: its media type, and what
    /// renders part `i`. Synchronous, apart from the async handler above: Swift 6.3's release build
    /// crashed splitting the handler's coroutine (LLVM CoroSplit, swifterror) with all this inside.
    func renderer(_ request: Request, source: InstanceFrames, header: DataSet, frames: [Int], thumbnail: Bool) throws
        -> (String, @Sendable (Int) async throws -> ByteBuffer) {
        let query = request.uri.queryParameters
        let mediaType = try Self.renderedMediaType(accept: request.headers[.accept], query: query["accept"].map(String.init))
        var options = try Self.renderingOptions(query)
        // Thumbnails default to a 128-pixel box (PS3.18 leaves the size to the server).
        if thumbnail && options.viewport == nil { options.viewport = .init(width: 128, height: 128) }
        let records = source.records
        let display = DisplayAttributes(dataSet: header)
        let d = try source.pixelDescription()
        if let problem = options.viewport?.problem(imageWidth: d.columns, imageHeight: d.rows) { throw DICOMwebError(.badRequest, problem) }
        if let beyond = frames.first(where: { $0 > records.count }) {
            throw DICOMwebError(.notFound, "frame \(beyond) is beyond the instance's \(records.count) frames")
        }
        // Rendering work per request is bounded: frames × output pixels.
        let size = Self.outputSize(options, columns: d.columns, rows: d.rows)
        guard frames.count * size.0 * size.1 <= Self.maximumRenderedPixels else {
            throw DICOMwebError(.badRequest, "\(frames.count) frames of \(size.0)×\(size.1) exceed \(Self.maximumRenderedPixels) rendered pixels per request")
        }
        // Rendering is pool work (WorkPool): admitted before the response starts, held to its end.
        let chosen = options
        return (mediaType, Self.renderer(ticket: try pool.admit(), pool: pool, source: source, frames: frames) { i, stored in
            try Self.renderedFrame(frames[i], stored: stored, of: source, header: header, display: display, options: chosen, mediaType: mediaType)
        })
    }

    /// Part `i` of a rendered response: the stored frame read, then rendered in the work pool while
    /// `ticket` holds the request's place.
    static func renderer(ticket: WorkPool.Ticket, pool: WorkPool, source: InstanceFrames, frames: [Int],
                         _ work: @escaping @Sendable (Int, [UInt8]) throws -> ByteBuffer) -> @Sendable (Int) async throws -> ByteBuffer {
        { i in
            _ = ticket  // captured: held as long as the body
            let stored = try await source.stored(frames[i])
            return try await pool.run { try work(i, stored) }
        }
    }

    /// The size of one rendered image of a `columns` × `rows` frame: the viewport's, scaled from its
    /// source region (the whole frame when it names none), else the frame's own.
    static func outputSize(_ options: RenderingOptions, columns: Int, rows: Int) -> (Int, Int) {
        options.viewport?.outputSize(sourceWidth: abs(options.viewport?.source?.width ?? columns),
                                     sourceHeight: abs(options.viewport?.source?.height ?? rows)) ?? (columns, rows)
    }

    /// Frame `n` of `source` rendered and encoded. An enhanced multi-frame object's frame has its own
    /// rescale and window (PS3.3 C.7.6.16.2.9, C.7.6.16.2.10), which PS3.18 §8.3.5.1 rendering applies.
    static func renderedFrame(_ n: Int, stored: [UInt8], of source: InstanceFrames, header: DataSet, display: DisplayAttributes,
                              options: RenderingOptions, mediaType: String) throws -> ByteBuffer {
        let image: RenderedImage
        do {
            image = try source.render(stored, display: display.frame(n - 1, of: header), options: options)
        } catch let error as DICOMError {
            // The pixels are there but cannot be shown as asked (an unusable palette, say).
            throw DICOMwebError(.notAcceptable, "frame \(n) cannot be rendered: \(error.message)")
        }
        return ByteBuffer(bytes: mediaType == "image/png" ? try image.png() : try image.jpeg(quality: options.quality))
    }

    /// A rendered study or series: multipart/related, one image per frame of each instance with pixel
    /// data, in the index's order. JPEG and PNG hold one image each, so a single-part Accept is a 406
    /// (PS3.18 §10.4.4, the note to Table 10.4.4-1). The whole response fits the per-request bound,
    /// checked from the indexed sizes before it starts; it then streams, one instance's header and
    /// one image in memory at a time.
    func renderedAll(_ request: Request, study: String, series: String?) async throws -> Response {
        let query = request.uri.queryParameters
        let mediaType = try Self.renderedMediaType(accept: request.headers[.accept], query: query["accept"].map(String.init), multipartOnly: true)
        let options = try Self.renderingOptions(query)
        let found = try await instances(request, study: study, series: series, sop: nil).filter { ($0.attributes.rows ?? 0) > 0 && ($0.attributes.columns ?? 0) > 0 }
        guard !found.isEmpty else { throw DICOMwebError(.notFound, "nothing in it has pixel data") }
        // Part p is frame p - starts[k] + 1 of instance k, for the last k with starts[k] <= p.
        var starts: [Int] = []
        var count = 0, total = 0
        for (k, i) in found.enumerated() {
            let rows = i.attributes.rows ?? 0, columns = i.attributes.columns ?? 0
            if let problem = options.viewport?.problem(imageWidth: columns, imageHeight: rows) {
                throw DICOMwebError(.badRequest, "instance \(i.sopInstanceUID): \(problem)")
            }
            let size = Self.outputSize(options, columns: columns, rows: rows)
            let frames = max(i.attributes.numberOfFrames ?? 1, 1)
            total += frames * size.0 * size.1
            guard total <= Self.maximumRenderedPixels else {
                throw DICOMwebError(.badRequest, "the \(series == nil ? "study" : "series") renders to more than \(Self.maximumRenderedPixels) pixels; ask for a smaller viewport or fewer instances")
            }
            starts.append(count)
            count += frames
        }
        let store = self.store
        // The instance being rendered: parts of one instance are adjacent, so its header is read once.
        final class Current: @unchecked Sendable {  // used by the one streaming body only
            var index = -1
            var source: InstanceFrames?, header: DataSet?, display = DisplayAttributes()
        }
        let current = Current()
        let chosen = options, offsets = starts, pool = self.pool
        let ticket = try pool.admit()
        @Sendable func image(_ p: Int) async throws -> ByteBuffer {
            var k = max(current.index, 0)
            while k + 1 < offsets.count && offsets[k + 1] <= p { k += 1 }
            let n = p - offsets[k] + 1
            if current.index != k {
                let records = try await store.index.frames(of: found[k].id)
                let source = InstanceFrames(store: store, instance: found[k], records: records)
                let header = try await source.dataSet()
                (current.index, current.source, current.header, current.display) = (k, source, header, DisplayAttributes(dataSet: header))
            }
            guard let source = current.source, let header = current.header else { throw DICOMwebError(.internalServerError, "no instance") }
            let display = current.display
            _ = ticket  // captured: held as long as the body
            let stored = try await source.stored(n)
            return try await pool.run { try Self.renderedFrame(n, stored: stored, of: source, header: header, display: display, options: chosen, mediaType: mediaType) }
        }
        let writer = MultipartWriter()
        return Response(status: .ok, headers: [.contentType: writer.contentType(type: mediaType)],
                        body: try await writer.body(count: count, contentType: { _ in mediaType }, part: image))
    }

    /// Most pixels one rendered request may produce (frames × output size): 64 megapixels.
    static let maximumRenderedPixels = 1 << 26

    /// image/jpeg (the default) or image/png, from the `accept` query parameter (which wins,
    /// PS3.18 §8.3.3.1) or the Accept header, single part or as the type of multipart/related.
    /// `multipartOnly` (studies, series) ignores single-part types (PS3.18 §10.4.4).
    static func renderedMediaType(accept: String?, query: String?, multipartOnly: Bool = false) throws -> String {
        for range in MediaType.accept(query ?? accept) {
            var type = range.type
            if type == "multipart/related" || type == "multipart/*" {
                type = range["type"]?.lowercased() ?? "image/jpeg"
            } else if multipartOnly && type != "*/*" {
                continue
            }
            switch type {
            case "image/jpeg", "image/*", "*/*": return "image/jpeg"
            case "image/png": return "image/png"
            default: continue
            }
        }
        throw DICOMwebError(.notAcceptable, multipartOnly ? "a rendered study or series is multipart/related; type=\"image/jpeg\" or \"image/png\""
                                                          : "rendered images are image/jpeg or image/png")
    }

    /// `window=center,width[,function]`, `viewport=vw,vh[,sx,sy,sw,sh]`, `quality=1..100` (PS3.18 §8.3.5.1).
    static func renderingOptions(_ query: Parameters) throws -> RenderingOptions {
        var options = RenderingOptions()
        if let w = query["window"] {
            let parts = w.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: " ") }
            guard parts.count == 2 || parts.count == 3, let c = Double(parts[0]), let width = Double(parts[1]), c.isFinite, width.isFinite, width >= 1,
                  let function = parts.count == 3 ? RenderingOptions.WindowFunction(rawValue: parts[2].uppercased().replacingOccurrences(of: "-", with: "_")) : .linear
            else {
                throw DICOMwebError(.badRequest, "window is center,width[,linear|linear-exact|sigmoid] with width >= 1")
            }
            options.window = .init(center: c, width: width, function: function)
        }
        if let v = query["viewport"] {
            let parts = v.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: " ")) }
            guard parts.count == 2 || parts.count == 6, parts.allSatisfy({ $0 != nil }) else {
                throw DICOMwebError(.badRequest, "viewport is vw,vh or vw,vh,sx,sy,sw,sh (whole numbers)")
            }
            let n = parts.compactMap { $0 }
            guard (1...RenderingOptions.maximumSide).contains(n[0]), (1...RenderingOptions.maximumSide).contains(n[1]) else {
                throw DICOMwebError(.badRequest, "viewport width and height are 1...\(RenderingOptions.maximumSide)")
            }
            // Rows and Columns are at most 65535: so is any valid source region (and no arithmetic on it overflows).
            guard n.count == 2 || (n[2...].allSatisfy { (-65535...65535).contains($0) } && n[2] >= 0 && n[3] >= 0) else {
                throw DICOMwebError(.badRequest, "viewport source region values are within the image (0...65535, width and height ±)")
            }
            options.viewport = .init(width: n[0], height: n[1], source: n.count == 6 ? (n[2], n[3], n[4], n[5]) : nil)
        }
        if let q = query["quality"] {
            guard let n = Int(q), (1...100).contains(n) else { throw DICOMwebError(.badRequest, "quality is 1...100") }
            options.quality = n
        }
        return options
    }
}
