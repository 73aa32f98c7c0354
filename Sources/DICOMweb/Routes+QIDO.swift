import DICOMCore
import DICOMDictionary
import Foundation
import HTTPTypes
import Hummingbird
import ImageSetStore
import NIOCore

extension DICOMwebService {
    func addQIDORoutes(to group: RouterGroup<TesseraRequestContext>) {
        group.get("studies") { request, _ in try await self.search(request, level: .study, study: nil, series: nil) }
        group.get("series") { request, _ in try await self.search(request, level: .series, study: nil, series: nil) }
        group.get("instances") { request, _ in try await self.search(request, level: .instance, study: nil, series: nil) }
        group.get("studies/:study/series") { request, context in
            try await self.search(request, level: .series, study: context.parameters.require("study"), series: nil)
        }
        group.get("studies/:study/instances") { request, context in
            try await self.search(request, level: .instance, study: context.parameters.require("study"), series: nil)
        }
        group.get("studies/:study/series/:series/instances") { request, context in
            try await self.search(request, level: .instance, study: context.parameters.require("study"),
                            series: context.parameters.require("series"))
        }
    }

    /// QIDO-RS (PS3.18 §10.6), answered from the index.
    func search(_ request: Request, level: SearchQuery.Level, study: String?, series: String?) async throws -> Response {
        // A UID in the path is checked like one in the query: 400, not an empty answer.
        try Self.requireValidUIDs(study, series)
        var query = SearchQuery(level: level)
        query.studyInstanceUID = study
        query.seriesInstanceUID = series
        query.scope = try Self.scope(request)
        let linkQuery = Self.scopeQuery(query.scope)
        var include: Set<Tag> = []
        var includeAll = false
        var ignored: [String] = []
        var limit: Int?
        for (key, value) in request.uri.queryParameters {
            let k = String(key), v = String(value)
            switch k {
            case "limit":
                guard let n = Int(v), n >= 0 else { throw DICOMwebError(.badRequest, "limit '\(v)' is not a non-negative integer") }
                limit = n
            case "offset":
                guard let n = Int(v), n >= 0 else { throw DICOMwebError(.badRequest, "offset '\(v)' is not a non-negative integer") }
                query.offset = n
            case "imageSetId":
                continue  // read by scope(_:)
            case "fuzzymatching":
                guard v == "true" || v == "false" else { throw DICOMwebError(.badRequest, "fuzzymatching is true or false") }
                query.fuzzyMatching = v == "true"
            case "includefield":
                for name in v.split(separator: ",") {
                    if name == "all" { includeAll = true; continue }
                    guard let tag = Self.attributeTag(String(name)) else {
                        throw DICOMwebError(.badRequest, "includefield '\(name)' is not a DICOM keyword or tag")
                    }
                    include.insert(tag)
                    // A private element comes with the creator of its block (PS3.18 §10.6.3.3.1).
                    if let creator = tag.privateCreatorTag { include.insert(creator) }
                }
            default:
                guard let tag = Self.attributeTag(k) else {
                    throw DICOMwebError(.badRequest, "'\(k)' is neither a query parameter nor a DICOM keyword or tag")
                }
                guard SearchQuery.isMatchable(tag, at: level) else { ignored.append(k); continue }
                query.conditions[tag] = try Self.condition(for: tag, value: v)
            }
        }
        // Without `limit` a page holds the default, beyond the maximum it is clamped; one row more
        // than the page tells whether matches remain (PS3.18 §8.3.4.4.1).
        let page = min(limit ?? SearchQuery.defaultLimit, SearchQuery.maximumLimit)
        query.limit = page + 1
        var rows = try await index("search") { try await store.index.search(query) }
        let truncated = rows.count > page
        if truncated { rows.removeLast(rows.count - page) }
        RequestNotes.current?.touched(rows)  // for the request's audit record
        var warnings: [String] = []
        let clamped = limit.map { $0 > SearchQuery.maximumLimit } ?? false
        if clamped { warnings.append("limit \(limit ?? 0) exceeds the maximum of \(SearchQuery.maximumLimit) results per response") }
        // Only when the server chose the page size: a client that set `limit` asked for that page.
        if truncated && (limit == nil || clamped) {
            warnings.append("There are additional results that can be requested with offset=\(query.offset + page)")
        }
        let root = root(request)
        var results: [QIDOResult] = []
        results.reserveCapacity(rows.count)
        for row in rows {
            var json = QIDOResult()
            // Attributes beyond the typed columns come from a representative instance's stored JSON.
            if includeAll || !include.isEmpty, let meta = try await store.index.metadata(of: row.representativeInstanceID),
               let object = try JSONSerialization.jsonObject(with: Data(meta)) as? [String: Any] {
                for (key, value) in object {
                    guard let raw = UInt32(key, radix: 16) else { continue }
                    let tag = Tag(raw)
                    if include.contains(tag) || (includeAll && Self.belongs(tag, to: level)) {
                        json.set(key, .stored(Self.resolvingBulkURIs(value, root: root, suffix: linkQuery)))
                    }
                }
            }
            for (tag, value) in row.values { json.set(tag, .column(vr: DataDictionary.vr(for: tag).description, text: value)) }
            var retrieve = "\(root)/studies/\(row.studyInstanceUID)"
            switch level {
            case .study:
                json.set(Tag(0x0020_1206), .count(row.numberOfStudyRelatedSeries ?? 0))
                json.set(Tag(0x0020_1208), .count(row.numberOfStudyRelatedInstances ?? 0))
                json.set(Tag(0x0008_0061), .codes(row.modalitiesInStudy))
            case .series:
                retrieve += "/series/\(row.seriesInstanceUID ?? "")"
                json.set(Tag(0x0020_1209), .count(row.numberOfSeriesRelatedInstances ?? 0))
            case .instance:
                retrieve += "/series/\(row.seriesInstanceUID ?? "")/instances/\(row.sopInstanceUID ?? "")"
            }
            json.set(Tag(0x0008_1190), .url(retrieve + linkQuery))
            results.append(json)
        }
        let body = QIDOResult.serialize(results)
        var headers: HTTPFields = [.contentType: "application/dicom+json"]
        if !ignored.isEmpty {
            warnings.append("The fields \(ignored.joined(separator: ", ")) could not be matched at this level and were ignored")
        }
        for warning in warnings { headers.append(HTTPField(name: HTTPField.Name("Warning")!, value: "299 tessera \"\(warning)\"")) }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: body))
    }

    static func attributeTag(_ name: String) -> Tag? {
        if name.count == 8, let raw = UInt32(name, radix: 16) { return Tag(raw) }
        return DataDictionary.tag(forKeyword: name)
    }

    /// Single value, UID list, wildcard or range (PS3.4 C.2.2.2), by the attribute's kind.
    static func condition(for tag: Tag, value: String) throws -> SearchQuery.Condition {
        let kind = SearchQuery.matchable[tag]?.kind
        if kind == .uid || kind == .modalitiesInStudy {
            let values = value.split(whereSeparator: { $0 == "," || $0 == "\\" }).map(String.init)
            guard !values.isEmpty else { throw DICOMwebError(.badRequest, "\(tag) needs a value") }
            if kind == .uid, let bad = values.first(where: { !UID.isValid($0) }) {
                throw DICOMwebError(.badRequest, "'\(bad.prefix(80))' is not a valid UID")
            }
            return .anyOf(values)
        }
        if kind == .dateOrTime, value.contains("-") {
            let parts = value.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false).map { String($0) }
            let lo = parts[0].isEmpty ? nil : parts[0], hi = parts.count > 1 && !parts[1].isEmpty ? parts[1] : nil
            guard lo != nil || hi != nil, [lo, hi].allSatisfy({ $0 == nil || $0!.allSatisfy { $0.isNumber || $0 == "." } }) else {
                throw DICOMwebError(.badRequest, "'\(value)' is not a date or time range")
            }
            return .range(lo, hi)
        }
        if kind == .dateOrTime, !value.allSatisfy({ $0.isNumber || $0 == "." }) {
            throw DICOMwebError(.badRequest, "'\(value)' is not a date or time")
        }
        if kind == .integer, Int(value) == nil { throw DICOMwebError(.badRequest, "'\(value)' is not an integer") }
        return .equals(value, wildcard: value.contains("*") || value.contains("?"))
    }

    /// Study-level attributes are patient/study groups; series-level adds series groups; instances everything.
    static func belongs(_ tag: Tag, to level: SearchQuery.Level) -> Bool {
        let pixelOrLarge: Set<UInt32> = [0x7FE0_0010, 0x7FE0_0008, 0x7FE0_0009]
        guard !pixelOrLarge.contains(tag.rawValue) else { return false }
        switch level {
        case .study: return tag.group == 0x0010 || [0x0008_0020, 0x0008_0030, 0x0008_0050, 0x0008_0090, 0x0008_1030, 0x0020_0010, 0x0008_0080].contains(tag.rawValue)
        case .series: return belongs(tag, to: .study) || [0x0008_0060, 0x0008_103E, 0x0020_0011, 0x0018_0015, 0x0008_0021, 0x0008_0031].contains(tag.rawValue)
        case .instance: return true
        }
    }

    static func resolvingBulkURIs(_ value: Any, root: String, suffix: String) -> Any {
        if let s = value as? String, s.hasPrefix(BulkURI.prefix) { return root + s.dropFirst(BulkURI.prefix.count) + suffix }
        if let d = value as? [String: Any] { return d.mapValues { resolvingBulkURIs($0, root: root, suffix: suffix) } }
        if let a = value as? [Any] { return a.map { resolvingBulkURIs($0, root: root, suffix: suffix) } }
        return value
    }
}
