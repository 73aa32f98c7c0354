import Crypto
import DICOMParser
import Foundation

extension Datastore {
    /// The stored instance parsed: memory-mapped from its file when the blob store has one, else
    /// read whole from the store (object storage).
    public func parse(_ id: BlobID, options: ReadOptions = .default) async throws -> DICOMFile {
        if let path = blobs.localPath(id) { return try DICOMFile.read(path: path, options: options) }
        return try DICOMFile.read(bytes: try await blobs.read(id), options: options)
    }

    public struct VerifyReport: Sendable {
        public var blobsChecked = 0
        public var bytesChecked = 0
        public var missing: [BlobID] = []
        public var corrupt: [BlobID] = []
        public var wrongSize: [BlobID] = []
        public var unreferenced: [BlobID] = []
        public var isClean: Bool { missing.isEmpty && corrupt.isEmpty && wrongSize.isEmpty && unreferenced.isEmpty }
    }

    /// Re-hashes every blob the index references and compares it with its id and recorded size.
    public func verify(progress: ((Int, Int) -> Void)? = nil) async throws -> VerifyReport {
        var report = VerifyReport()
        // Listed before the index is read: a writer moves a blob in before its row commits, so a
        // blob listed here and still unreferenced below is a leftover (or an ingest mid-commit).
        let present = Set(try await blobs.list())
        let referenced = try await index.referencedBlobs()
        report.unreferenced = present.filter { referenced[$0] == nil }.sorted { $0.hex < $1.hex }
        for (n, (id, size)) in referenced.sorted(by: { $0.key.hex < $1.key.hex }).enumerated() {
            progress?(n, referenced.count)
            guard let path = blobs.localPath(id), let handle = FileHandle(forReadingAtPath: path) else {
                report.missing.append(id)
                continue
            }
            defer { try? handle.close() }
            var hasher = SHA256()
            var total = 0
            while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
                hasher.update(data: chunk)
                total += chunk.count
            }
            report.blobsChecked += 1
            report.bytesChecked += total
            if total != size { report.wrongSize.append(id) }
            if BlobID(digest: hasher.finalize()) != id { report.corrupt.append(id) }
        }
        return report
    }
}

extension Datastore {
    /// Why the store cannot take work now, or nil when it can: the index and the blob store each
    /// answer a trivial request (a setting, a blob's existence) within `timeout` seconds. For `/ready`:
    /// a replica whose database or bucket is unreachable is taken out of the balancer's rotation.
    public func unreadyReason(timeout: TimeInterval = 2) async -> String? {
        let probe = BlobID(hex: String(repeating: "0", count: 64))!
        let index = self.index, blobs = self.blobs
        return await withTaskGroup(of: String?.self) { group in
            group.addTask {
                do { _ = try await index.setting("duplicatePolicy"); return nil } catch { return "index: \(error)" }
            }
            group.addTask {
                do { _ = try await blobs.contains(probe); return nil } catch { return "blob store: \(error)" }
            }
            group.addTask {
                try? await Task.sleep(nanoseconds: UInt64(timeout * 1e9))
                return "no answer within \(timeout) s"
            }
            var answered = 0
            for await result in group {
                if let result { group.cancelAll(); return result }
                answered += 1
                if answered == 2 { group.cancelAll(); return nil }
            }
            return nil
        }
    }
}
