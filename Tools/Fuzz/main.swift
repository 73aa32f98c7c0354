// libFuzzer target for the DICOM reader (see Docs/fuzzing.md). Built with -DFUZZING and
// -sanitize=fuzzer by Tools/fuzz; a plain build gives a runner that replays inputs given as paths.
import DICOMCore
import DICOMParser

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
    }
    _ = try? DICOMFile.read(storage: storage, options: .headerOnly)
    _ = try? DICOMJSON.decode(UnsafeRawBufferPointer(bytes))
}

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    exercise(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
#else
for path in CommandLine.arguments.dropFirst() {
    if let storage = try? ByteStorage.map(path: path) {
        exercise(storage.bytes)
        print("ok \(path)")
    }
}
#endif
