import ArgumentParser
import DICOMCore
import DICOMParser
#if canImport(Glibc)
import Glibc
#endif

struct DumpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump",
        abstract: "List the elements of DICOM files, like dcmdump."
    )

    @Argument(help: "DICOM files to list.")
    var files: [String]

    @Flag(name: .customLong("stop-before-pixels"), help: "Do not read Pixel Data or anything after it.")
    var stopBeforePixels = false

    func run() throws {
        var failed = false
        var options = ReadOptions.default
        options.stopBeforePixelData = stopBeforePixels
        // Listings are built as bytes and written with one write(2) per file: formatting and
        // printing line by line cost more than parsing.
        var out: [UInt8] = []
        func flush() {
            out.withUnsafeBytes { raw in
                guard let base = raw.baseAddress else { return }
                var done = 0
                while done < raw.count {
                    let n = write(1, base + done, raw.count - done)
                    if n > 0 { done += n } else if n < 0 && errno == EINTR { continue } else { break }
                }
            }
            out.removeAll(keepingCapacity: true)
        }
        let keywords = DICOMDump.KeywordCache()
        for (n, path) in files.enumerated() {
            if files.count > 1 { out += (n == 0 ? "# File: \(path)\n" : "\n# File: \(path)\n").utf8 }
            if let why = Diagnostics.unreadable(path) {
                flush()
                Diagnostics.line(why)
                failed = true
                continue
            }
            var partial: DICOMFile? = nil
            do throws(DICOMError) {
                let storage = try ByteStorage.map(path: path)
                let file = try DICOMFile.read(storage: storage, options: options, partial: &partial)
                DICOMDump.write(file, to: &out, cache: keywords)
                flush()
            } catch {
                if let partial { DICOMDump.write(partial, to: &out, cache: keywords) }
                flush()
                Diagnostics.report(path: path, error: error)
                failed = true
            }
        }
        if failed { throw ExitCode.failure }
    }
}
