import DICOMCore
// PLACEHOLDER until helper-9 delivers the decoder.
enum JPEGLosslessDecoder {
    struct Image: Sendable { var width: Int; var height: Int; var components: Int; var precision: Int; var samples: [UInt16] }
    static func decode(_ bytes: UnsafeRawBufferPointer) throws(DICOMError) -> Image {
        throw DICOMError(.unsupportedTransferSyntax, message: "JPEG lossless decoding is not built yet")
    }
}
