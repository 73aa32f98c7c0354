import ArgumentParser
import Foundation
import ImageSetStore

/// JSON for the admin commands: ISO 8601 dates, stable key order.
enum AdminJSON {
    static func write(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        var data = try encoder.encode(value)
        data.append(0x0A)
        FileHandle.standardOutput.write(data)
    }

}

struct ImageSetsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "imagesets", abstract: "List the image sets of a data folder.")

    @Option(help: "The data folder (read only: nothing is created or changed).") var data: String
    @Option(name: .customLong("patient-id"), help: "Only image sets of this Patient ID.") var patientID: String?
    @Option(name: .customLong("study-uid"), help: "Only image sets of this Study Instance UID.") var studyUID: String?
    @Option(help: "Only image sets of this Accession Number.") var accession: String?
    @Option(help: "Most image sets listed.") var limit = 1000
    @Flag(help: "Print JSON instead of a table.") var json = false

    func run() async throws {
        let store = try Diagnostics.open(data, access: .readOnly)
        var filter = ImageSetFilter()
        filter.patientID = patientID
        filter.studyInstanceUID = studyUID
        filter.accessionNumber = accession
        filter.limit = limit
        let sets = try await store.index.imageSets(filter)
        if json { return try AdminJSON.write(sets) }
        print("ID                                PRIMARY  VER  PATIENT ID        STUDY INSTANCE UID                                   SERIES  INST  FRAMES")
        for s in sets {
            print([s.id.padding(34), (s.isPrimary ? "yes" : "no").padding(9), String(s.version).padding(5),
                   s.attributes.patientID.padding(18), s.studyInstanceUID.padding(53), String(s.seriesCount).padding(8),
                   String(s.instanceCount).padding(6), String(s.frameCount)].joined())
        }
    }
}

struct ImageSetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "imageset", abstract: "Show one image set: series, instances, versions and conflicts.")

    @Argument(help: "The image set ID.") var id: String
    @Option(help: "The data folder (read only: nothing is created or changed).") var data: String
    @Option(help: "The version to show (default: the latest).") var version: Int?
    @Flag(help: "Print JSON instead of text.") var json = false

    struct Detail: Encodable {
        var imageSet: ImageSetSummary
        var version: Int
        var versions: [VersionRecord]
        var series: [Series]
        struct Series: Encodable { var seriesInstanceUID: String; var instances: [Instance] }
        struct Instance: Encodable {
            var sopInstanceUID: String, sopClassUID: String, transferSyntaxUID: String
            var instanceNumber: Int?, frames: Int, blob: String, size: Int, addedInVersion: Int
        }
    }

    func run() async throws {
        let store = try Diagnostics.open(data, access: .readOnly)
        guard let set = try await store.index.imageSet(id) else { throw Diagnostics.fail("no image set \(id) in \(data)") }
        let versions = try await store.index.versions(of: id)
        let shown = version ?? set.version
        guard versions.contains(where: { $0.version == shown }) else { throw Diagnostics.fail("image set \(id) has no version \(shown)") }
        let instances = try await store.index.instances(of: id, version: shown)
        var series: [Detail.Series] = []
        for i in instances {
            let item = await Detail.Instance(sopInstanceUID: i.sopInstanceUID, sopClassUID: i.sopClassUID, transferSyntaxUID: i.transferSyntaxUID,
                                       instanceNumber: i.attributes.instanceNumber, frames: try store.index.frames(of: i.id).count,
                                       blob: i.blob.hex, size: i.blobSize, addedInVersion: i.addedInVersion)
            if series.last?.seriesInstanceUID == i.seriesInstanceUID { series[series.count - 1].instances.append(item) }
            else { series.append(.init(seriesInstanceUID: i.seriesInstanceUID, instances: [item])) }
        }
        let detail = Detail(imageSet: set, version: shown, versions: versions, series: series)
        if json { return try AdminJSON.write(detail) }
        let a = set.attributes
        print("image set \(set.id) (\(set.isPrimary ? "primary" : "non-primary"), \(set.state)), version \(shown) of \(set.version)")
        print("patient \(a.patientID) \(a.patientName)  study \(set.studyInstanceUID)  date \(a.studyDate)  accession \(a.accessionNumber)")
        for c in set.conflicts { print("conflict: \(c.keyword): primary '\(c.imageSetValue)', here '\(c.instanceValue)'") }
        for s in series {
            print("series \(s.seriesInstanceUID): \(s.instances.count) instance(s)")
            for i in s.instances { print("  \(i.sopInstanceUID)  #\(i.instanceNumber.map(String.init) ?? "-")  \(i.frames) frame(s)  \(i.size) bytes  \(i.transferSyntaxUID)") }
        }
        print("versions:")
        for v in versions { print("  \(v.version)  \(ISO8601DateFormatter().string(from: v.createdAt))  \(v.instanceCount) instance(s)  \(v.reason)") }
    }
}

struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check every blob against the index (size and SHA-256).",
        discussion: """
            Only reads, so it runs beside `tessera serve`; blobs an ingest or prune is writing at that moment \
            can show as unreferenced or missing (run it again to confirm). --repair takes the folder's lock \
            (no server may run) and removes blobs no index row references and files staged by an interrupted \
            ingest, as a writer's start-up does. Exit status 1 when anything is missing, corrupt or unreferenced.
            """)

    @Option(help: "The data folder (read only unless --repair).") var data: String
    @Flag(help: "Remove unreferenced blobs and staged files first (takes the folder's lock).") var repair = false

    func run() async throws {
        let store = try Diagnostics.open(data, access: repair ? .readWrite : .readOnly)
        if repair {
            let s = store.startup
            print("removed \(s.orphanBlobsRemoved) unreferenced blob(s) and \(s.stagedFilesRemoved) staged file(s)")
        }
        let report = try await store.verify()
        print("checked \(report.blobsChecked) blobs, \(report.bytesChecked) bytes")
        for id in report.missing { print("missing: \(id)") }
        for id in report.corrupt { print("corrupt (hash differs): \(id)") }
        for id in report.wrongSize { print("wrong size: \(id)") }
        for id in report.unreferenced { print("unreferenced: \(id)") }
        if !report.isClean {
            if let holder = store.writerElsewhere() {
                print("note: \(holder) has the folder open; an ingest or prune in progress can account for unreferenced or missing blobs")
            } else if !report.unreferenced.isEmpty {
                print("`tessera verify --repair --data \(data)` removes the unreferenced blob(s)")
            }
            throw ExitCode.failure
        }
        print("ok")
    }
}

struct PruneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Drop old image-set versions and free the blobs no retained version references.",
        discussion: "Keeps the newest --keep versions of each image set (or of one, with --image-set). "
            + "--retain sets the rule DELETE and replacement apply from then on; --retain 0 keeps every version.")

    @Option(help: "The data folder.") var data: String
    @Option(name: .customLong("image-set"), help: "Prune one image set (default: all).") var imageSet: String?
    @Option(help: "Versions to keep per image set.") var keep = 1
    @Option(help: "Versions DELETE and replacement keep from now on (0: all).") var retain: Int?
    @Flag(help: "Print the report as JSON.") var json = false

    func run() async throws {
        let store = try Diagnostics.open(data, access: .readWrite)
        if let retain {
            guard retain >= 0 else { throw ValidationError("--retain is 0 (keep all) or more") }
            try await store.setRetainVersions(retain == 0 ? nil : retain)
        }
        guard keep >= 1 else { throw ValidationError("--keep is at least 1: an image set always keeps its latest version") }
        if let imageSet, try await store.index.imageSet(imageSet) == nil { throw Diagnostics.fail("no image set \(imageSet)") }
        // On the audit trail as the local user who ran it.
        let report = try await store.prune(imageSetID: imageSet, keep: keep, audit: .localUser)
        if json { return try AdminJSON.write(report) }
        print("removed \(report.versionsRemoved) version(s), \(report.instanceRowsRemoved) instance row(s), "
              + "\(report.blobsRemoved) blob(s), \(report.bytesFreed) bytes freed")
    }
}

extension String {
    func padding(_ n: Int) -> String { count >= n ? self + " " : self + String(repeating: " ", count: n - count) }
}
