import DICOMCore
import DICOMParser
import Foundation
@testable import ImageSetStore
import TestSupport
import XCTest

/// Instances made from the demo CT with chosen identifiers, and temporary data folders.
enum StoreFixtures {
    static var demoPath: String { Corpus.packageRoot.appendingPathComponent("TestImages/demo/ct-1.dcm").path }

    static func text(_ tag: Tag, _ vr: VR, _ value: String) -> DataElement {
        var bytes = Array(value.utf8)
        if bytes.count % 2 == 1 { bytes.append(vr == .UI ? 0 : 0x20) }
        return DataElement(tag: tag, vr: vr, value: .bytes(bytes))
    }

    /// Part 10 bytes of the demo CT with the given UIDs and patient/study attributes.
    static func instance(study: String = "1.2.826.0.1.3680043.9.7433.1", series: String = "1.2.826.0.1.3680043.9.7433.1.1",
                         sop: String, patientName: String = "DOE^JANE", patientID: String = "P-1",
                         extra: [DataElement] = []) throws -> [UInt8] {
        let file = try DICOMFile.read(path: demoPath)
        var ds = file.dataSet
        ds.set(text(.studyInstanceUID, .UI, study))
        ds.set(text(.seriesInstanceUID, .UI, series))
        ds.set(text(.sopInstanceUID, .UI, sop))
        ds.set(text(Tag(0x0010_0010), .PN, patientName))
        ds.set(text(Tag(0x0010_0020), .LO, patientID))
        for e in extra { ds.set(e) }
        return try DICOMWriter.part10(ds, transferSyntax: .explicitVRLittleEndian)
    }

    static func temporaryFolder(_ name: String = "store") throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url.path
    }

    static func chunks(_ bytes: [UInt8], size: Int = 4096) -> AsyncThrowingStream<[UInt8], any Error> {
        AsyncThrowingStream { c in
            var i = 0
            while i < bytes.count {
                c.yield(Array(bytes[i..<min(i + size, bytes.count)]))
                i += size
            }
            c.finish()
        }
    }
}

extension Datastore {
    func ingest(bytes: [UInt8], reason: String = "test") async -> IngestOutcome {
        await ingest(StoreFixtures.chunks(bytes), reason: reason)
    }
}
