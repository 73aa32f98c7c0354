import DICOMCore

/// Decodes JPEG lossless (ITU-T T.81 Annex H, SOF3) codestreams: DICOM's .57 and .70 transfer syntaxes.
///
/// Supported: Huffman-coded process 14, 1–4 components, precision 2–16, predictors 1–7, point
/// transform, interleaved scans and one scan per component, restart intervals of whole rows.
/// Not supported (thrown as `.invalidValue`): other processes (DCT, arithmetic, hierarchical),
/// sampling factors other than 1×1 in multi-component frames, DNL-defined heights, and restart
/// intervals that end mid-row (libjpeg-turbo rejects those too: H.1.2.1's first-row rule only
/// makes sense at a row start).
///
/// Hostile input throws rather than traps. The frame buffer is sized only after checking that the
/// input could hold that many samples (every coded difference costs at least one bit), so a
/// 20-byte stream cannot make us allocate gigabytes.
enum JPEGLosslessDecoder {
    struct Image: Sendable {
        var width: Int
        var height: Int
        var components: Int
        var precision: Int        // P from SOF3, 2...16
        /// Samples, interleaved per pixel (c0 c1 c2 c0 c1 c2 …), row-major, unsigned as coded (point transform Pt applied: sample << Pt).
        var samples: [UInt16]
    }

    /// Largest width × height × components accepted (512 MiB of samples).
    static let maximumSamples = 1 << 28

    static func decode(_ bytes: UnsafeRawBufferPointer) throws(DICOMError) -> Image {
        var decoder = StreamDecoder(bytes: bytes)
        return try decoder.run()
    }

    /// A marker byte as error messages show it (`FFD9`).
    static func hex(_ byte: UInt8) -> String {
        let digits = String(byte, radix: 16, uppercase: true)
        return byte < 0x10 ? "0" + digits : digits
    }
}

// MARK: - Huffman tables

extension JPEGLosslessDecoder {
    /// One DHT table in canonical form (T.81 Annex C), with a direct lookup for short codes.
    struct HuffmanTable {
        static let lookupBits = 9
        /// Indexed by the next `lookupBits` bits: `length << 8 | symbol`, or 0 when the code is longer.
        var lookup = [UInt16](repeating: 0, count: 1 << lookupBits)
        /// Per code length 1...16 (index 0 unused): the first and last code of that length, and the
        /// index of the first symbol with it. `maxCode < minCode` when no code has that length.
        var minCode = [Int](repeating: 0, count: 17)
        var maxCode = [Int](repeating: -1, count: 17)
        var firstSymbol = [Int](repeating: 0, count: 17)
        var symbols: [UInt8]

        /// `counts[i]` codes of length i + 1. Tables whose codes overflow their length (some DICOM
        /// encoders write them) are accepted: the overflowing codes can never match, which is safe.
        init(counts: [Int], symbols: [UInt8]) {
            self.symbols = symbols
            var code = 0, index = 0
            for length in 1...16 {
                let n = counts[length - 1]
                minCode[length] = code
                firstSymbol[length] = index
                maxCode[length] = code + n - 1
                if length <= Self.lookupBits {
                    let shift = Self.lookupBits - length
                    for k in 0..<n where code + k < 1 << length {
                        let entry = UInt16(length << 8) | UInt16(symbols[index + k])
                        let start = (code + k) << shift
                        for slot in start..<(start + (1 << shift)) { lookup[slot] = entry }
                    }
                }
                code = (code + n) << 1
                index += n
            }
        }

        /// Codes longer than `lookupBits`: `peek` holds the next 16 bits. Returns (symbol, length).
        func decodeSlow(_ peek: Int) -> (symbol: Int, length: Int)? {
            for length in (Self.lookupBits + 1)...16 {
                let code = peek >> (16 - length)
                if code >= minCode[length] && code <= maxCode[length] {
                    return (Int(symbols[firstSymbol[length] + code - minCode[length]]), length)
                }
            }
            return nil
        }
    }
}

// MARK: - Entropy-coded data

extension JPEGLosslessDecoder {
    /// Reads entropy-coded bits (T.81 F.2.2.5), removing FF00 stuffing and stopping at markers.
    /// Past the segment's end it feeds zero bits and counts them in `padding`, so the hot path needs
    /// no end checks; a scan that consumed any of them ran out of data (checked once per row).
    struct BitReader {
        let bytes: UnsafeRawBufferPointer
        /// Next byte to load; at a marker it stays on the marker's FF.
        var position: Int
        /// The low `count` bits are unread, most significant first.
        var buffer: UInt64 = 0
        var count = 0
        var padding = 0
        var atMarker = false

        init(bytes: UnsafeRawBufferPointer, position: Int) {
            self.bytes = bytes
            self.position = position
        }

        @inline(__always)
        mutating func refill() {
            // Fast path: the next 8 bytes hold no FF, so whole bytes can be taken at once.
            if !atMarker && position + 8 <= bytes.count {
                let word = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: position, as: UInt64.self))
                let inverted = ~word
                if (inverted &- 0x0101_0101_0101_0101) & ~inverted & 0x8080_8080_8080_8080 == 0 {
                    let n = (63 - count) >> 3 // 4...7 bytes, as count < 32
                    buffer = buffer &<< UInt64(8 * n) | word &>> UInt64(64 - 8 * n)
                    count += 8 * n
                    position += n
                    return
                }
            }
            while count <= 56 {
                var byte: UInt64 = 0
                if atMarker || position >= bytes.count {
                    padding += 8
                } else if bytes[position] != 0xFF {
                    byte = UInt64(bytes[position])
                    position += 1
                } else if position + 1 < bytes.count, bytes[position + 1] == 0 {
                    byte = 0xFF
                    position += 2
                } else {
                    atMarker = true
                    padding += 8
                }
                buffer = buffer &<< 8 | byte
                count += 8
            }
        }

        /// True when bits past the data were consumed.
        var overran: Bool { count < padding }

        func overrunError() -> DICOMError {
            // A lone FF at the very end is a cut-off stream too, not a marker.
            if position + 1 >= bytes.count {
                return DICOMError(.truncated, offset: bytes.count, message: "JPEG lossless data ends inside a scan")
            }
            return DICOMError(.invalidValue, offset: position, message: "JPEG lossless scan data ends early at a marker")
        }

        /// One Huffman-coded difference (T.81 H.1.2.2: categories 0–16, 16 meaning 32768 with no extra bits).
        @inline(__always)
        mutating func difference(_ lookup: UnsafePointer<UInt16>, _ tables: [HuffmanTable], _ k: Int) throws(DICOMError) -> Int {
            if count < 32 { refill() }
            let peek = Int(truncatingIfNeeded: buffer &>> UInt64(count - 16)) & 0xFFFF
            let entry = Int(lookup[peek &>> (16 - HuffmanTable.lookupBits)])
            let category: Int
            if entry != 0 {
                category = entry & 0xFF
                count -= entry &>> 8
            } else if let (symbol, length) = tables[k].decodeSlow(peek) {
                category = symbol
                count -= length
            } else {
                throw DICOMError(.invalidValue, offset: position, message: "JPEG lossless data holds a code its Huffman table does not define")
            }
            switch category {
            case 0: return 0
            case 1...15:
                // count ≥ 16 here: at least 32 bits before, at most 16 used by the code.
                let bits = Int(truncatingIfNeeded: buffer &>> UInt64(count - category)) & ((1 &<< category) - 1)
                count -= category
                return bits < 1 &<< (category - 1) ? bits - (1 &<< category) + 1 : bits
            case 16: return 32768
            default:
                throw DICOMError(.invalidValue, offset: position, message: "JPEG lossless difference category \(category) is above 16")
            }
        }

        /// Ends a restart interval: drops the byte-alignment fill bits and reads RSTn (T.81 F.2.2.5).
        mutating func restart(expecting index: Int) throws(DICOMError) {
            if overran { throw overrunError() }
            buffer = 0
            count = 0
            padding = 0
            atMarker = false
            var p = position
            while p < bytes.count, bytes[p] != 0xFF { p += 1 }             // stray bytes before the marker
            while p + 1 < bytes.count, bytes[p + 1] == 0xFF { p += 1 }     // FF fill bytes
            guard p + 1 < bytes.count else {
                throw DICOMError(.truncated, offset: bytes.count, message: "JPEG lossless data ends before a restart marker")
            }
            guard bytes[p + 1] == 0xD0 + UInt8(index & 7) else {
                throw DICOMError(.invalidValue, offset: p, message: "expected RST\(index & 7), found marker FF\(hex(bytes[p + 1]))")
            }
            position = p + 2
        }
    }
}

// MARK: - Markers and frame

extension JPEGLosslessDecoder {
    struct Component {
        var id: UInt8
        var pointTransform = 0
        var coded = false
    }

    struct Scan {
        /// Frame component index and Huffman table of each scan component, in scan order.
        var components: [(index: Int, table: Int)]
        var predictor: Int
        var pointTransform: Int
    }

    struct StreamDecoder {
        let bytes: UnsafeRawBufferPointer
        var position = 0
        var tables = [HuffmanTable?](repeating: nil, count: 4)
        var restartInterval = 0
        var width = 0, height = 0, precision = 0
        var components: [Component] = []
        var samples: [UInt16] = []

        init(bytes: UnsafeRawBufferPointer) {
            self.bytes = bytes
        }

        var frameComplete: Bool { !components.isEmpty && components.allSatisfy(\.coded) }

        mutating func run() throws(DICOMError) -> Image {
            guard bytes.count >= 2 else {
                throw DICOMError(.truncated, offset: 0, message: "JPEG lossless stream is \(bytes.count) bytes long")
            }
            guard bytes[0] == 0xFF, bytes[1] == 0xD8 else {
                throw DICOMError(.invalidValue, offset: 0, message: "JPEG stream does not start with SOI (FFD8)")
            }
            position = 2
            var sawEOI = false
            markers: while let (marker, at) = nextMarker() {
                switch marker {
                case 0xD9:
                    sawEOI = true
                    break markers
                case 0xC3:
                    try readFrameHeader(at: at)
                case 0xC0, 0xC1, 0xC2, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF:
                    throw DICOMError(.invalidValue, offset: at, message: "JPEG SOF\(marker - 0xC0) is not lossless Huffman coding (SOF3)")
                case 0xDE, 0xDF:
                    throw DICOMError(.invalidValue, offset: at, message: "hierarchical JPEG (DHP/EXP) is not supported")
                case 0xD8:
                    throw DICOMError(.invalidValue, offset: at, message: "second SOI inside a JPEG stream")
                case 0xC4:
                    try readHuffmanTables(at: at)
                case 0xDD:
                    let segment = try readSegment(at: at)
                    guard segment.count == 2 else {
                        throw DICOMError(.invalidValue, offset: at, message: "DRI segment is \(segment.count) bytes, not 2")
                    }
                    restartInterval = Int(bytes[segment.lowerBound]) << 8 | Int(bytes[segment.lowerBound + 1])
                case 0xDA:
                    let scan = try readScanHeader(at: at)
                    try decodeScan(scan)
                case 0xD0...0xD7, 0x01:
                    continue // parameterless; a stray RST after the last interval is harmless
                default:
                    _ = try readSegment(at: at) // APPn, COM, DQT, DNL, …: not needed
                }
            }
            // A missing EOI is tolerated once every sample has been decoded.
            guard frameComplete else {
                if sawEOI {
                    throw DICOMError(.invalidValue, offset: position - 2, message: "JPEG lossless stream ends (EOI) before every component was decoded")
                }
                throw DICOMError(.truncated, offset: bytes.count, message: components.isEmpty
                    ? "JPEG lossless stream ends before its frame header" : "JPEG lossless stream ends before every component was decoded")
            }
            // Undo the point transform (H.1.2.3) only now: predictions work on the shifted-down values.
            let stride = components.count
            for (c, component) in components.enumerated() where component.pointTransform > 0 {
                let shift = component.pointTransform
                samples.withUnsafeMutableBufferPointer { s in
                    var i = c
                    while i < s.count {
                        s[i] = s[i] &<< UInt16(shift)
                        i += stride
                    }
                }
            }
            return Image(width: width, height: height, components: components.count, precision: precision, samples: samples)
        }

        /// The next marker code and the offset of its FF, skipping fill bytes and any stray bytes
        /// between segments (as libjpeg does, with a warning); nil at the end of data.
        mutating func nextMarker() -> (UInt8, Int)? {
            while position + 1 < bytes.count {
                if bytes[position] != 0xFF || bytes[position + 1] == 0xFF || bytes[position + 1] == 0x00 {
                    position += 1
                    continue
                }
                let at = position
                position += 2
                return (bytes[at + 1], at)
            }
            position = bytes.count
            return nil
        }

        /// The body of the segment whose marker is at `at` (position is just past the marker);
        /// moves past it.
        mutating func readSegment(at: Int) throws(DICOMError) -> Range<Int> {
            guard position + 2 <= bytes.count else {
                throw DICOMError(.truncated, offset: position, message: "JPEG stream ends inside the length of marker FF\(hex(bytes[at + 1]))")
            }
            let length = Int(bytes[position]) << 8 | Int(bytes[position + 1])
            guard length >= 2 else {
                throw DICOMError(.invalidValue, offset: position, message: "JPEG segment length \(length) is below 2")
            }
            guard position + length <= bytes.count else {
                throw DICOMError(.truncated, offset: position, message: "JPEG segment FF\(hex(bytes[at + 1])) of \(length) bytes runs past the end of the stream")
            }
            let body = (position + 2)..<(position + length)
            position += length
            return body
        }

        mutating func readFrameHeader(at: Int) throws(DICOMError) {
            let s = try readSegment(at: at)
            guard components.isEmpty else {
                throw DICOMError(.invalidValue, offset: at, message: "JPEG stream has more than one frame header")
            }
            guard s.count >= 6 else {
                throw DICOMError(.invalidValue, offset: at, message: "SOF3 segment is \(s.count) bytes, too short")
            }
            let b = s.lowerBound
            precision = Int(bytes[b])
            height = Int(bytes[b + 1]) << 8 | Int(bytes[b + 2])
            width = Int(bytes[b + 3]) << 8 | Int(bytes[b + 4])
            let count = Int(bytes[b + 5])
            guard (2...16).contains(precision) else {
                throw DICOMError(.invalidValue, offset: b, message: "JPEG lossless precision \(precision) is outside 2...16")
            }
            guard height > 0 else {
                throw DICOMError(.invalidValue, offset: b + 1, message: "JPEG frame height 0 (defined by DNL) is not supported")
            }
            guard width > 0 else {
                throw DICOMError(.invalidValue, offset: b + 3, message: "JPEG frame width is 0")
            }
            guard (1...4).contains(count) else {
                throw DICOMError(.invalidValue, offset: b + 5, message: "JPEG lossless frame has \(count) components; 1 to 4 are supported")
            }
            guard s.count >= 6 + 3 * count else {
                throw DICOMError(.invalidValue, offset: at, message: "SOF3 segment is too short for \(count) components")
            }
            var found: [Component] = []
            for i in 0..<count {
                let p = b + 6 + 3 * i
                let id = bytes[p], h = Int(bytes[p + 1] >> 4), v = Int(bytes[p + 1] & 0x0F)
                guard (1...4).contains(h), (1...4).contains(v) else {
                    throw DICOMError(.invalidValue, offset: p + 1, message: "JPEG component \(id) has sampling factors \(h)x\(v)")
                }
                // With several components, other factors would give components of different sizes.
                guard count == 1 || (h == 1 && v == 1) else {
                    throw DICOMError(.invalidValue, offset: p + 1, message: "JPEG lossless sampling factors \(h)x\(v) are not supported (only 1x1)")
                }
                guard !found.contains(where: { $0.id == id }) else {
                    throw DICOMError(.invalidValue, offset: p, message: "JPEG component id \(id) appears twice")
                }
                found.append(Component(id: id))
            }
            let total = width * height * count
            guard total <= JPEGLosslessDecoder.maximumSamples else {
                throw DICOMError(.invalidValue, offset: b + 1, message: "JPEG frame of \(width)x\(height)x\(count) samples exceeds the cap of \(JPEGLosslessDecoder.maximumSamples)")
            }
            guard total <= (bytes.count - position) * 8 else {
                throw DICOMError(.truncated, offset: bytes.count, message: "JPEG stream of \(bytes.count) bytes is too short for \(width)x\(height)x\(count) samples")
            }
            components = found
            samples = [UInt16](repeating: 0, count: total)
        }

        mutating func readHuffmanTables(at: Int) throws(DICOMError) {
            let s = try readSegment(at: at)
            var p = s.lowerBound
            while p < s.upperBound {
                guard p + 17 <= s.upperBound else {
                    throw DICOMError(.invalidValue, offset: p, message: "DHT segment ends inside a table's code counts")
                }
                let tableClass = Int(bytes[p] >> 4), id = Int(bytes[p] & 0x0F)
                guard tableClass <= 1, id <= 3 else {
                    throw DICOMError(.invalidValue, offset: p, message: "DHT table class \(tableClass) id \(id) is invalid")
                }
                let counts = (1...16).map { Int(bytes[p + $0]) }
                let total = counts.reduce(0, +)
                guard total <= 256 else {
                    throw DICOMError(.invalidValue, offset: p, message: "DHT table declares \(total) codes (more than 256)")
                }
                guard p + 17 + total <= s.upperBound else {
                    throw DICOMError(.invalidValue, offset: p, message: "DHT segment ends inside a table's symbols")
                }
                // Lossless scans use class 0 only; a class 1 table some writers add is skipped.
                if tableClass == 0 {
                    tables[id] = HuffmanTable(counts: counts, symbols: Array(bytes[(p + 17)..<(p + 17 + total)]))
                }
                p += 17 + total
            }
        }

        mutating func readScanHeader(at: Int) throws(DICOMError) -> Scan {
            let s = try readSegment(at: at)
            guard !components.isEmpty else {
                throw DICOMError(.invalidValue, offset: at, message: "JPEG scan before the frame header")
            }
            guard s.count >= 1 else {
                throw DICOMError(.invalidValue, offset: at, message: "SOS segment is empty")
            }
            let b = s.lowerBound
            let count = Int(bytes[b])
            guard (1...components.count).contains(count), s.count >= 4 + 2 * count else {
                throw DICOMError(.invalidValue, offset: b, message: "JPEG scan of \(count) components is invalid for a frame of \(components.count)")
            }
            var scanComponents: [(index: Int, table: Int)] = []
            for i in 0..<count {
                let p = b + 1 + 2 * i
                let id = bytes[p], table = Int(bytes[p + 1] >> 4)
                guard let index = components.firstIndex(where: { $0.id == id }) else {
                    throw DICOMError(.invalidValue, offset: p, message: "JPEG scan names component \(id), which the frame lacks")
                }
                guard !components[index].coded, !scanComponents.contains(where: { $0.index == index }) else {
                    throw DICOMError(.invalidValue, offset: p, message: "JPEG component \(id) is coded twice")
                }
                guard table <= 3, tables[table] != nil else {
                    throw DICOMError(.invalidValue, offset: p + 1, message: "JPEG scan uses Huffman table \(table), which is not defined")
                }
                scanComponents.append((index, table))
            }
            let q = b + 1 + 2 * count
            let predictor = Int(bytes[q]), pointTransform = Int(bytes[q + 2] & 0x0F)
            // Se and Ah carry nothing in lossless mode; some writers fill them with junk.
            guard (1...7).contains(predictor) else {
                throw DICOMError(.invalidValue, offset: q, message: "JPEG lossless predictor (selection value) \(predictor) is outside 1...7")
            }
            guard pointTransform < precision else {
                throw DICOMError(.invalidValue, offset: q + 2, message: "JPEG point transform \(pointTransform) is not below precision \(precision)")
            }
            return Scan(components: scanComponents, predictor: predictor, pointTransform: pointTransform)
        }

        /// Decodes one scan into `samples` (H.1.2): each difference is added, modulo 2^16, to a
        /// prediction from the left (Ra), upper (Rb) and upper-left (Rc) reconstructed samples.
        mutating func decodeScan(_ scan: Scan) throws(DICOMError) {
            let stride = components.count, rowStride = width * stride
            let ns = scan.components.count
            // Restart intervals count MCUs: one pixel of the scan's components, so `width` per row.
            var restartRows = 0
            if restartInterval > 0 && restartInterval < width * height {
                guard restartInterval % width == 0 else {
                    throw DICOMError(.invalidValue, offset: position, message: "JPEG lossless restart interval \(restartInterval) is not a whole number of \(width)-pixel rows")
                }
                restartRows = restartInterval / width
            }
            var reader = BitReader(bytes: bytes, position: position)
            let lookupSize = 1 << HuffmanTable.lookupBits
            let scanTables = scan.components.compactMap { tables[$0.table] }
            // Lookups and sample offsets in raw buffers, to keep the hot loop free of array checks.
            let lookups = UnsafeMutablePointer<UInt16>.allocate(capacity: ns * lookupSize)
            defer { lookups.deallocate() }
            let offsets = UnsafeMutablePointer<Int>.allocate(capacity: ns)
            defer { offsets.deallocate() }
            for (k, table) in scanTables.enumerated() {
                for i in 0..<lookupSize { lookups[k * lookupSize + i] = table.lookup[i] }
                offsets[k] = scan.components[k].index
            }
            let initial = 1 << (precision - scan.pointTransform - 1)
            let (w, h, predictor) = (width, height, scan.predictor)
            try samples.withUnsafeMutableBufferPointer { (out) throws(DICOMError) in
                guard let base = out.baseAddress else { return }
                var row = Row(width: w, stride: stride, rowStride: rowStride, count: ns, offsets: offsets,
                              lookups: lookups, tables: scanTables, start: base, first: initial)
                for y in 0..<h {
                    if restartRows > 0 && y > 0 && y % restartRows == 0 {
                        try reader.restart(expecting: y / restartRows - 1)
                        row.first = initial
                    }
                    row.start = base + y * rowStride
                    // H.1.2.1: the first row of a scan or restart interval predicts from the left
                    // (the initial value in the first column); later rows predict the first column from above.
                    switch row.first < 0 ? predictor : 1 {
                    case 1: try row.decode(&reader) { Int(($0 - stride).pointee) }
                    case 2: try row.decode(&reader) { Int(($0 - rowStride).pointee) }
                    case 3: try row.decode(&reader) { Int(($0 - rowStride - stride).pointee) }
                    case 4: try row.decode(&reader) { Int(($0 - stride).pointee) + Int(($0 - rowStride).pointee) - Int(($0 - rowStride - stride).pointee) }
                    case 5: try row.decode(&reader) { Int(($0 - stride).pointee) + ((Int(($0 - rowStride).pointee) - Int(($0 - rowStride - stride).pointee)) >> 1) }
                    case 6: try row.decode(&reader) { Int(($0 - rowStride).pointee) + ((Int(($0 - stride).pointee) - Int(($0 - rowStride - stride).pointee)) >> 1) }
                    default: try row.decode(&reader) { (Int(($0 - stride).pointee) + Int(($0 - rowStride).pointee)) >> 1 }
                    }
                    row.first = -1
                    if reader.overran { throw reader.overrunError() }
                }
            }
            position = reader.position
            for component in scan.components {
                components[component.index].coded = true
                components[component.index].pointTransform = scan.pointTransform
            }
        }
    }

    /// One row of a scan: where its samples go and how its differences are coded.
    struct Row {
        let width, stride, rowStride, count: Int
        let offsets: UnsafeMutablePointer<Int>
        let lookups: UnsafeMutablePointer<UInt16>
        let tables: [HuffmanTable]
        var start: UnsafeMutablePointer<UInt16>
        /// Prediction for the first column: the initial value 2^(P-Pt-1), or -1 for the sample above.
        var first: Int

        /// Decodes the row with `predict` (T.81 Table H.1, on full-width integers so 4–7 cannot
        /// overflow), which reads the neighbours of the sample it is given.
        @inline(__always)
        func decode(_ reader: inout BitReader, _ predict: (UnsafeMutablePointer<UInt16>) -> Int) throws(DICOMError) {
            let lookupSize = 1 << HuffmanTable.lookupBits
            for k in 0..<count {
                let p = start + offsets[k]
                let prediction = first >= 0 ? first : Int((p - rowStride).pointee)
                p.pointee = UInt16(truncatingIfNeeded: prediction + (try reader.difference(lookups + k * lookupSize, tables, k)))
            }
            guard width > 1 else { return }
            if count == 1 {
                var p = start + offsets[0] + stride
                for _ in 1..<width {
                    p.pointee = UInt16(truncatingIfNeeded: predict(p) + (try reader.difference(lookups, tables, 0)))
                    p += stride
                }
            } else {
                // Interleaved: each pixel's components in scan order.
                var pixel = start + stride
                for _ in 1..<width {
                    for k in 0..<count {
                        let p = pixel + offsets[k]
                        p.pointee = UInt16(truncatingIfNeeded: predict(p) + (try reader.difference(lookups + k * lookupSize, tables, k)))
                    }
                    pixel += stride
                }
            }
        }
    }
}
