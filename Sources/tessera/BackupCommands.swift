import ArgumentParser
import Foundation
import ImageSetStore

/// `tessera backup` and `tessera restore` (Docs/operations.md, "Backup and restore").
struct BackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Back a data folder up while `tessera serve` runs on it: an index snapshot, then every blob it references.",
        discussion: """
            Only reads the data folder (no lock), so it runs beside the server. Blobs are hard-linked when DEST is on \
            the same file system (blobs are never rewritten, so the links stay the backup's bytes), else copied and \
            hashed; --copy always copies (a backup on the same disk does not survive that disk). Instances stored after \
            the snapshot are not in the backup. Exit status 1 when the folder cannot be read or DEST is not empty.
            """)

    @Option(help: "The data folder (read only).") var data: String
    @Option(help: ArgumentHelp("The backup folder (created; must be missing or empty).", valueName: "DEST")) var to: String
    @Flag(help: "Copy every blob, never hard-link.") var copy = false

    func run() throws {
        let r: DataFolderBackup.Report
        do { r = try DataFolderBackup.backup(folder: data, to: to, copy: copy) } catch let e as DataFolderError {
            throw Diagnostics.fail(e.description)
        }
        print("backed up the index (\(r.instances) instances) and \(r.blobs) blobs, \(r.bytes) bytes (\(r.linked) linked, \(r.copied) copied) to \(to)")
    }
}

struct RestoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore a backup into a new data folder, checking every blob's SHA-256 against the index.",
        discussion: """
            Refuses a DIR that is not empty and a backup without its backup.json (one that did not finish). \
            On any missing or corrupt blob, nothing is left in DIR and the exit status is 1.
            """)

    @Option(help: ArgumentHelp("The backup folder (`tessera backup --to`).", valueName: "DEST")) var from: String
    @Option(help: "The data folder to create (must be missing or empty).") var data: String

    func run() throws {
        let r: DataFolderBackup.Report
        do { r = try DataFolderBackup.restore(from: from, to: data) } catch let e as DataFolderError {
            throw Diagnostics.fail(e.description)
        }
        print("restored \(r.blobs) blobs, \(r.bytes) bytes, every one's SHA-256 checked, into \(data)")
    }
}
