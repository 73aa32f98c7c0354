import Crypto
import Foundation
import GRDB
#if canImport(Glibc)
import Glibc
#endif

/// `tessera backup` and `tessera restore` (Docs/operations.md, "Backup and restore"): a data
/// folder copied while `tessera serve` runs on it, without its lock.
///
/// The index first, as one consistent snapshot (`VACUUM INTO` on a read-only connection: SQLite's
/// WAL lets it read beside the writer, and the copy is of one read transaction), then every blob
/// that snapshot references. Blobs are immutable and named by their hash, so a blob the snapshot
/// names is complete on disk before its row committed (the store moves it in first), and copying it
/// later copies the same bytes; a blob committed after the snapshot is simply not in the backup.
/// Blobs are hard-linked when the backup is on the same file system (no bytes copied; the server
/// never writes a blob in place, it only unlinks), else copied and hashed. `backup.json`, written
/// last, marks a backup complete: restore refuses one without it.
public enum DataFolderBackup {
    public struct Report: Sendable, Equatable {
        public var blobs = 0
        public var bytes = 0
        public var linked = 0
        public var copied = 0
        public var instances = 0
    }

    static let manifest = "backup.json"

    /// Backs `folder` up into `destination` (missing or empty). `copy`: never hard-link.
    public static func backup(folder: String, to destination: String, copy: Bool = false) throws -> Report {
        try DataFolderError.checkExisting(folder)
        try requireEmpty(destination, what: "backup destination")
        try DataFolderError.createFolder(destination)
        let snapshot = destination + "/index.sqlite"
        do {
            var readOnly = Configuration()
            readOnly.readonly = true
            readOnly.busyMode = .timeout(30)
            let source = try DatabaseQueue(path: folder + "/index.sqlite", configuration: readOnly)
            try source.inDatabase { try $0.execute(sql: "VACUUM INTO ?", arguments: [snapshot]) }
            try source.close()
        } catch {
            throw DataFolderError("cannot snapshot the index of \(folder): \(error)")
        }
        try syncFile(snapshot)
        // Read-write once, like any data folder's index: WAL mode, this binary's schema checked.
        let index = try SQLiteIndex(path: snapshot, folder: destination)
        let referenced = try index.referencedBlobs()
        var report = Report()
        report.instances = try index.imageSets(ImageSetFilter()).reduce(0) { $0 + $1.instanceCount }
        let from = FileBlobStore(existingRoot: folder + "/blobs"), to = FileBlobStore(existingRoot: destination + "/blobs")
        var vanished: [BlobID] = []
        for (id, size) in referenced.sorted(by: { $0.key.hex < $1.key.hex }) {
            let source = from.path(id), target = to.path(id)
            try makeParent(of: target)
            if !copy, link(source, target) == 0 {
                report.linked += 1
            } else if !copy, errno == ENOENT {
                vanished.append(id)
                continue
            } else {
                guard try copyVerified(source, to: target, id: id, size: size) else { vanished.append(id); continue }
                report.copied += 1
            }
            report.blobs += 1
            report.bytes += size
        }
        // A blob can go between the snapshot and its copy only if pruned or deleted meanwhile.
        if !vanished.isEmpty {
            throw DataFolderError("\(vanished.count) blob(s) of the index snapshot were removed from \(folder) during the backup "
                                  + "(pruned or deleted meanwhile, e.g. \(vanished[0])); \(destination) is incomplete: remove it and back up again")
        }
        let text = """
            {"source": \(jsonString(folder)), "created": \(jsonString(ISO8601DateFormatter().string(from: Date()))), \
            "blobs": \(report.blobs), "bytes": \(report.bytes), "instances": \(report.instances)}\n
            """
        // Every link, copy and folder made above durable before the manifest says the backup is
        // complete (one syncfs of the destination's file system: hard links and new folders are
        // directory entries, which fsync of the files does not cover); then the manifest and its name.
        try syncFileSystem(of: destination)
        guard FileManager.default.createFile(atPath: destination + "/" + manifest, contents: Data(text.utf8)) else {
            throw DataFolderError("cannot write \(destination)/\(manifest): \(DataFolderError.errnoText())")
        }
        try syncFile(destination + "/" + manifest)
        try syncFile(destination)
        return report
    }

    /// Restores the backup `backup` into `folder` (missing or empty), checking every blob's
    /// SHA-256 and size against the index; on any failure the restored files are removed.
    public static func restore(from backup: String, to folder: String) throws -> Report {
        guard access(backup + "/" + manifest, F_OK) == 0, access(backup + "/index.sqlite", F_OK) == 0 else {
            throw DataFolderError("\(backup) is not a complete Tessera backup (it has no \(manifest) or no index.sqlite)")
        }
        try requireEmpty(folder, what: "data folder")
        try DataFolderError.createFolder(folder)
        do {
            let index = folder + "/index.sqlite"
            guard try copyVerified(backup + "/index.sqlite", to: index, id: nil, size: nil) else {
                throw DataFolderError("cannot read \(backup)/index.sqlite")
            }
            let referenced = try SQLiteIndex(path: index, folder: folder).referencedBlobs()
            let from = FileBlobStore(existingRoot: backup + "/blobs")
            let to = try FileBlobStore(root: folder + "/blobs")
            var report = Report()
            for (id, size) in referenced.sorted(by: { $0.key.hex < $1.key.hex }) {
                let target = to.path(id)
                try makeParent(of: target)
                guard try copyVerified(from.path(id), to: target, id: id, size: size) else {
                    throw DataFolderError("the backup lacks blob \(id), which its index references")
                }
                report.blobs += 1
                report.copied += 1
                report.bytes += size
            }
            return report
        } catch {
            // Nothing half-restored is left to be served: the folder was empty before.
            if let names = try? FileManager.default.contentsOfDirectory(atPath: folder) {
                for n in names { try? FileManager.default.removeItem(atPath: folder + "/" + n) }
            }
            throw error
        }
    }

    static func requireEmpty(_ path: String, what: String) throws {
        var st = stat()
        guard stat(path, &st) == 0 else { return }
        guard st.st_mode & S_IFMT == S_IFDIR else { throw DataFolderError("the \(what) \(path) is a file") }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        guard names.isEmpty else { throw DataFolderError("the \(what) \(path) is not empty; give a new or empty folder") }
    }

    static func makeParent(of path: String) throws {
        try DataFolderError.createFolder(String(path[..<path.lastIndex(of: "/")!]))
    }

    /// Copies `source` to `target` through a temporary file, synced, then renamed; false when
    /// `source` does not exist. With `id`, the bytes must hash to it and have `size` bytes.
    static func copyVerified(_ source: String, to target: String, id: BlobID?, size: Int?) throws -> Bool {
        let input = open(source, O_RDONLY)
        guard input >= 0 else {
            if errno == ENOENT { return false }
            throw DataFolderError("cannot read \(source): \(DataFolderError.errnoText())")
        }
        defer { close(input) }
        let temporary = target + ".part"
        let output = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard output >= 0 else { throw DataFolderError("cannot write \(temporary): \(DataFolderError.errnoText())") }
        var isOpen = true
        func closeOutput() { if isOpen { close(output); isOpen = false } }
        var hasher = SHA256()
        var total = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        do {
            while true {
                let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
                guard n >= 0 else { throw DataFolderError("cannot read \(source): \(DataFolderError.errnoText())") }
                if n == 0 { break }
                if id != nil { hasher.update(data: buffer[0..<n]) }
                var written = 0
                while written < n {
                    let w = buffer.withUnsafeBytes { write(output, $0.baseAddress! + written, n - written) }
                    guard w > 0 else { throw DataFolderError("cannot write \(temporary): \(DataFolderError.errnoText())") }
                    written += w
                }
                total += n
            }
            guard fsync(output) == 0 else { throw DataFolderError("cannot sync \(temporary): \(DataFolderError.errnoText())") }
            closeOutput()
            if let id {
                guard total == size, BlobID(digest: hasher.finalize()) == id else {
                    throw DataFolderError("blob \(id) in \(source) is corrupt: its bytes do not hash to its name (or its size is not the index's)")
                }
            }
            guard rename(temporary, target) == 0 else { throw DataFolderError("cannot rename \(temporary): \(DataFolderError.errnoText())") }
            return true
        } catch {
            closeOutput()
            unlink(temporary)
            throw error
        }
    }

    static func syncFileSystem(of path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw DataFolderError("cannot open \(path): \(DataFolderError.errnoText())") }
        defer { close(fd) }
        guard linuxSyncfs(fd) == 0 else { throw DataFolderError("cannot sync the file system of \(path): \(DataFolderError.errnoText())") }
    }

    static func syncFile(_ path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0, fsync(fd) == 0 else {
            if fd >= 0 { close(fd) }
            throw DataFolderError("cannot sync \(path): \(DataFolderError.errnoText())")
        }
        close(fd)
    }

    static func jsonString(_ s: String) -> String {
        String(decoding: try! JSONEncoder().encode(s), as: UTF8.self)
    }
}
