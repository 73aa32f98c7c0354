import AccessControl
@testable import DICOMweb
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ImageSetStore
import NIOCore
import TestSupport
import XCTest

/// GET /metrics (Docs/operations.md, "Metrics"): what a STOW and a frame fetch move, parsed by
/// prometheus_client's parser (the reference implementation of the text format), route labels
/// without UIDs, the access rule and the scraper token.
final class MetricsTests: DICOMwebTestCase, @unchecked Sendable {
    /// Samples of the exposition, keyed `name{label="value",...}` with labels sorted, as the oracle parsed them.
    func samples(_ client: any TestClientProtocol, headers: HTTPFields = [:]) async throws -> [String: Double] {
        let text = try await client.execute(uri: "/metrics", method: .get, headers: headers) { r -> Data in
            XCTAssertEqual(r.status, .ok)
            XCTAssertEqual(r.headers[.contentType], "text/plain; version=0.0.4; charset=utf-8")
            return Data(r.body.readableBytesView)
        }
        let parsed = try XCTUnwrap(try JSONSerialization.jsonObject(with: try Corpus.oracle("prometheus_parse.py", [], stdin: text)) as? [[Any]])
        var out: [String: Double] = [:]
        for s in parsed {
            let labels = (s[1] as? [String: String] ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\"\($0.value)\"" }
            out["\(s[0])\(labels.isEmpty ? "" : "{" + labels.joined(separator: ",") + "}")"] = (s[2] as? NSNumber)?.doubleValue
        }
        return out
    }

    static let frameRoute = "/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames/{frames}"

    func testAStowAndAFrameFetchMoveTheirCounters() async throws {
        let sop = "1.2.826.0.1.3680043.9.7433.2.1.77"
        let instance = try Self.instance(sop: sop)
        let app = Application(router: buildRouter(store: store, configuration: DICOMwebConfiguration()))
        try await app.test(.router) { client in
            let before = try await self.samples(client)
            let (status, _) = try await self.stow(client, [instance])
            XCTAssertEqual(status, .ok)
            // One instance refused: not DICOM (PS3.18 Annex I, Failure Reason 0xC000 "cannot understand").
            _ = try await self.stow(client, [Array("not dicom".utf8)])
            let uri = "/dicomweb/studies/\(Self.study)/series/\(Self.series)/instances/\(sop)/frames/1"
            let frameBytes = try await client.execute(uri: uri, method: .get, headers: [.accept: "multipart/related; type=\"application/octet-stream\""]) { r in
                XCTAssertEqual(r.status, .ok)
                return r.body.readableBytes
            }
            try await client.execute(uri: uri.replacingOccurrences(of: sop, with: sop + ".9"), method: .get) { r in XCTAssertEqual(r.status, .notFound) }
            let after = try await self.samples(client)
            func delta(_ key: String) -> Double { (after[key] ?? 0) - (before[key] ?? 0) }

            XCTAssertEqual(delta(#"tessera_stow_instances_total{outcome="stored",reason="none"}"#), 1)
            let failed = after.filter { $0.key.hasPrefix(#"tessera_stow_instances_total{outcome="failed""#) }
            XCTAssertEqual(failed.values.reduce(0, +), 1, "\(failed)")
            XCTAssertEqual(delta(#"tessera_http_requests_total{method="POST",route="/dicomweb/studies",status="2xx"}"#), 1)
            XCTAssertEqual(delta("tessera_http_requests_total{method=\"GET\",route=\"\(Self.frameRoute)\",status=\"2xx\"}"), 1)
            XCTAssertEqual(delta("tessera_http_requests_total{method=\"GET\",route=\"\(Self.frameRoute)\",status=\"4xx\"}"), 1)
            XCTAssertEqual(delta("tessera_http_request_duration_seconds_count{method=\"GET\",route=\"\(Self.frameRoute)\",status=\"2xx\"}"), 1)
            XCTAssertEqual(delta("tessera_http_response_bytes_total{route=\"\(Self.frameRoute)\"}"), Double(frameBytes))
            XCTAssertEqual(delta(#"tessera_http_request_bytes_total{route="/dicomweb/studies"}"#) > Double(instance.count), true)
            XCTAssertEqual(delta(#"tessera_index_call_duration_seconds_count{operation="frames",result="ok"}"#), 1)
            XCTAssertEqual(delta(#"tessera_blob_call_duration_seconds_count{operation="readFrame",result="ok"}"#), 1)
            // The STOW's instances were one group commit (the store's own metric).
            XCTAssertEqual(after.filter { $0.key.hasPrefix("tessera_group_commit_batch_size") && $0.key.contains("count") }.values.reduce(0, +) >= 1, true,
                           "\(after.keys.filter { $0.hasPrefix("tessera_group") })")
            XCTAssertEqual(after["tessera_work_pool_admitted"], 0)
            XCTAssertNotNil(after["tessera_audit_buffer_depth"])
            XCTAssertEqual(after["tessera_audit_records_dropped_total"], 0)
            // No label carries a UID or a path: the cardinality stays bounded and ids stay out of monitoring.
            for key in after.keys { XCTAssertFalse(key.contains(Self.study) || key.contains(sop), key) }
        }
    }

    func testEachApplicationCountsApartAndMetricsCanBeOff() async throws {
        let first = DICOMwebConfiguration(), second = DICOMwebConfiguration()
        try await Application(router: buildRouter(store: store, configuration: first)).test(.router) { client in
            try await client.execute(uri: "/health", method: .get) { _ in }
        }
        let health = #"tessera_http_requests_total{method="GET",route="/health",status="2xx"}"#
        try await Application(router: buildRouter(store: store, configuration: second)).test(.router) { client in
            let samples = try await self.samples(client)
            XCTAssertNil(samples[health], "the second application's registry is its own")
        }
        var off = DICOMwebConfiguration()
        off.metrics = nil
        try await Application(router: buildRouter(store: store, configuration: off)).test(.router) { client in
            try await client.execute(uri: "/metrics", method: .get) { r in XCTAssertEqual(r.status, .notFound) }
        }
    }

    func testMetricsAreForAdminsOrTheScraperToken() async throws {
        var key: [Role: String] = [:]
        for role in [Role.viewer, .admin] {
            key[role] = APIKey.generate()
            try await store.accessKeys.createAPIKey(APIKeyRecord(name: "metrics-\(role.rawValue)", role: role, keyHash: APIKey.hash(key[role]!), created: Date()))
        }
        let viewer = key[.viewer]!, admin = key[.admin]!
        var config = DICOMwebConfiguration()
        config.metricsToken = "scraper-token-0123456789"
        try await Application(router: buildRouter(store: store, configuration: config)).test(.router) { client in
            try await client.execute(uri: "/metrics", method: .get) { r in XCTAssertEqual(r.status, .unauthorized) }
            try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: "Bearer \(viewer)"]) { r in XCTAssertEqual(r.status, .forbidden) }
            try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: "Bearer \(admin)"]) { r in XCTAssertEqual(r.status, .ok) }
            try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: "Bearer scraper-token-0123456789"]) { r in
                XCTAssertEqual(r.status, .ok)
            }
            try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: "Bearer scraper-token-012345678"]) { r in
                XCTAssertEqual(r.status, .unauthorized)
            }
            // The token opens /metrics only.
            try await client.execute(uri: "/dicomweb/studies", method: .get, headers: [.authorization: "Bearer scraper-token-0123456789"]) { r in
                XCTAssertEqual(r.status, .unauthorized)
            }
        }
    }
}
