import ArgumentParser
import DICOMCore
import DICOMParser
#if canImport(Glibc)
import Glibc
#endif

struct JSONCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "json",
        abstract: "Print a DICOM file's data set as DICOM JSON (PS3.18 Annex F)."
    )

    @Argument(help: "The DICOM file.")
    var file: String

    @Option(help: "Binary values longer than this many bytes are written as BulkDataURI.")
    var bulkDataThreshold = 1024

    func run() throws {
        try Diagnostics.checkReadable([file])
        do throws(DICOMError) {
            // Values over the threshold stay in place, so each has a byte range for its URI.
            var readOptions = ReadOptions()
            readOptions.bulkDataThreshold = bulkDataThreshold
            let dicom = try DICOMFile.read(path: file, options: readOptions)
            var options = DICOMJSONOptions()
            options.bulkDataThreshold = bulkDataThreshold
            options.bulkDataURI = Self.uriMaker(for: file, file: dicom)
            var out = DICOMJSON.encode(dicom.dataSet, options: options)
            out.append(0x0A)
            out.withUnsafeBytes { raw in
                guard let base = raw.baseAddress else { return }
                var offset = 0
                while offset < raw.count {
                    let n = write(1, base + offset, raw.count - offset)
                    if n <= 0 { break }
                    offset += n
                }
            }
        } catch {
            Diagnostics.report(path: file, error: error)
            throw ExitCode.failure
        }
    }

    /// `file://PATH?offset=N&length=M`: where the value's bytes are in the file. Values of a
    /// deflated data set have no such place and are written inline.
    static func uriMaker(for path: String, file: DICOMFile) -> @Sendable ([Tag], DataElement) -> String? {
        let absolute = path.hasPrefix("/") ? path : currentDirectory() + "/" + path
        let inPlace = file.dataSetStorage === file.storage
        return { _, element in
            guard inPlace else { return nil }
            switch element.value {
            case .bulk(let ref):
                return "file://\(absolute)?offset=\(ref.offset)&length=\(ref.length)"
            case .fragments(let f):
                let start = max(0, f.basicOffsetTable.lowerBound - 8)
                let end = f.fragments.last?.upperBound ?? f.basicOffsetTable.upperBound
                return "file://\(absolute)?offset=\(start)&length=\(end - start)"
            case .bytes, .sequence:
                return nil
            }
        }
    }

    private static func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getcwd(&buffer, buffer.count) != nil else { return "." }
        return String(cString: buffer)
    }
}
