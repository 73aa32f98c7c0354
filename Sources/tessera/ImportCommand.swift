import ArgumentParser
import Foundation
import ImageSetStore
#if canImport(Glibc)
import Glibc
#endif

struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import DICOM files and folders (recursively) into a data folder.",
        discussion: """
            Files that are not DICOM instances (a DICOMDIR, README, autorun.inf, pictures) are skipped and \
            counted. An instance already stored with the same bytes is a duplicate; one already stored in \
            another transfer syntax (the same instance, encoded differently) is counted as such and the stored \
            copy is kept (unless --policy replace).

            Exit status: 0 when every DICOM file was stored or already there; 1 when a DICOM file failed \
            (unreadable, invalid, or a different instance under a stored SOP Instance UID), when a path does \
            not exist, or when nothing importable was found. Skipped files and duplicates never fail the run.
            """
    )

    @Argument(help: "Files and folders to import.")
    var paths: [String]

    @Option(help: "The data folder (created when missing).")
    var data: String

    @Option(help: "Files read and parsed at once.")
    var jobs = max(2, ProcessInfo.processInfo.activeProcessorCount)

    @Option(help: "Instances indexed per transaction (one image-set version per batch).")
    var batch = 64

    @Option(help: "Set the data folder's policy for a stored SOP Instance UID arriving with different bytes: reject (the default) or replace.")
    var policy: String?

    @Option(help: "Set whether the data folder keeps an HTJ2K lossless copy of each instance's frames: htj2k or none.")
    var transcodeOnIngest: String?

    @Flag(help: "No progress bar.")
    var quiet = false

    @Flag(help: "Print one line per instance on stdout once its batch is committed: status, SOP Instance UID, path.")
    var printOutcomes = false

    func run() async throws {
        // Checked before the data folder is opened (or created): a typo is not an empty import.
        for p in paths where access(p, F_OK) != 0 {
            throw Diagnostics.fail("cannot read \(p): \(DataFolderError.errnoText())")
        }
        let files = Self.collect(paths)
        guard !files.isEmpty else { throw Diagnostics.fail("nothing to import: no files in \(paths.joined(separator: ", "))") }
        let store = try Diagnostics.open(data, access: .readWrite)
        if let policy {
            guard let p = DuplicatePolicy(rawValue: policy) else { throw ValidationError("--policy is reject or replace") }
            try await store.setPolicy(p)
        }
        if let transcodeOnIngest {
            guard ["htj2k", "none"].contains(transcodeOnIngest) else { throw ValidationError("--transcode-on-ingest is htj2k or none") }
            try await store.setTranscodeOnIngest(transcodeOnIngest == "htj2k" ? "1.2.840.10008.1.2.4.201" : nil)
        }
        var progress = Progress(total: files.count, totalBytes: files.reduce(0) { $0 + $1.size }, live: !quiet && isatty(2) != 0)
        var summary = Summary()
        // A pipeline of two: while one batch is synced and indexed, the next is copied and parsed.
        var pending: Task<Void, Never>?
        let report = Report()
        var start = 0
        while start < files.count {
            let chunk = Array(files[start..<min(start + batch, files.count)])
            start += chunk.count
            let staged = await stage(chunk, store: store)
            await pending?.value
            report.flush(into: &summary, progress: &progress)
            let printOutcomes = self.printOutcomes
            pending = Task.detached {
                var good: [(Int, Datastore.Candidate)] = []
                var lines: [(Entry, String)] = []
                for (i, s) in staged.enumerated() {
                    switch s {
                    case .candidate(let c): good.append((i, c))
                    case .failed(let message): lines.append((.outcome(.failure(FailureReason.processingFailure, message)), chunk[i].path))
                    case .skipped(let kind): lines.append((.skipped(kind), chunk[i].path))
                    }
                }
                // Each batch is one store record on the audit trail, in its transaction, under the user who ran the import.
                let outcomes = await store.store(good.map(\.1), reason: "import", audit: .localUser)
                for ((i, _), outcome) in zip(good, outcomes) {
                    lines.append((.outcome(outcome), chunk[i].path))
                }
                if printOutcomes {
                    // Written only after the commit returned: a stored line here means the instance is durable.
                    let text = lines.map { entry, path in "\(entry.label) \(entry.sopInstanceUID ?? "-") \(path)\n" }.joined()
                    FileHandle.standardOutput.write(Data(text.utf8))
                }
                report.add(lines, files: chunk.count, bytes: chunk.reduce(0) { $0 + $1.size })
            }
        }
        await pending?.value
        // The series metadata documents of what was imported, compressed before the process ends
        // (and counted in the elapsed time: they are part of ingest).
        do { try await store.flushMetadata() } catch {
            FileHandle.standardError.write(Data("tessera: series metadata will be rebuilt on the next start: \(error)\n".utf8))
        }
        report.flush(into: &summary, progress: &progress)
        progress.finish()
        summary.print(elapsed: progress.elapsed, bytes: progress.bytesDone)
        if summary.failed > 0 { throw ExitCode.failure }
        if summary.instancesSeen == 0 {
            throw Diagnostics.fail("nothing imported: no DICOM instances in \(paths.joined(separator: ", "))")
        }
    }

    /// A file of a chunk after staging: ready to store, failed, or not an instance.
    enum Staged: Sendable {
        case candidate(Datastore.Candidate)
        case failed(String)
        case skipped(FileSniff)
    }

    /// What the summary counts for one file.
    enum Entry {
        case outcome(IngestOutcome)
        case skipped(FileSniff)

        /// The word `--print-outcomes` prints.
        var label: String {
            switch self {
            case .skipped(let kind): return kind == .dicomdir ? "skipped-dicomdir" : "skipped-not-dicom"
            case .outcome(let o): return o.storedTransferSyntaxUID != nil ? "duplicate-other-encoding" : o.status.rawValue
            }
        }

        var sopInstanceUID: String? {
            if case .outcome(let o) = self { return o.sopInstanceUID }
            return nil
        }
    }

    /// Sniffs, copies, hashes and parses a chunk of files in parallel, at most `jobs` at a time.
    func stage(_ chunk: [(path: String, size: Int)], store: Datastore) async -> [Staged] {
        await withTaskGroup(of: (Int, Staged).self) { group in
            var next = 0
            var out = [Staged](repeating: .failed("not processed"), count: chunk.count)
            func add() {
                let i = next
                next += 1
                let path = chunk[i].path
                group.addTask {
                    let kind = FileSniff.classify(path: path)
                    guard kind == .instance else { return (i, .skipped(kind)) }
                    do {
                        let staged = try await store.blobs.stage(FileChunks(path: path), limit: store.maximumInstanceSize)
                        return (i, .candidate(store.prepare(staged)))
                    } catch {
                        return (i, .failed("\(error)"))
                    }
                }
            }
            while next < min(jobs, chunk.count) { add() }
            for await (i, staged) in group {
                out[i] = staged
                if next < chunk.count { add() }
            }
            return out
        }
    }

    /// Outcomes handed from the committing task to the main loop.
    final class Report: @unchecked Sendable {
        private let lock = NSLock()
        private var lines: [(Entry, String)] = []
        private var files = 0, bytes = 0
        func add(_ l: [(Entry, String)], files f: Int, bytes b: Int) {
            lock.withLock { lines += l; files += f; bytes += b }
        }
        func flush(into summary: inout Summary, progress: inout Progress) {
            let (l, f, b) = lock.withLock { () -> ([(Entry, String)], Int, Int) in
                defer { lines = []; files = 0; bytes = 0 }
                return (lines, files, bytes)
            }
            for (o, p) in l { summary.add(o, path: p) }
            if f > 0 { progress.advance(files: f, bytes: b) }
        }
    }

    static func collect(_ paths: [String]) -> [(path: String, size: Int)] {
        var out: [(String, Int)] = []
        let fm = FileManager.default
        for p in paths {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: p, isDirectory: &isDir) else { continue }
            if !isDir.boolValue {
                out.append((p, Self.size(p)))
                continue
            }
            guard let walker = fm.enumerator(atPath: p) else { continue }
            for case let rel as String in walker {
                let full = p + "/" + rel
                var d: ObjCBool = false
                if fm.fileExists(atPath: full, isDirectory: &d), !d.boolValue { out.append((full, Self.size(full))) }
            }
        }
        return out.sorted { $0.0 < $1.0 }
    }

    static func size(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
    }

    struct Summary {
        var stored = 0, duplicates = 0, otherEncoding = 0, replaced = 0, nonPrimary = 0, failed = 0
        var skipped = 0, dicomdirs = 0
        var failures: [String] = []
        /// Files that were DICOM instances, whatever became of them.
        var instancesSeen: Int { stored + duplicates + otherEncoding + replaced + failed }

        mutating func add(_ entry: Entry, path: String) {
            guard case .outcome(let o) = entry else {
                skipped += 1
                if case .skipped(.dicomdir) = entry { dicomdirs += 1 }
                return
            }
            switch o.status {
            case .stored: stored += 1
            case .duplicate: duplicates += 1
            case .replaced: replaced += 1
            case .failed where o.storedTransferSyntaxUID != nil: otherEncoding += 1
            case .failed:
                failed += 1
                failures.append("\(path): \(o.reasonCode.map { String(format: "0x%04X", $0) } ?? "") \(o.message ?? "")")
            }
            if o.isPrimary == false && o.status != .failed && o.status != .duplicate { nonPrimary += 1 }
        }
        func print(elapsed: Double, bytes: Int) {
            var lines = ["imported in \(String(format: "%.2f", elapsed)) s (\(String(format: "%.1f", Double(stored + replaced) / max(elapsed, 1e-6))) instances/s, \(String(format: "%.1f", Double(bytes) / 1e6 / max(elapsed, 1e-6))) MB/s)",
                         "stored: \(stored)", "duplicates: \(duplicates)",
                         "duplicates of the same instance, different encoding (stored copy kept): \(otherEncoding)",
                         "replaced: \(replaced)", "non-primary (conflicts): \(nonPrimary)",
                         "skipped: \(skipped) not DICOM" + (dicomdirs > 0 ? " (\(dicomdirs) DICOMDIR)" : ""),
                         "failed: \(failed)"]
            lines += failures.prefix(50).map { "  \($0)" }
            if failures.count > 50 { lines.append("  … and \(failures.count - 50) more") }
            FileHandle.standardError.write(Data((lines.joined(separator: "\n") + "\n").utf8))
        }
    }

    /// One line on a terminal's stderr, redrawn: instances, MB, rate and ETA.
    struct Progress {
        let total: Int, totalBytes: Int, live: Bool
        var done = 0, bytesDone = 0
        let started = Date()
        var elapsed: Double { Date().timeIntervalSince(started) }
        mutating func advance(files: Int, bytes: Int) {
            done += files
            bytesDone += bytes
            guard live else { return }
            let rate = Double(bytesDone) / max(elapsed, 1e-6)
            let eta = rate > 0 ? Double(totalBytes - bytesDone) / rate : 0
            let width = 30
            let filled = total > 0 ? width * done / total : width
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            let line = String(format: "\r[%@] %d/%d instances  %.1f/%.1f MB  %.1f MB/s  ETA %.0f s ",
                              bar, done, total, Double(bytesDone) / 1e6, Double(totalBytes) / 1e6, rate / 1e6, eta)
            FileHandle.standardError.write(Data(line.utf8))
        }
        func finish() { if live { FileHandle.standardError.write(Data("\n".utf8)) } }
    }
}
