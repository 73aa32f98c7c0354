import ArgumentParser
import DICOMCore
import Foundation
import ImageSetStore
#if canImport(Glibc)
import Glibc
#endif

/// The one-line messages on stderr: `tessera: ` and the cause in words (no NSError dumps, no bare errno).
enum Diagnostics {
    static func line(_ text: String) {
        let bytes = Array("tessera: \(text)\n".utf8)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }

    /// One line naming the file, the byte offset and what was wrong.
    static func report(path: String, error: DICOMError) { line("\(path): \(error)") }

    /// Writes the line and returns the failure exit for the caller to throw.
    static func fail(_ text: String) -> ExitCode {
        line(text)
        return ExitCode.failure
    }

    /// Why `path` cannot be read as an input file, or nil when it can be opened.
    static func unreadable(_ path: String) -> String? {
        var st = stat()
        guard stat(path, &st) == 0 else { return "cannot read \(path): \(DataFolderError.errnoText())" }
        if st.st_mode & S_IFMT == S_IFDIR { return "cannot read \(path): \(DataFolderError.errnoText(EISDIR))" }
        guard access(path, R_OK) == 0 else { return "cannot read \(path): \(DataFolderError.errnoText())" }
        return nil
    }

    /// Throws the failure exit, after its line, when an input file cannot be read.
    static func checkReadable(_ paths: [String]) throws {
        for p in paths { if let why = unreadable(p) { throw fail(why) } }
    }

    /// Opens a data folder, or ends the command with a line saying why it cannot be.
    static func open(_ folder: String, access: Datastore.Access) throws -> Datastore {
        do { return try Datastore(folder: folder, access: access) } catch let error as DataFolderError {
            throw fail(error.description)
        } catch {
            throw fail("cannot open the data folder \(folder): \(error)")
        }
    }
}
