import XCTest
import StoreTestSupport

// XCTest's assertions take synchronous autoclosures; the store's protocols are async (so that an
// index or blob store may be a network service), so tests of them assert through these.

public func XCTAssertEqualAsync<T: Equatable>(_ a: @autoclosure () async throws -> T, _ b: @autoclosure () async throws -> T,
                                              _ message: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line) async {
    do {
        let (x, y) = (try await a(), try await b())
        XCTAssertEqual(x, y, message(), file: file, line: line)
    } catch {
        XCTFail("threw \(error) \(message())", file: file, line: line)
    }
}

public func XCTAssertTrueAsync(_ a: @autoclosure () async throws -> Bool, _ message: @autoclosure () -> String = "",
                               file: StaticString = #filePath, line: UInt = #line) async {
    do {
        let value = try await a()
        XCTAssertTrue(value, message(), file: file, line: line)
    } catch { XCTFail("threw \(error) \(message())", file: file, line: line) }
}

public func XCTAssertFalseAsync(_ a: @autoclosure () async throws -> Bool, _ message: @autoclosure () -> String = "",
                                file: StaticString = #filePath, line: UInt = #line) async {
    do {
        let value = try await a()
        XCTAssertFalse(value, message(), file: file, line: line)
    } catch { XCTFail("threw \(error) \(message())", file: file, line: line) }
}

public func XCTAssertNilAsync<T>(_ a: @autoclosure () async throws -> T?, _ message: @autoclosure () -> String = "",
                                 file: StaticString = #filePath, line: UInt = #line) async {
    do {
        let value = try await a()
        XCTAssertNil(value, message(), file: file, line: line)
    } catch { XCTFail("threw \(error) \(message())", file: file, line: line) }
}

public func XCTAssertNotNilAsync<T>(_ a: @autoclosure () async throws -> T?, _ message: @autoclosure () -> String = "",
                                    file: StaticString = #filePath, line: UInt = #line) async {
    do {
        let value = try await a()
        XCTAssertNotNil(value, message(), file: file, line: line)
    } catch { XCTFail("threw \(error) \(message())", file: file, line: line) }
}

public func XCTUnwrapAsync<T>(_ a: @autoclosure () async throws -> T?, _ message: @autoclosure () -> String = "",
                              file: StaticString = #filePath, line: UInt = #line) async throws -> T {
    let value = try await a()
    return try XCTUnwrap(value, message(), file: file, line: line)
}

public func XCTAssertThrowsErrorAsync<T>(_ a: @autoclosure () async throws -> T, _ message: @autoclosure () -> String = "",
                                         file: StaticString = #filePath, line: UInt = #line, _ handler: (any Error) -> Void = { _ in }) async {
    do {
        _ = try await a()
        XCTFail("did not throw \(message())", file: file, line: line)
    } catch {
        handler(error)
    }
}
