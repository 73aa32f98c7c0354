import Foundation
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// `tessera serve` driven by dicomweb-client (PyPI), a real DICOMweb client: store, search,
/// retrieve instances, metadata, frames and bulk data, compared with the originals
/// (Tools/oracles/dicomweb_interop.py).
final class InteropTests: XCTestCase {
    static let files = [
        "CT_small.dcm", "emri_small_jpeg_2k_lossless.dcm", "SC_rgb_rle_2frame.dcm", "US1_J2KR.dcm", "RG1_UNCR.dcm",
        "JPGLosslessP14SV1_1s_1f_8b.dcm", "MR_small_jpeg_ls_lossless.dcm", "693_J2KR.dcm",
    ]

    func testDicomwebClientAgainstTesseraServe() throws {
        let byName = Dictionary(try Corpus.files().map { (URL(fileURLWithPath: $0).lastPathComponent, $0) }, uniquingKeysWith: { a, _ in a })
        let paths = try Self.files.map { try XCTUnwrap(byName[$0], $0) }
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-interop-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: data) }
        let port = 20000 + Int(getpid() % 20000)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: try Corpus.product("tessera"))
        server.arguments = ["serve", "--port", String(port), "--data", data, "--no-demo"]
        server.standardError = FileHandle.nullDevice
        server.standardOutput = FileHandle.nullDevice
        try server.run()
        defer { server.terminate(); server.waitUntilExit() }
        let curl = try Corpus.tool("curl")
        var up = false
        for _ in 0..<200 where !up {
            usleep(100_000)
            up = (try? Corpus.runCapturing(curl, ["-sf", "http://127.0.0.1:\(port)/health"]))?.status == 0
        }
        XCTAssertTrue(up, "tessera serve did not start")
        let out = try Corpus.oracle("dicomweb_interop.py", ["http://127.0.0.1:\(port)/dicomweb"] + paths)
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: out) as? [String: Any])
        XCTAssertEqual(report["problems"] as? [String], [])
        XCTAssertEqual(report["stored"] as? Int, paths.count)
        XCTAssertEqual(report["retrieved_identical"] as? Int, paths.count)
        XCTAssertGreaterThanOrEqual(report["frames_checked"] as? Int ?? 0, paths.count)
        XCTAssertEqual(report["rendered_checked"] as? Int, paths.count, "every file has pixels")
        XCTAssertEqual(report["conflict_checked"] as? Int, 1, "a conflicting instance stays out of its study")
        print("interop: \(report)")
    }
}
