import ArgumentParser
import DICOMCore
import DICOMParser
import ImageSetStore
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
        try Diagnostics.checkReadable([file])
        let bytes: [UInt8]
        do throws(DICOMError) {
            let dicom = try DICOMFile.read(path: file)
            let table = try FrameTable(file: dicom)
            guard number >= 1 && number <= table.frames.count else {
                throw DICOMError(.invalidValue, message: "frame \(number) is out of range: the file has \(table.frames.count) frame(s)")
            }
            bytes = encoded ? try table.encodedFrame(number - 1) : try table.decodeFrame(number - 1).bytes
        } catch {
            Diagnostics.report(path: file, error: error)
            throw ExitCode.failure
        }
        try OutputFile.save(bytes, to: out)
    }
}

struct TranscodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transcode",
        abstract: "Rewrite a DICOM file's Pixel Data in another transfer syntax.",
        discussion: "Targets, by name or UID: " + TargetSyntax.listing + "."
    )

    @Argument(help: "The DICOM file to read.")
    var input: String

    @Argument(help: "The Part 10 file to write.")
    var output: String

    @Option(help: ArgumentHelp("The transfer syntax to write, by name or UID: " + TargetSyntax.listing + ".", valueName: "syntax"))
    var to: String

    func run() throws {
        guard let target = TargetSyntax.uid(for: to) else {
            throw Diagnostics.fail("unknown transfer syntax '\(to)'; targets are " + TargetSyntax.listing)
        }
        try Diagnostics.checkReadable([input])
        let bytes: [UInt8]
        do throws(DICOMError) {
            let dicom = try DICOMFile.read(path: input)
            let (dataSet, syntax) = try Transcoder.transcode(dicom, to: target)
            bytes = try DICOMWriter.part10(dataSet, transferSyntax: syntax, meta: dicom.meta)
        } catch {
            Diagnostics.report(path: input, error: error)
            throw ExitCode.failure
        }
        try OutputFile.save(bytes, to: output)
    }
}

/// The transfer syntaxes `transcode` writes, by the short names a user types.
enum TargetSyntax {
    static let names: [(name: String, uid: String)] = [
        ("explicit-le", "1.2.840.10008.1.2.1"),       // Explicit VR Little Endian
        ("rle", "1.2.840.10008.1.2.5"),               // RLE Lossless
        ("j2k", "1.2.840.10008.1.2.4.90"),            // JPEG 2000 Image Compression (Lossless Only)
        ("htj2k", "1.2.840.10008.1.2.4.201"),         // High-Throughput JPEG 2000 (Lossless Only)
    ]

    /// The UID for a name (any case) or for a UID the transcoder can write.
    static func uid(for value: String) -> String? {
        let targets = PixelCodecs.encodableTransferSyntaxes
        if targets.contains(value) { return value }
        return names.first { $0.name == value.lowercased() && targets.contains($0.uid) }?.uid
    }

    /// "htj2k (1.2.840.10008.1.2.4.201), …": every target, named where it has a name.
    static var listing: String {
        PixelCodecs.encodableTransferSyntaxes.map { uid in
            names.first { $0.uid == uid }.map { "\($0.name) (\(uid))" } ?? uid
        }.joined(separator: ", ")
    }
}

/// Writes a whole file through a temporary name and a rename, so a failed run never leaves a
/// half-written output where the path was.
enum OutputFile {
    /// `write`, ending the command with the error's line (it names the output file) on failure.
    static func save(_ bytes: [UInt8], to path: String) throws {
        do throws(DICOMError) { try write(bytes, to: path) } catch { throw Diagnostics.fail(error.message) }
    }

    static func write(_ bytes: [UInt8], to path: String) throws(DICOMError) {
        if path == "-" {
            try writeAll(fd: 1, bytes, path: "standard output")
            return
        }
        let temp = path + ".tessera-tmp"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw DICOMError(.io, message: "cannot create \(path): \(DataFolderError.errnoText())") }
        do throws(DICOMError) {
            try writeAll(fd: fd, bytes, path: path)
        } catch {
            close(fd)
            unlink(temp)
            throw error
        }
        close(fd)
        guard rename(temp, path) == 0 else {
            let why = DataFolderError.errnoText()
            unlink(temp)
            throw DICOMError(.io, message: "cannot write \(path): \(why)")
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
        guard ok else { throw DICOMError(.io, message: "cannot write \(path): \(DataFolderError.errnoText())") }
    }
}
