import XCTest
@testable import PixelData

final class PixelDescriptionTests: XCTestCase {
    func testNativeFrameLength() {
        var d = PixelDescription(rows: 3, columns: 5, samplesPerPixel: 1, bitsAllocated: 1, bitsStored: 1, highBit: 0,
                                 pixelRepresentation: 0, planarConfiguration: 0, photometricInterpretation: "MONOCHROME2", numberOfFrames: 1)
        XCTAssertEqual(d.nativeFrameLength, 2) // 15 bits → 2 bytes
        d.bitsAllocated = 16; d.samplesPerPixel = 3
        XCTAssertEqual(d.nativeFrameLength, 90)
    }
}
