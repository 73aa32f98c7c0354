import DICOMCore
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
            try self.rendered(r, study: c.parameters.require("study"), series: c.parameters.require("series"),
                              sop: c.parameters.require("sop"), frames: [1], thumbnail: false)
        }
        group.get("\(instancePath)/frames/:frames/rendered") { r, c in
            try self.rendered(r, study: c.parameters.require("study"), series: c.parameters.require("series"),
                              sop: c.parameters.require("sop"), frames: try Self.frameList(c.parameters.require("frames")), thumbnail: false)
        }
        onEachLevel(of: group, .get, "/thumbnail") { try self.thumbnail($0, study: $1, series: $2, sop: $3) }
        group.get("\(instancePath)/frames/:frames/thumbnail") { r, c in
            try self.rendered(r, study: c.parameters.require("study"), series: c.parameters.require("series"),
                              sop: c.parameters.require("sop"), frames: try Self.frameList(c.parameters.require("frames")), thumbnail: true)
        }
    }

    /// A representative image: the middle instance (by Instance Number) of the study's first series
    /// (by Series Instance UID order, as the index lists them), and the middle frame of a multi-frame instance.
    func thumbnail(_ request: Request, study: String, series: String?, sop: String?) throws -> Response {
        let found = try instances(study: study, series: series, sop: sop).filter { ($0.attributes.rows ?? 0) > 0 }
        guard let firstSeries = found.first?.seriesInstanceUID else { throw DICOMwebError(.notFound, "nothing in it has pixel data") }
        let candidates = found.filter { $0.seriesInstanceUID == firstSeries }
        let chosen = candidates[candidates.count / 2]
        let frames = max(chosen.attributes.numberOfFrames ?? 1, 1)
        return try rendered(request, instance: chosen, frames: [(frames + 1) / 2], thumbnail: true)
    }

    func rendered(_ request: Request, study: String, series: String, sop: String, frames: [Int], thumbnail: Bool) throws -> Response {
        guard let instance = try instances(study: study, series: series, sop: sop).first else { throw DICOMwebError(.notFound, "no such instance") }
        return try rendered(request, instance: instance, frames: frames, thumbnail: thumbnail)
    }

    func rendered(_ request: Request, instance: InstanceRecord, frames: [Int], thumbnail: Bool) throws -> Response {
        let query = request.uri.queryParameters
        let mediaType = try Self.renderedMediaType(accept: request.headers[.accept], query: query["accept"].map(String.init))
        var options = try Self.renderingOptions(query)
        // Thumbnails default to a 128-pixel box (PS3.18 leaves the size to the server).
        if thumbnail && options.viewport == nil { options.viewport = .init(width: 128, height: 128) }
        let records = try store.index.frames(of: instance.id)
        guard !records.isEmpty else { throw DICOMwebError(.notFound, "the instance has no frames") }
        let source = InstanceFrames(store: store, instance: instance, records: records)
        let display = DisplayAttributes(dataSet: try source.dataSet())
        let d = try source.pixelDescription()
        if let problem = options.viewport?.problem(imageWidth: d.columns, imageHeight: d.rows) { throw DICOMwebError(.badRequest, problem) }
        if let beyond = frames.first(where: { $0 > records.count }) {
            throw DICOMwebError(.notFound, "frame \(beyond) is beyond the instance's \(records.count) frames")
        }
        // Rendering work per request is bounded: frames × output pixels.
        let size = options.viewport?.outputSize(sourceWidth: abs(options.viewport?.source?.width ?? d.columns),
                                                sourceHeight: abs(options.viewport?.source?.height ?? d.rows)) ?? (d.columns, d.rows)
        guard frames.count * size.0 * size.1 <= Self.maximumRenderedPixels else {
            throw DICOMwebError(.badRequest, "\(frames.count) frames of \(size.0)×\(size.1) exceed \(Self.maximumRenderedPixels) rendered pixels per request")
        }
        let chosen = options
        @Sendable func image(_ i: Int) throws -> ByteBuffer {
            let n = frames[i]
            let image: RenderedImage
            do {
                image = try Renderer.render(try source.decode(try source.stored(n)), display: display, options: chosen)
            } catch let error as DICOMError {
                // The pixels are there but cannot be shown as asked (an unusable palette, say).
                throw DICOMwebError(.notAcceptable, "frame \(n) cannot be rendered: \(error.message)")
            }
            return ByteBuffer(bytes: mediaType == "image/png" ? try image.png() : try image.jpeg(quality: chosen.quality))
        }
        if frames.count == 1 {
            return Response(status: .ok, headers: [.contentType: mediaType], body: .init(byteBuffer: try image(0)))
        }
        let writer = MultipartWriter()
        return Response(status: .ok, headers: [.contentType: writer.contentType(type: mediaType)],
                        body: writer.streamingBody(count: frames.count, contentType: { _ in mediaType }, part: image))
    }

    /// Most pixels one rendered request may produce (frames × output size): 64 megapixels.
    static let maximumRenderedPixels = 1 << 26

    /// image/jpeg (the default) or image/png, from the `accept` query parameter (which wins,
    /// PS3.18 §8.3.3.1) or the Accept header.
    static func renderedMediaType(accept: String?, query: String?) throws -> String {
        for range in MediaType.accept(query ?? accept) {
            switch range.type {
            case "image/jpeg", "image/*", "*/*": return "image/jpeg"
            case "image/png": return "image/png"
            default: continue
            }
        }
        throw DICOMwebError(.notAcceptable, "rendered images are image/jpeg or image/png")
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
