@testable import DICOMweb
import XCTest

/// The fast path's reading of a frame URL (PS3.18 §10.4.1.1.2's `…/instances/{sop}/frames/{list}`,
/// here one frame number): anything it does not read exactly goes to the router.
final class StoredFrameFastPathTests: XCTestCase {
    func testAFramePathIsReadIntoItsUIDsAndFrame() throws {
        let path = try XCTUnwrap(StoredFrameFastPath.framePath("/dicomweb/studies/1.2.840/series/0.1/instances/2.25.123/frames/17"))
        XCTAssertEqual([path.study, path.series, path.sop], ["1.2.840", "0.1", "2.25.123"])
        XCTAssertEqual(path.frame, 17)
        XCTAssertEqual(StoredFrameFastPath.framePath("/dicomweb/studies/1/series/2/instances/3/frames/9999999")?.frame, 9_999_999)
    }

    func testAnythingElseIsNotAFramePath() {
        let base = "/dicomweb/studies/1.2/series/1.3/instances/1.4/frames/"
        for uri in [
            base, base + "0", base + "1,2", base + "1-2", base + "1/", base + "1?x=1", base + "+1", base + "12345678", base + "1 ",
            base + "%31", "/dicomweb/studies/1.2/series/1.3/instances/1.4/frame/1", "/dicomweb/studies/1.2/series/1.3/instances/1.4",
            "/dicomweb/studies/1.02/series/1.3/instances/1.4/frames/1", "/dicomweb/studies/1.2/series//instances/1.4/frames/1",
            "/dicomweb/studies/1.2/series/1.3/instances/1..4/frames/1", "/dicomweb/studies/1.2/series/1.3/x/instances/1.4/frames/1",
            "/dicomweb//studies/1.2/series/1.3/instances/1.4/frames/1", "dicomweb/studies/1.2/series/1.3/instances/1.4/frames/1",
            "/DICOMWEB/studies/1.2/series/1.3/instances/1.4/frames/1", "/dicomweb/studies/1.2/series/1.3/instances/1.4a/frames/1",
            "/dicomweb/studies/\(String(repeating: "1", count: 65))/series/1.3/instances/1.4/frames/1", "",
        ] {
            XCTAssertNil(StoredFrameFastPath.framePath(uri), uri)
        }
    }
}
