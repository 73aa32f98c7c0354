import DICOMCore
import DICOMParser

/// One decoder per transfer syntax and the encoders Tessera writes, looked up by UID.
public enum PixelCodecs {
    static let decoderList: [any PixelDecoder] = [
        NativeCodec(), RLECodec(), OpenJPEGCodec(), HTJ2KCodec(), LibJPEGCodec(), JPEGLosslessCodec(), CharLSCodec(),
    ]
    static let decoders: [String: any PixelDecoder] = {
        var map: [String: any PixelDecoder] = [:]
        for d in decoderList { for uid in d.transferSyntaxUIDs where map[uid] == nil { map[uid] = d } }
        return map
    }()
    static let encoders: [String: any PixelEncoder] = [
        "1.2.840.10008.1.2.1": NativeCodec(),
        "1.2.840.10008.1.2.5": RLECodec(),
        "1.2.840.10008.1.2.4.90": OpenJPEGCodec(),
        "1.2.840.10008.1.2.4.201": HTJ2KCodec(),
    ]

    public static func decoder(for transferSyntaxUID: String) -> (any PixelDecoder)? { decoders[transferSyntaxUID] }
    public static func encoder(for transferSyntaxUID: String) -> (any PixelEncoder)? { encoders[transferSyntaxUID] }
    public static var decodableTransferSyntaxes: [String] { decoders.keys.sorted() }
    public static var encodableTransferSyntaxes: [String] { encoders.keys.sorted() }
}

extension FrameTable {
    /// Frame `index` (0-based) decoded to native little-endian samples, interleaved.
    public func decodeFrame(_ index: Int) throws(DICOMError) -> DecodedFrame {
        let encoded = try encodedFrame(index)
        let uid = transferSyntax.uid
        if !transferSyntax.isEncapsulated || uid == "1.2.840.10008.1.2.1.98" {
            return try NativeCodec().decode(encoded, description: description, bigEndian: transferSyntax.isBigEndian)
        }
        guard let decoder = PixelCodecs.decoder(for: uid) else {
            throw DICOMError(.unsupportedTransferSyntax, message: "no decoder for transfer syntax \(uid)")
        }
        return try decoder.decode(encoded, description: description)
    }
}
