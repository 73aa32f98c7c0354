@testable import DICOMweb
import Foundation
import HTTPTypes
import HummingbirdTesting
import ImageSetStore
import NIOCore
import XCTest
import StoreTestSupport

final class DeleteTests: DICOMwebTestCase {
    func testDeleteMakesNewVersionsAndKeepsOlderOnesReadable() async throws {
        let store = self.store!
        try await withApp { client in
            _ = try await self.stow(client, [try Self.instance(sop: "1.2.3.14.1"), try Self.instance(sop: "1.2.3.14.2")])
            let instance = "/dicomweb/studies/\(Self.study)/series/\(Self.series)/instances/1.2.3.14.1"
            try await client.execute(uri: instance, method: .delete) { r in
                XCTAssertEqual(r.status, .ok)
                XCTAssertTrue(String(buffer: r.body).contains("\"removedInstances\":1"))
            }
            try await client.execute(uri: instance + "/metadata", method: .get) { XCTAssertEqual($0.status, .notFound) }
            try await client.execute(uri: "/dicomweb/studies/\(Self.study)/instances", method: .get) { r in
                XCTAssertEqual((try Self.json(r.body) as? [Any])?.count, 1)
            }
            let set = try await XCTUnwrapAsync(try await store.index.imageSets(ImageSetFilter()).first)
            await XCTAssertEqualAsync(try await store.index.versions(of: set.id).map(\.instanceCount), [2, 1])
            await XCTAssertEqualAsync(try await store.index.instances(of: set.id, version: 1).count, 2, "version 1 is still readable")

            try await client.execute(uri: "/dicomweb/studies/\(Self.study)", method: .delete) { XCTAssertEqual($0.status, .ok) }
            try await client.execute(uri: "/dicomweb/studies", method: .get) { r in
                XCTAssertEqual((try Self.json(r.body) as? [Any])?.count, 0)
            }
            await XCTAssertEqualAsync(try await store.index.imageSet(set.id)?.state, "DELETED")
            await XCTAssertEqualAsync(try await store.blobs.list().count, 2, "blobs stay while older versions reference them")
            try await client.execute(uri: "/dicomweb/studies/\(Self.study)", method: .delete) { XCTAssertEqual($0.status, .notFound) }
            try await client.execute(uri: "/dicomweb/studies/x..y", method: .delete) { XCTAssertEqual($0.status, .badRequest) }
        }
    }
}
