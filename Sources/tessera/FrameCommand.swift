import ArgumentParser
import DICOMCore
import DICOMParser
import PixelData
#if canImport(Glibc)
import Glibc
#endif

struct FrameCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "frame",
        abstract: "Write one frame of a DICOM file, decoded to native little-endian samples or as stored.",
        discussion: """
            Decoded output holds the samples of pydicom's pixel_array for the frame, little endian, \
            interleaved (no rescale, no LUT). --encoded writes the frame's stored bytes instead.
            """
    )

    @Argument(help: "The DICOM file.")
    var file: String

    @Argument(help: "The frame number, from 1.")
    var number: Int

    @Option(name: .shortAndLong, help: "Where to write the frame ('-' for standard output).")
    var out: String

    @Flag(help: "Write the frame as stored (the codestream of a compressed frame) instead of decoding it.")
    var encoded = false

    func run() throws {
        do throws(DICOMError) {
            let dicom = try DICOMFile.read(path: file)
            let table = try FrameTable(file: dicom)
            guard number >= 1 && number <= table.frames.count else {
                throw DICOMError(.invalidValue, message: "frame \(number) is out of range: the file has \(table.frames.count) frame(s)")
            }
            let bytes = encoded ? try table.encodedFrame(number - 1) : try table.decodeFrame(number - 1).bytes
            try OutputFile.write(bytes, to: out)
        } catch {
            Diagnostics.report(path: file, error: error)
            throw ExitCode.failure
        }
    }
}

struct TranscodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transcode",
        abstract: "Rewrite a DICOM file's Pixel Data in another transfer syntax.",
        discussion: "Targets: \(PixelCodecs.encodableTransferSyntaxes.joined(separator: ", ")) and the other native syntaxes."
    )

    @Argument(help: "The DICOM file to read.")
    var input: String

    @Argument(help: "The Part 10 file to write.")
    var output: String

    @Option(help: "The Transfer Syntax UID to write.")
    var to: String

    func run() throws {
        do throws(DICOMError) {
            let dicom = try DICOMFile.read(path: input)
            let (dataSet, syntax) = try Transcoder.transcode(dicom, to: to)
            let bytes = try DICOMWriter.part10(dataSet, transferSyntax: syntax, meta: dicom.meta)
            try OutputFile.write(bytes, to: output)
        } catch {
            Diagnostics.report(path: input, error: error)
            throw ExitCode.failure
        }
    }
}

/// Writes a whole file through a temporary name and a rename, so a failed run never leaves a
/// half-written output where the path was.
enum OutputFile {
    static func write(_ bytes: [UInt8], to path: String) throws(DICOMError) {
        if path == "-" {
            try writeAll(fd: 1, bytes, path: "standard output")
            return
        }
        let temp = path + ".tessera-tmp"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw DICOMError(.io, message: "cannot create \(path): errno \(errno)") }
        do throws(DICOMError) {
            try writeAll(fd: fd, bytes, path: path)
        } catch {
            close(fd)
            unlink(temp)
            throw error
        }
        close(fd)
        guard rename(temp, path) == 0 else {
            unlink(temp)
            throw DICOMError(.io, message: "cannot rename onto \(path)")
        }
    }

    private static func writeAll(fd: Int32, _ bytes: [UInt8], path: String) throws(DICOMError) {
        let ok = bytes.withUnsafeBytes { raw -> Bool in
            guard let base = raw.baseAddress else { return true }
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, base + offset, raw.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                offset += n
            }
            return true
        }
        guard ok else { throw DICOMError(.io, message: "cannot write \(path)") }
    }
}
