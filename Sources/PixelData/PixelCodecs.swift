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

extension PixelCodecs {
    /// Whether frames stored in this transfer syntax can be decoded (`decode` below).
    public static func canDecode(_ uid: String) -> Bool {
        (TransferSyntax(uid: uid).map { !$0.isEncapsulated } ?? false) || decoders[uid] != nil
    }

    /// One stored frame decoded to native little-endian samples, interleaved: the one rule every
    /// caller uses. Uncompressed syntaxes go through `NativeCodec` with their byte order (the
    /// registry's entry cannot know it is big endian), the others through their registered decoder.
    public static func decode(_ encoded: [UInt8], transferSyntax uid: String, description: PixelDescription) throws(DICOMError) -> DecodedFrame {
        if let syntax = TransferSyntax(uid: uid), !syntax.isEncapsulated {
            return try NativeCodec().decode(encoded, description: description, bigEndian: syntax.isBigEndian)
        }
        guard let decoder = decoders[uid] else {
            throw DICOMError(.unsupportedTransferSyntax, message: "no decoder for transfer syntax \(uid)")
        }
        return try decoder.decode(encoded, description: description)
    }
}

extension FrameTable {
    /// Frame `index` (0-based) decoded to native little-endian samples, interleaved.
    public func decodeFrame(_ index: Int) throws(DICOMError) -> DecodedFrame {
        try PixelCodecs.decode(try encodedFrame(index), transferSyntax: transferSyntax.uid, description: description)
    }
}
