import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Why a data folder cannot be opened, in words for the person who typed the command.
public struct DataFolderError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }

    /// `strerror` of the current `errno` ("No such file or directory"), read before anything else
    /// can change it.
    public static func errnoText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

    static func inUse(_ folder: String, pid: Int32?) -> DataFolderError {
        let who = pid.map { "process \($0)" } ?? "another process"
        return DataFolderError("""
            the data folder \(folder) is in use by \(who) (a running `tessera serve` or import holds \(folder)/lock); \
            store through the server's HTTP API (STOW-RS: POST /dicomweb/studies) or stop it first. \
            Reading commands (imagesets, imageset, verify) work while it runs
            """)
    }

    /// A folder a reader may open: it exists, is a folder, and has an index. Nothing is created.
    static func checkExisting(_ folder: String) throws {
        var st = stat()
        guard stat(folder, &st) == 0 else {
            if errno == ENOENT {
                throw DataFolderError("no data folder at \(folder); create one with `tessera import` or `tessera serve`")
            }
            throw DataFolderError("cannot read the data folder \(folder): \(errnoText())")
        }
        guard st.st_mode & S_IFMT == S_IFDIR else { throw DataFolderError("\(folder) is a file, not a data folder") }
        guard access(folder + "/index.sqlite", F_OK) == 0 else {
            throw DataFolderError("\(folder) is not a Tessera data folder (it has no index.sqlite); "
                                  + "create one with `tessera import` or `tessera serve`")
        }
    }

    /// `mkdir -p` with errors that name the folder and the cause (Foundation's are NSError dumps).
    public static func createFolder(_ folder: String) throws {
        var st = stat()
        if stat(folder, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFDIR else { throw DataFolderError("\(folder) is a file, not a data folder") }
            return
        }
        var path = folder.hasPrefix("/") ? "" : "."
        for component in folder.split(separator: "/") {
            path += "/" + component
            if mkdir(path, 0o755) != 0 && errno != EEXIST {
                throw DataFolderError("cannot create the data folder \(folder): \(errnoText())")
            }
        }
        guard stat(folder, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else {
            throw DataFolderError("cannot create the data folder \(folder): \(errnoText(ENOTDIR))")
        }
    }
}

extension Datastore {
    /// "process N" when another process holds the folder's lock (a writer), else nil.
    public func writerElsewhere() -> String? {
        guard lock == nil else { return nil }
        let fd = Glibc.open(folder + "/lock", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        // A shared lock is refused only while a writer holds the exclusive one; released at once.
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return nil
        }
        return FolderLock.holder(fd).map { "process \($0)" } ?? "another process"
    }
}
