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
        discussion: "Exit status is 0 when nothing failed. Duplicates and conflicting instances are not failures."
    )

    @Argument(help: "Files and folders to import.")
    var paths: [String]

    @Option(help: "The data folder.")
    var data: String

    @Option(help: "Files read and parsed at once.")
    var jobs = max(2, ProcessInfo.processInfo.activeProcessorCount)

    @Option(help: "Instances indexed per transaction (one image-set version per batch).")
    var batch = 64

    @Option(help: "Set the data folder's policy for a stored SOP Instance UID arriving with different bytes: reject or replace.")
    var policy: String?

    @Option(help: "Set whether the data folder keeps an HTJ2K lossless copy of each instance's frames: htj2k or none.")
    var transcodeOnIngest: String?

    @Flag(help: "No progress bar.")
    var quiet = false

    @Flag(help: "Print one line per instance on stdout once its batch is committed: status, SOP Instance UID, path.")
    var printOutcomes = false

    func run() async throws {
        let store: Datastore
        do { store = try Datastore(folder: data) } catch {
            FileHandle.standardError.write(Data("tessera: \(data): \(error)\n".utf8))
            throw ExitCode.failure
        }
        if let policy {
            guard let p = DuplicatePolicy(rawValue: policy) else { throw ValidationError("--policy is reject or replace") }
            try store.setPolicy(p)
        }
        if let transcodeOnIngest {
            guard ["htj2k", "none"].contains(transcodeOnIngest) else { throw ValidationError("--transcode-on-ingest is htj2k or none") }
            try store.setTranscodeOnIngest(transcodeOnIngest == "htj2k" ? "1.2.840.10008.1.2.4.201" : nil)
        }
        let files = Self.collect(paths)
        var progress = Progress(total: files.count, totalBytes: files.reduce(0) { $0 + $1.size }, live: !quiet && isatty(2) != 0)
        var summary = Summary()
        // A pipeline of two: while one batch is synced and indexed, the next is copied and parsed.
        var pending: Task<Void, Never>?
        let report = Report()
        var start = 0
        while start < files.count {
            let chunk = Array(files[start..<min(start + batch, files.count)])
            start += chunk.count
            let candidates = await stage(chunk, store: store)
            await pending?.value
            report.flush(into: &summary, progress: &progress)
            let printOutcomes = self.printOutcomes
            pending = Task.detached {
                let good = candidates.enumerated().compactMap { i, c in c.0.map { (i, $0) } }
                let outcomes = store.store(good.map(\.1), reason: "import")
                var lines: [(IngestOutcome, String)] = []
                for (i, c) in candidates.enumerated() where c.1 != nil {
                    lines.append((.failure(FailureReason.processingFailure, c.1 ?? ""), chunk[i].path))
                }
                for ((i, _), outcome) in zip(good, outcomes) {
                    lines.append((outcome, chunk[i].path))
                    if printOutcomes {
                        // Written only after the commit returned: a line here means the instance is durable.
                        FileHandle.standardOutput.write(Data("\(outcome.status.rawValue) \(outcome.sopInstanceUID ?? "-") \(chunk[i].path)\n".utf8))
                    }
                }
                report.add(lines, files: chunk.count, bytes: chunk.reduce(0) { $0 + $1.size })
            }
        }
        await pending?.value
        // The series metadata documents of what was imported, compressed before the process ends
        // (and counted in the elapsed time: they are part of ingest).
        do { try store.flushMetadata() } catch {
            FileHandle.standardError.write(Data("tessera: series metadata will be rebuilt on the next start: \(error)\n".utf8))
        }
        report.flush(into: &summary, progress: &progress)
        progress.finish()
        summary.print(elapsed: progress.elapsed, bytes: progress.bytesDone)
        if summary.failed > 0 { throw ExitCode.failure }
    }

    /// Copies, hashes and parses a chunk of files in parallel, at most `jobs` at a time.
    func stage(_ chunk: [(path: String, size: Int)], store: Datastore) async -> [(Datastore.Candidate?, String?)] {
        await withTaskGroup(of: (Int, Datastore.Candidate?, String?).self) { group in
            var next = 0
            var out = [(Datastore.Candidate?, String?)](repeating: (nil, nil), count: chunk.count)
            func add() {
                let i = next
                next += 1
                let path = chunk[i].path
                group.addTask {
                    do {
                        let staged = try await store.blobs.stage(FileChunks(path: path), limit: store.maximumInstanceSize)
                        return (i, store.prepare(staged), nil)
                    } catch {
                        return (i, nil, "\(error)")
                    }
                }
            }
            while next < min(jobs, chunk.count) { add() }
            for await (i, candidate, error) in group {
                out[i] = (candidate, error)
                if next < chunk.count { add() }
            }
            return out
        }
    }

    /// Outcomes handed from the committing task to the main loop.
    final class Report: @unchecked Sendable {
        private let lock = NSLock()
        private var lines: [(IngestOutcome, String)] = []
        private var files = 0, bytes = 0
        func add(_ l: [(IngestOutcome, String)], files f: Int, bytes b: Int) {
            lock.withLock { lines += l; files += f; bytes += b }
        }
        func flush(into summary: inout Summary, progress: inout Progress) {
            let (l, f, b) = lock.withLock { () -> ([(IngestOutcome, String)], Int, Int) in
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
            guard fm.fileExists(atPath: p, isDirectory: &isDir) else {
                FileHandle.standardError.write(Data("tessera: \(p): no such file or folder\n".utf8))
                continue
            }
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
        var stored = 0, duplicates = 0, replaced = 0, nonPrimary = 0, failed = 0
        var failures: [String] = []
        mutating func add(_ o: IngestOutcome, path: String) {
            switch o.status {
            case .stored: stored += 1
            case .duplicate: duplicates += 1
            case .replaced: replaced += 1
            case .failed:
                failed += 1
                failures.append("\(path): \(o.reasonCode.map { String(format: "0x%04X", $0) } ?? "") \(o.message ?? "")")
            }
            if o.isPrimary == false && o.status != .failed && o.status != .duplicate { nonPrimary += 1 }
        }
        func print(elapsed: Double, bytes: Int) {
            var lines = ["imported in \(String(format: "%.2f", elapsed)) s (\(String(format: "%.1f", Double(stored + replaced) / max(elapsed, 1e-6))) instances/s, \(String(format: "%.1f", Double(bytes) / 1e6 / max(elapsed, 1e-6))) MB/s)",
                         "stored: \(stored)", "duplicates: \(duplicates)", "replaced: \(replaced)",
                         "non-primary (conflicts): \(nonPrimary)", "failed: \(failed)"]
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
