import Foundation
import GRDB
#if canImport(Glibc)
import Glibc
#endif

/// What keeps a data folder usable when its disk fills (Docs/security.md, "Limits"). A reserve
/// file (`reserve`, `size` bytes of zeros) holds space back. When a write meets ENOSPC or
/// SQLITE_FULL, or free space falls below `size / 8`, the folder is *full*: half the reserve is
/// freed, so that the index can still commit the instances already staged, and STOW-RS stages
/// nothing more (0xA700 for each instance). The other half is for DELETE and prune, which SQLite
/// needs free pages for even though they free space: an index change that meets SQLITE_FULL frees
/// it and runs again (`releaseAll`), so they work on a disk that something else filled to 100 %.
/// The folder stops being full once free space is back to twice the reserve; the reserve is then
/// written again.
public final class DiskReserve: @unchecked Sendable {
    public let path: String
    public let size: Int
    private let lock = NSLock()
    private var full = false

    init(folder: String, size: Int) {
        path = folder + "/reserve"
        self.size = max(size, 0)
        lock.withLock {
            if !hasReserve && !writeReserve() { full = true }
        }
        refresh()
    }

    /// True while writes are refused (see the type's comment).
    public var isFull: Bool { lock.withLock { full } }

    /// Free bytes of the folder's file system (for an unprivileged process), or nil when unknown.
    public var freeBytes: Int? {
        var s = statvfs()
        guard statvfs(path.isEmpty ? "." : (path as NSString).deletingLastPathComponent, &s) == 0 else { return nil }
        return Int(s.f_bavail) * Int(s.f_frsize)
    }

    /// A write failed for want of space: the folder is full from now on, and its reserve goes.
    public func noteFull() {
        lock.withLock { enterFull() }
    }

    /// The last of the reserve goes (for DELETE and prune); false when there was none left.
    public func releaseAll() -> Bool {
        lock.withLock {
            full = true
            return unlink(path) == 0
        }
    }

    private func enterFull() {
        full = true
        truncate(path, off_t(size / 2))
    }

    /// Looks at free space: enters the full state when it is below `size / 8`, leaves it when it is
    /// back to `2 × size` (writing the reserve again). Cheap (one statvfs); called before each STOW,
    /// DELETE and prune and by /ready and /health.
    @discardableResult
    public func refresh() -> Bool {
        guard let free = freeBytes else { return isFull }
        return lock.withLock {
            if !full && free < size / 8 {
                enterFull()
            } else if full && free >= 2 * size && writeReserve() {
                full = false
            }
            return full
        }
    }

    private var hasReserve: Bool {
        var st = stat()
        return stat(path, &st) == 0 && Int(st.st_size) >= size
    }

    /// Writes the reserve whole (allocated blocks, not a sparse file); false when it does not fit.
    private func writeReserve() -> Bool {
        guard size > 0 else { return true }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0, count: 1 << 20)
        var written = 0
        while written < size {
            let n = chunk.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, min(chunk.count, size - written)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                unlink(path)
                return false
            }
            written += n
        }
        _ = fsync(fd)  // best effort: the blocks are allocated either way
        return true
    }

    /// Whether `error` says the disk (or quota) is full: ENOSPC/EDQUOT from a blob write, SQLITE_FULL from the index.
    public static func isNoSpace(_ error: any Error) -> Bool {
        if let e = error as? BlobStoreError { return e.kind == .noSpace }
        if let e = error as? DatabaseError { return e.resultCode == .SQLITE_FULL }
        return false
    }
}
