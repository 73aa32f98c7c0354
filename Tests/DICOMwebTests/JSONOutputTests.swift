@testable import DICOMweb
import Foundation
import NIOCore
import XCTest

final class JSONOutputTests: XCTestCase {
    func testOutputParsesBackToTheSameTreeWithSortedKeys() throws {
        let tree: [String: Any] = [
            "b": ["vr": "PN", "Value": [["Alphabetic": "Doe^J\u{00F6}rg \"Q\" \\ /x\n\t\u{01}"]]],
            "a": [1, -2, 2.5, "s", NSNull()] as [Any],
            "00081190": ["vr": "UR", "Value": ["http://h:1/dicomweb/studies/1.2"]],
            "empty": [String: Any](), "list": [Any](),
        ]
        let bytes = Array(JSONOutput.serialize(tree).readableBytesView)
        let text = String(decoding: bytes, as: UTF8.self)
        let back = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(bytes)) as? NSDictionary)
        XCTAssertEqual(back, tree as NSDictionary)
        XCTAssertTrue(text.hasPrefix("{\"00081190\":"), "keys sorted: \(text)")
        XCTAssertTrue(text.contains("http://h:1/dicomweb"), "slashes are not escaped")
        XCTAssertTrue(text.contains("\\u0001") && text.contains("\\\"Q\\\""), text)
    }
}
