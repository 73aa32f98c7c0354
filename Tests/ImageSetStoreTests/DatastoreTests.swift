import XCTest
@testable import ImageSetStore
