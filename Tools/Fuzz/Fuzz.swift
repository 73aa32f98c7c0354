// libFuzzer target for the DICOM reader (see Docs/fuzzing.md). Built with -DFUZZING and
// -sanitize=fuzzer by Tools/fuzz; a plain build gives a runner that replays inputs given as paths.
import DICOMCore
import DICOMParser
import DICOMweb
import PixelData

/// One input through every reading path: full read, header-only read, and (when readable) a
/// write and a read of what was written, plus DICOM JSON both ways.
func exercise(_ bytes: UnsafeRawBufferPointer) {
    let storage = ByteStorage(copying: bytes)
    if let file = try? DICOMFile.read(storage: storage) {
        _ = DICOMDump.lines(file)
        let json = DICOMJSON.encode(file.dataSet)
        _ = try? DICOMJSON.decode(json)
        if let written = try? DICOMWriter.part10(file.dataSet, transferSyntax: .explicitVRLittleEndian) {
            _ = try? DICOMFile.read(bytes: written)
        }
        // Frames and codecs: corrupt codestreams inside real files reach every decoder.
        // Rendering: the file's own window, rescale and palette (hostile values included) on the decoded
        // frame, once plainly and once through a small viewport.
        if let table = try? FrameTable(file: file) {
            let display = DisplayAttributes(dataSet: file.dataSet)
            var small = RenderingOptions()
            small.viewport = .init(width: 16, height: 16)
            for i in table.frames.indices.prefix(2) {
                guard let frame = try? table.decodeFrame(i) else { continue }
                if frame.description.rows * frame.description.columns <= 1 << 20 {
                    _ = try? Renderer.render(frame, display: display, options: RenderingOptions()).png()
                }
                _ = try? Renderer.render(frame, display: display, options: small).jpeg(quality: 50)
            }
        }
    }
    exerciseCodecs(bytes)
    exerciseMultipart(bytes)
    _ = try? DICOMFile.read(storage: storage, options: .headerOnly)
    _ = try? DICOMJSON.decode(UnsafeRawBufferPointer(bytes))
}

/// The raw input as a codestream for each decoder: the first byte picks the decoder and the
/// geometry, so mutations of a codestream's header and body reach the codec directly.
func exerciseCodecs(_ bytes: UnsafeRawBufferPointer) {
    guard let selector = bytes.first else { return }
    let codecs: [any PixelDecoder] = [RLECodec(), OpenJPEGCodec(), HTJ2KCodec(), LibJPEGCodec(), CharLSCodec(), JPEGLosslessCodec()]
    let codec = codecs[Int(selector) % codecs.count]
    let color = selector & 0x80 != 0
    let d = PixelDescription(rows: 64, columns: 64, samplesPerPixel: color ? 3 : 1, bitsAllocated: color ? 8 : 16,
                             bitsStored: color ? 8 : 12, highBit: color ? 7 : 11, pixelRepresentation: Int(selector >> 6) & 1,
                             planarConfiguration: 0, photometricInterpretation: color ? "RGB" : "MONOCHROME2", numberOfFrames: 1)
    _ = try? codec.decode(Array(bytes.dropFirst()), description: d)
}

/// The raw input as a STOW-RS body: the first byte picks the size of the pieces it arrives in, so
/// delimiters and header blocks split at every place. The reader must end or fail, with what it
/// keeps between pieces bounded; part bytes are counted, not kept.
func exerciseMultipart(_ bytes: UnsafeRawBufferPointer) {
    guard let selector = bytes.first else { return }
    let piece = Int(selector) % 61 + 1
    var reader = MultipartReader(boundary: "fuzz-b")
    var parts = 0, partBytes = 0
    var offset = 1
    while offset < bytes.count {
        let end = min(bytes.count, offset + piece)
        do {
            try reader.read(UnsafeRawBufferPointer(rebasing: bytes[offset..<end])) { event in
                switch event {
                case .headers: parts += 1
                case .body(let b): partBytes += b.count
                case .partEnd: break
                }
            }
        } catch {
            return
        }
        offset = end
    }
    precondition(partBytes <= bytes.count, "a reader handed over more bytes than it was given")
    _ = (parts, reader.isInsidePart)
}

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    exercise(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(_ argc: UnsafeMutablePointer<CInt>,
                     _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                     _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// SwiftPM links an executable's entry point under this name; hand control to libFuzzer's driver.
@_cdecl("tessera_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments) { data, size in fuzzOne(data, size) }
}
#else
/// Without libFuzzer: replays the inputs named on the command line (e.g. a crash artifact).
@main
struct FuzzReplay {
    static func main() {
        for path in CommandLine.arguments.dropFirst() {
            if let storage = try? ByteStorage.map(path: path) {
                exercise(storage.bytes)
                print("ok \(path)")
            }
        }
    }
}
#endif
