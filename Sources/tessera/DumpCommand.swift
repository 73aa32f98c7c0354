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
        for (n, path) in files.enumerated() {
            if files.count > 1 { print(n == 0 ? "# File: \(path)" : "\n# File: \(path)") }
            if let why = Diagnostics.unreadable(path) {
                Diagnostics.line(why)
                failed = true
                continue
            }
            var partial: DICOMFile? = nil
            do throws(DICOMError) {
                let storage = try ByteStorage.map(path: path)
                let file = try DICOMFile.read(storage: storage, options: options, partial: &partial)
                print(DICOMDump.lines(file).joined(separator: "\n"))
            } catch {
                if let partial { print(DICOMDump.lines(partial).joined(separator: "\n")) }
                Diagnostics.report(path: path, error: error)
                failed = true
            }
        }
        if failed { throw ExitCode.failure }
    }
}
