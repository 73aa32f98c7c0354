import XCTest
import Foundation
import DICOMCore
import DICOMParser
import TestSupport
@testable import PixelData

/// The JPEG lossless decoder (T.81 Annex H) against DCMTK's dcmdjpeg: on every .57/.70 file of the
/// corpus, and on files dcmcjpeg encodes at test time with each predictor, a point transform and
/// split fragments. Synthetic streams cover what DCMTK never writes (restart intervals, one scan
/// per component, 2-bit precision, category-16 differences, Huffman codes past the fast lookup),
/// and hostile streams must throw, never trap.
///
/// Comparison: lossless JPEG codes each sample's stored bit pattern in P bits; dcmdjpeg may
/// sign-extend signed data above P, so only the low P bits of its samples are compared, and ours
/// must have nothing above bit P.
final class JPEGLosslessDecoderTests: XCTestCase {
    typealias Image = JPEGLosslessDecoder.Image

    // MARK: - Against DCMTK

    func testCorpusJPEGLosslessFilesMatchDCMTK() throws {
        var covered: [String] = []
        for path in try Corpus.files() {
            guard let file = try? DICOMFile.read(path: path),
                  Self.losslessSyntaxes.contains(file.transferSyntax.uid),
                  case .fragments? = file.dataSet[.pixelData]?.value else { continue }
            try compareWithDCMTK(path)
            covered.append(URL(fileURLWithPath: path).lastPathComponent)
        }
        // Every JPEG lossless file with pixels that pydicom and pydicom-data ship.
        let expected: Set = ["JPEG-LL.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm", "SC_rgb_jpeg_gdcm.dcm", "bad_sequence.dcm"]
        XCTAssertTrue(expected.isSubset(of: covered), "covered only \(covered)")
    }

    func testDCMTKEncodedVariantsMatchDCMTK() throws {
        let dcmcjpeg = try Corpus.tool("dcmcjpeg")
        let corpus = try Corpus.files()
        // Signed 16-bit, 12-bit multi-frame, signed 14-bit, 8-bit RGB, 16-bit RGB multi-frame, 3×3 RGB.
        let sources = ["CT_small.dcm", "emri_small.dcm", "693_UNCR.dcm", "SC_rgb.dcm", "SC_rgb_16bit_2frame.dcm", "SC_rgb_small_odd.dcm"]
        var variants: [(String, [String])] = [("sv1", ["+e1"])]
        variants += (2...7).map { ("sv\($0)", ["+el", "+sv", "\($0)"]) }
        variants += [("pt3", ["+el", "+sv", "5", "+pt", "3"]), ("1k fragments", ["+e1", "+fs", "1"])]
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for name in sources {
            guard let source = corpus.first(where: { $0.hasSuffix("/" + name) }) else {
                XCTFail("the corpus has no \(name)")
                continue
            }
            for (label, options) in variants {
                let encoded = dir.appendingPathComponent("\(name)-\(label).dcm").path
                try Corpus.run(dcmcjpeg, options + [source, encoded])
                let syntax = try DICOMFile.read(path: encoded).transferSyntax.uid
                XCTAssertTrue(Self.losslessSyntaxes.contains(syntax), "\(name) \(label): dcmcjpeg wrote \(syntax)")
                try compareWithDCMTK(encoded, label: "\(name) \(label)")
            }
        }
    }

    // MARK: - Synthetic streams

    func testSyntheticStreamsRoundTrip() throws {
        // (precision, components, interleaved, point transform, restart rows)
        let shapes: [(Int, Int, Bool, Int, Int)] = [
            (16, 3, true, 0, 2), (16, 1, true, 0, 0), (12, 4, false, 2, 3), (2, 1, true, 0, 1),
            (8, 2, false, 0, 0), (16, 2, true, 4, 100), (10, 3, false, 1, 4),
        ]
        var rng = SplitMix(seed: 1)
        for predictor in 1...7 {
            for (precision, components, interleaved, pt, restartRows) in shapes {
                let (width, height) = (13, 11)
                var encoder = TestEncoder(width: width, height: height, components: components, precision: precision)
                encoder.predictor = predictor
                encoder.pointTransform = pt
                encoder.interleaved = interleaved
                encoder.restartInterval = restartRows * width
                let samples = (0..<(width * height * components)).map { _ in UInt16(truncatingIfNeeded: rng.next()) & UInt16((1 << precision) - 1) }
                let stream = encoder.encode(samples)
                let label = "P\(precision) \(components)c \(interleaved ? "interleaved" : "per-component") Pt\(pt) SV\(predictor) restart \(restartRows)"
                let image = try decodeOrFail(stream, label)
                XCTAssertEqual([image.width, image.height, image.components, image.precision], [width, height, components, precision], label)
                XCTAssertEqual(image.samples, samples.map { ($0 >> pt) << pt }, label)
                if restartRows > 0 && restartRows < height {
                    XCTAssertTrue(stream.contains(pair: 0xFF, 0xD0), "\(label): no RST0 written")
                }
            }
        }
    }

    func testCategory16StuffingEdgesAndMissingEOI() throws {
        // Alternating 0 and 32768 makes every difference 32768: category 16, no extra bits.
        var encoder = TestEncoder(width: 8, height: 3, components: 1, precision: 16)
        let alternating = (0..<24).map { UInt16($0 % 2 == 0 ? 0 : 32768) }
        XCTAssertEqual(try decodeOrFail(encoder.encode(alternating), "category 16").samples, alternating)

        // Random 16-bit data produces FF bytes, so FF00 stuffing is exercised.
        var rng = SplitMix(seed: 2)
        encoder = TestEncoder(width: 31, height: 7, components: 3, precision: 16)
        let noise = (0..<(31 * 7 * 3)).map { _ in UInt16(truncatingIfNeeded: rng.next()) }
        let stuffed = encoder.encode(noise)
        XCTAssertTrue(stuffed.contains(pair: 0xFF, 0x00))
        XCTAssertEqual(try decodeOrFail(stuffed, "stuffing").samples, noise)

        // A stream without EOI decodes once all samples are in; so does one cut inside EOI.
        encoder.writeEOI = false
        XCTAssertEqual(try decodeOrFail(encoder.encode(noise), "no EOI").samples, noise)
        XCTAssertEqual(try decodeOrFail(Array(stuffed.dropLast()), "half an EOI").samples, noise)

        // Degenerate shapes: one pixel, one column, one row.
        for (width, height) in [(1, 1), (1, 9), (9, 1)] {
            let samples = (0..<(width * height * 2)).map { _ in UInt16(truncatingIfNeeded: rng.next()) & 0x0FFF }
            for predictor in 1...7 {
                var e = TestEncoder(width: width, height: height, components: 2, precision: 12)
                e.predictor = predictor
                e.restartInterval = width
                XCTAssertEqual(try decodeOrFail(e.encode(samples), "\(width)x\(height) SV\(predictor)").samples, samples)
            }
        }
    }

    func testRestartMarkerErrors() {
        var encoder = TestEncoder(width: 6, height: 6, components: 1, precision: 8)
        encoder.restartInterval = 12
        let samples = (0..<36).map { UInt16($0 * 7 % 256) }
        let stream = encoder.encode(samples)
        XCTAssertNoThrow(try decode(stream))
        // A restart interval ending mid-row has no defined first-row prediction: unsupported.
        encoder.declaredRestartInterval = 9
        assertThrows(encoder.encode(samples), .invalidValue, "mid-row restart interval")
        // RST markers must count 0, 1, 2 … modulo 8.
        var wrong = stream
        if let i = wrong.firstIndex(pair: 0xFF, 0xD0) { wrong[i + 1] = 0xD3 }
        assertThrows(wrong, .invalidValue, "RST3 where RST0 belongs")
    }

    // MARK: - Hostile input

    func testEveryTruncationThrowsTruncated() throws {
        var rng = SplitMix(seed: 3)
        var encoder = TestEncoder(width: 17, height: 9, components: 3, precision: 16)
        encoder.restartInterval = 2 * 17
        let samples = (0..<(17 * 9 * 3)).map { _ in UInt16(truncatingIfNeeded: rng.next()) & 0x3FFF }
        var streams: [(String, [UInt8])] = [("synthetic", encoder.encode(samples))]
        if let path = try Corpus.files().first(where: { $0.hasSuffix("/SC_rgb_jpeg_gdcm.dcm") }) {
            streams.append(("SC_rgb_jpeg_gdcm", try frames(of: DICOMFile.read(path: path))[0]))
        } else {
            XCTFail("the corpus has no SC_rgb_jpeg_gdcm.dcm")
        }
        for (label, padded) in streams {
            // Up to and including EOI; DICOM pads frames to even length after it.
            guard let eoi = padded.lastIndex(pair: 0xFF, 0xD9) else { return XCTFail("\(label) has no EOI") }
            let stream = Array(padded[..<(eoi + 2)])
            let full = try decodeOrFail(stream, label)
            for cut in stride(from: 0, to: stream.count - 2, by: stream.count > 2000 ? 3 : 1) {
                assertThrows(Array(stream[..<cut]), .truncated, "\(label) cut at \(cut) of \(stream.count)")
            }
            for cut in [stream.count - 2, stream.count - 1] {
                XCTAssertEqual(try decodeOrFail(Array(stream[..<cut]), "\(label) without EOI").samples, full.samples)
            }
        }
    }

    func testGarbageAndMutationsNeverTrap() {
        var rng = SplitMix(seed: 4)
        var encoder = TestEncoder(width: 9, height: 7, components: 3, precision: 12)
        encoder.restartInterval = 18
        encoder.predictor = 6
        let valid = encoder.encode((0..<(9 * 7 * 3)).map { _ in UInt16(truncatingIfNeeded: rng.next()) & 0x0FFF })
        let headerEnd = (valid.lastIndex(pair: 0xFF, 0xDA) ?? 0) + 14 // past SOS of 3 components
        var decoded = 0
        for round in 0..<6000 {
            var bytes: [UInt8]
            switch round % 4 {
            case 0: // pure noise, sometimes behind SOI
                bytes = (0..<Int(rng.next() % 96)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                if round % 8 == 0 { bytes = [0xFF, 0xD8] + bytes }
            case 1: // valid headers, noise for entropy-coded data
                bytes = Array(valid[..<headerEnd]) + (0..<Int(rng.next() % 400)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            default: // a valid stream with a few bytes changed, mostly in the headers
                bytes = valid
                for _ in 0...(rng.next() % 3) {
                    let limit = rng.next() % 2 == 0 ? headerEnd : bytes.count
                    bytes[Int(rng.next() % UInt64(limit))] = UInt8(truncatingIfNeeded: rng.next())
                }
            }
            if let image = try? decode(bytes) {
                decoded += 1
                XCTAssertEqual(image.samples.count, image.width * image.height * image.components)
            }
        }
        XCTAssertGreaterThan(decoded, 0, "no mutation decoded: the test no longer reaches the decoder's happy path")
    }

    func testBogusHuffmanTables() {
        let sof = Segment.sof(0xC3, precision: 8, height: 2, width: 2, components: [(1, 0x11)])
        let sos = Segment.sos([(1, 0)], predictor: 1, pointTransform: 0)
        let zeros = [UInt8](repeating: 0, count: 16)
        func stream(_ dht: [UInt8], _ data: [UInt8] = zeros) -> [UInt8] { [0xFF, 0xD8] + sof + dht + sos + data + [0xFF, 0xD9] }

        assertThrows(stream(Segment.dht(0, counts: [UInt8](repeating: 17, count: 16), symbols: [UInt8](repeating: 0, count: 272))), .invalidValue, "272 codes")
        var short = Segment.dht(0, counts: [0, 2] + [UInt8](repeating: 0, count: 14), symbols: [0, 1])
        short[3] -= 1 // segment one byte shorter than its symbols
        assertThrows(stream(Array(short.dropLast())), .invalidValue, "DHT shorter than its symbols")
        assertThrows(stream(Segment.dht(0x20, counts: [1] + zeros.dropLast(), symbols: [0])), .invalidValue, "table class 2")
        assertThrows(stream(Segment.dht(0x04, counts: [1] + zeros.dropLast(), symbols: [0])), .invalidValue, "table id 4")
        // One code, "0": all-one bits are no code at all.
        assertThrows(stream(Segment.dht(0, counts: [1] + zeros.dropLast(), symbols: [0]), [0xFF, 0x00, 0xFF, 0x00]), .invalidValue, "undefined code")
        // A category above 16 has no meaning.
        assertThrows(stream(Segment.dht(0, counts: [1] + zeros.dropLast(), symbols: [17])), .invalidValue, "category 17")
        // A scan using a table never defined.
        assertThrows([0xFF, 0xD8] + sof + Segment.dht(1, counts: [1] + zeros.dropLast(), symbols: [0]) + sos + zeros, .invalidValue, "undefined table")
        // Code lengths that overflow (three 1-bit codes): accepted as some encoders write them; the
        // third code can never match, and whatever the data, nothing traps.
        let overflowing = Segment.dht(0, counts: [3] + zeros.dropLast(), symbols: [0, 1, 2])
        XCTAssertEqual(try decodeOrFail(stream(overflowing), "overflowing table").samples, [128, 128, 128, 128])
        for byte: UInt8 in [0x55, 0xAA, 0xFE, 0x7F] { _ = try? decode(stream(overflowing, [UInt8](repeating: byte, count: 16))) }
    }

    func testMalformedAndUnsupportedHeaders() {
        let table = Segment.dht(0, counts: [1] + [UInt8](repeating: 0, count: 15), symbols: [0])
        let data = [UInt8](repeating: 0, count: 8)
        func stream(sof: [UInt8] = Segment.sof(0xC3, precision: 8, height: 2, width: 2, components: [(1, 0x11)]),
                    sos: [UInt8] = Segment.sos([(1, 0)], predictor: 1, pointTransform: 0)) -> [UInt8] {
            [0xFF, 0xD8] + sof + table + sos + data + [0xFF, 0xD9]
        }
        XCTAssertNoThrow(try decode(stream()))
        assertThrows([], .truncated, "empty")
        assertThrows([0xFF], .truncated, "one byte")
        assertThrows([0xFF, 0xD8], .truncated, "SOI only")
        assertThrows([0x00, 0x01, 0xFF, 0xD9], .invalidValue, "no SOI")
        for marker: UInt8 in [0xC0, 0xC1, 0xC2, 0xC7, 0xCB, 0xCF] {
            assertThrows(stream(sof: Segment.sof(marker, precision: 8, height: 2, width: 2, components: [(1, 0x11)])), .invalidValue, "SOF\(marker - 0xC0)")
        }
        assertThrows([0xFF, 0xD8, 0xFF, 0xDE, 0x00, 0x02] + stream().dropFirst(2), .invalidValue, "hierarchical DHP")
        for precision in [0, 1, 17, 255] {
            assertThrows(stream(sof: Segment.sof(0xC3, precision: precision, height: 2, width: 2, components: [(1, 0x11)])), .invalidValue, "precision \(precision)")
        }
        assertThrows(stream(sof: Segment.sof(0xC3, precision: 8, height: 0, width: 2, components: [(1, 0x11)])), .invalidValue, "height 0 (DNL)")
        assertThrows(stream(sof: Segment.sof(0xC3, precision: 8, height: 2, width: 0, components: [(1, 0x11)])), .invalidValue, "width 0")
        assertThrows(stream(sof: Segment.sof(0xC3, precision: 8, height: 2, width: 2, components: [])), .invalidValue, "no components")
        assertThrows(stream(sof: Segment.sof(0xC3, precision: 8, height: 2, width: 2, components: (1...5).map { ($0, 0x11) })), .invalidValue, "5 components")
        assertThrows(stream(sof: Segment.sof(0xC3, precision: 8, height: 2, width: 2, components: [(1, 0x21), (2, 0x11)])), .invalidValue, "2x1 sampling")
        assertThrows(stream(sof: Segment.sof(0xC3, precision: 8, height: 2, width: 2, components: [(1, 0x11), (1, 0x11)])), .invalidValue, "duplicate component id")
        for predictor in [0, 8] {
            assertThrows(stream(sos: Segment.sos([(1, 0)], predictor: predictor, pointTransform: 0)), .invalidValue, "predictor \(predictor)")
        }
        assertThrows(stream(sos: Segment.sos([(1, 0)], predictor: 1, pointTransform: 8)), .invalidValue, "Pt = P")
        assertThrows(stream(sos: Segment.sos([(9, 0)], predictor: 1, pointTransform: 0)), .invalidValue, "unknown component in scan")
        let sof = Segment.sof(0xC3, precision: 8, height: 2, width: 2, components: [(1, 0x11)])
        let sos = Segment.sos([(1, 0)], predictor: 1, pointTransform: 0)
        assertThrows([0xFF, 0xD8] + table + sos + data + [0xFF, 0xD9], .invalidValue, "scan before frame")
        assertThrows([0xFF, 0xD8] + sof + sof + table + sos + data + [0xFF, 0xD9], .invalidValue, "two frames")
        assertThrows([0xFF, 0xD8] + sof + table + sos + data + sos + data + [0xFF, 0xD9], .invalidValue, "component coded twice")
        assertThrows([0xFF, 0xD8] + sof + table + [0xFF, 0xD9], .invalidValue, "EOI before any scan")
        assertThrows([0xFF, 0xD8, 0xFF, 0xD8] + sof, .invalidValue, "second SOI")
        assertThrows([0xFF, 0xD8, 0xFF, 0xFE, 0x00, 0x01] + sof, .invalidValue, "segment length 1")
        assertThrows([0xFF, 0xD8, 0xFF, 0xFE, 0x40, 0x00, 0x41], .truncated, "segment past the end")
    }

    func testHugeFramesAreRefusedBeforeAllocating() {
        let table = Segment.dht(0, counts: [1] + [UInt8](repeating: 0, count: 15), symbols: [0])
        func stream(_ width: Int, _ height: Int, _ components: Int) -> [UInt8] {
            let sof = Segment.sof(0xC3, precision: 16, height: height, width: width, components: (1...components).map { ($0, 0x11) })
            return [0xFF, 0xD8] + sof + table + Segment.sos((1...components).map { ($0, 0) }, predictor: 1, pointTransform: 0) + [0, 0, 0, 0, 0xFF, 0xD9]
        }
        assertThrows(stream(65535, 65535, 4), .invalidValue, "65535x65535x4")
        assertThrows(stream(65535, 65535, 1), .invalidValue, "65535x65535")
        // Exactly at the cap: allowed in principle, but 4 bytes cannot code 2^28 differences.
        assertThrows(stream(16384, 16384, 1), .truncated, "16384x16384 from a few bytes")
    }

    // MARK: - Helpers

    static let losslessSyntaxes: Set = ["1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"]

    struct Failure: Error, CustomStringConvertible { let description: String }

    func decode(_ bytes: [UInt8]) throws(DICOMError) -> Image {
        try bytes.withUnsafeBufferPointer { (p) throws(DICOMError) in try JPEGLosslessDecoder.decode(UnsafeRawBufferPointer(p)) }
    }

    func decodeOrFail(_ bytes: [UInt8], _ label: String) throws -> Image {
        do { return try decode(bytes) } catch { throw Failure(description: "\(label): \(error)") }
    }

    func assertThrows(_ bytes: [UInt8], _ kind: DICOMError.Kind, _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        do {
            let image = try decode(bytes)
            XCTFail("\(label): decoded \(image.width)x\(image.height) instead of throwing \(kind)", file: file, line: line)
        } catch {
            XCTAssertEqual(error.kind, kind, "\(label): \(error)", file: file, line: line)
        }
    }

    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-jpegll-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// The frames of encapsulated Pixel Data: a frame starts at a fragment that starts with SOI
    /// (entropy-coded data never holds FFD8, so a split frame's later fragments cannot).
    func frames(of file: DICOMFile) throws -> [[UInt8]] {
        guard case .fragments(let pixels)? = file.dataSet[.pixelData]?.value else { throw Failure(description: "no encapsulated Pixel Data") }
        var frames: [[UInt8]] = []
        for range in pixels.fragments {
            guard range.lowerBound >= 0, range.upperBound <= pixels.storage.count else { throw Failure(description: "fragment out of bounds") }
            let fragment = Array(pixels.storage.bytes[range])
            if frames.isEmpty || fragment.starts(with: [0xFF, 0xD8]) { frames.append(fragment) } else { frames[frames.count - 1] += fragment }
        }
        return frames
    }

    /// Decodes every frame of `path` and compares it with the native Pixel Data dcmdjpeg makes of it.
    func compareWithDCMTK(_ path: String, label: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws {
        let label = label ?? URL(fileURLWithPath: path).lastPathComponent
        let encodedFrames = try frames(of: DICOMFile.read(path: path))
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let decodedPath = dir.appendingPathComponent("decoded.dcm").path
        // +cn: no colour conversion; +px: colour by pixel, as our samples are.
        try Corpus.run(Corpus.tool("dcmdjpeg"), ["+cn", "+px", path, decodedPath])
        let reference = try DICOMFile.read(path: decodedPath).dataSet
        let number = { (tag: Tag) in Int(reference.integer(tag) ?? 0) }
        let (rows, columns, samplesPerPixel, bitsAllocated) = (number(.rows), number(.columns), number(.samplesPerPixel), number(.bitsAllocated))
        let frameCount = Int(reference.integer(.numberOfFrames) ?? 1)
        XCTAssertEqual(encodedFrames.count, frameCount, "\(label): frames", file: file, line: line)
        guard let native = reference[.pixelData]?.valueBytes, bitsAllocated == 8 || bitsAllocated == 16 else {
            throw Failure(description: "\(label): dcmdjpeg's output has no 8- or 16-bit native Pixel Data")
        }
        let bytesPerSample = bitsAllocated / 8, samplesPerFrame = rows * columns * samplesPerPixel
        XCTAssertGreaterThanOrEqual(native.count, samplesPerFrame * bytesPerSample * encodedFrames.count, "\(label): native length", file: file, line: line)
        for (index, frame) in encodedFrames.enumerated() {
            let image = try decodeOrFail(frame, "\(label) frame \(index)")
            XCTAssertEqual([image.width, image.height, image.components], [columns, rows, samplesPerPixel], "\(label) frame \(index)", file: file, line: line)
            XCTAssertLessThanOrEqual(image.precision, bitsAllocated, label, file: file, line: line)
            guard image.samples.count == samplesPerFrame, native.count >= (index + 1) * samplesPerFrame * bytesPerSample else { continue }
            let mask = (1 << image.precision) - 1
            let base = index * samplesPerFrame * bytesPerSample
            var mismatches = 0, first = ""
            for (i, sample) in image.samples.enumerated() {
                let p = base + i * bytesPerSample
                let expected = (bytesPerSample == 1 ? Int(native[p]) : Int(native[p]) | Int(native[p + 1]) << 8) & mask
                if Int(sample) != expected {
                    if mismatches == 0 { first = "sample \(i): \(sample), dcmdjpeg \(expected)" }
                    mismatches += 1
                }
            }
            XCTAssertEqual(mismatches, 0, "\(label) frame \(index): first mismatch at \(first)", file: file, line: line)
        }
    }
}

// MARK: - A test encoder

/// JPEG lossless segments, built by hand.
private enum Segment {
    static func sof(_ marker: UInt8, precision: Int, height: Int, width: Int, components: [(Int, UInt8)]) -> [UInt8] {
        var body = [UInt8(truncatingIfNeeded: precision)] + be16(height) + be16(width) + [UInt8(components.count)]
        for (id, sampling) in components { body += [UInt8(id), sampling, 0] }
        return segment(marker, body)
    }

    static func dht(_ classAndID: UInt8, counts: [UInt8], symbols: [UInt8]) -> [UInt8] {
        segment(0xC4, [classAndID] + counts + symbols)
    }

    static func sos(_ components: [(id: Int, table: Int)], predictor: Int, pointTransform: Int) -> [UInt8] {
        var body = [UInt8(components.count)]
        for c in components { body += [UInt8(c.id), UInt8(c.table << 4)] }
        return segment(0xDA, body + [UInt8(predictor), 0, UInt8(pointTransform)])
    }

    static func segment(_ marker: UInt8, _ body: [UInt8]) -> [UInt8] { [0xFF, marker] + be16(body.count + 2) + body }
    static func be16(_ v: Int) -> [UInt8] { [UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v)] }
}

/// A plain JPEG lossless encoder (T.81 H.1), written for clarity: predictions from a 2-D lookup of
/// the shifted samples, differences modulo 2^16, two Huffman tables whose codes run to 16 bits.
private struct TestEncoder {
    var width: Int, height: Int, components: Int, precision: Int
    var predictor = 1
    var pointTransform = 0
    /// In MCUs (pixels); a whole number of rows.
    var restartInterval = 0
    /// What DRI says, when it should differ from the interval actually coded.
    var declaredRestartInterval: Int? = nil
    var interleaved = true
    var writeEOI = true

    /// Code lengths 2...15 for one symbol each, then three of 16 bits: categories past 7 take the
    /// decoder's slow path. Table 0 lists categories 0...16, table 1 the reverse.
    static let counts: [UInt8] = [0] + [UInt8](repeating: 1, count: 14) + [3]
    static let tableSymbols: [[UInt8]] = [Array(0...16), Array((0...16).reversed())]

    func encode(_ samples: [UInt16]) -> [UInt8] {
        var out: [UInt8] = [0xFF, 0xD8]
        out += Segment.segment(0xE0, Array("JFIF\0".utf8)) + Segment.segment(0xFE, Array("test".utf8))
        for (id, symbols) in Self.tableSymbols.enumerated() { out += Segment.dht(UInt8(id), counts: Self.counts, symbols: symbols) }
        out += Segment.sof(0xC3, precision: precision, height: height, width: width, components: (0..<components).map { ($0 + 1, 0x11) })
        if let interval = declaredRestartInterval ?? (restartInterval > 0 ? restartInterval : nil) {
            out += Segment.segment(0xDD, Segment.be16(interval))
        }
        let scans = interleaved ? [Array(0..<components)] : (0..<components).map { [$0] }
        for scan in scans {
            out += Segment.sos(scan.map { ($0 + 1, $0 % 2) }, predictor: predictor, pointTransform: pointTransform)
            out += entropyCoded(scan, samples)
        }
        if writeEOI { out += [0xFF, 0xD9] }
        return out
    }

    private func entropyCoded(_ scan: [Int], _ samples: [UInt16]) -> [UInt8] {
        let codes = Self.tableSymbols.map(canonicalCodes)
        func value(_ x: Int, _ y: Int, _ c: Int) -> Int { Int(samples[(y * width + x) * components + c]) >> pointTransform }
        let rowsPerInterval = restartInterval > 0 ? restartInterval / width : 0
        var writer = BitWriter()
        for y in 0..<height {
            let startsInterval = y == 0 || (rowsPerInterval > 0 && y % rowsPerInterval == 0)
            if y > 0 && startsInterval {
                writer.flush()
                writer.bytes += [0xFF, UInt8(0xD0 + (y / rowsPerInterval - 1) % 8)]
            }
            for x in 0..<width {
                for c in scan {
                    let prediction: Int
                    if startsInterval {
                        prediction = x == 0 ? 1 << (precision - pointTransform - 1) : value(x - 1, y, c)
                    } else if x == 0 {
                        prediction = value(x, y - 1, c)
                    } else {
                        let a = value(x - 1, y, c), b = value(x, y - 1, c), d = value(x - 1, y - 1, c)
                        switch predictor {
                        case 1: prediction = a
                        case 2: prediction = b
                        case 3: prediction = d
                        case 4: prediction = a + b - d
                        case 5: prediction = a + (b - d) / 2 - ((b - d) < 0 && (b - d) % 2 != 0 ? 1 : 0)
                        case 6: prediction = b + (a - d) / 2 - ((a - d) < 0 && (a - d) % 2 != 0 ? 1 : 0)
                        default: prediction = (a + b) / 2
                        }
                    }
                    var difference = (value(x, y, c) - prediction) & 0xFFFF
                    if difference > 32768 { difference -= 65536 }
                    let category = difference == 0 ? 0 : Int.bitWidth - difference.magnitude.leadingZeroBitCount
                    let (code, length) = codes[c % 2][category]
                    writer.write(code, length)
                    if (1...15).contains(category) {
                        writer.write(difference > 0 ? difference : difference + (1 << category) - 1, category)
                    }
                }
            }
        }
        writer.flush()
        return writer.bytes
    }

    /// (code, length) per category, assigned as T.81 Annex C does.
    private func canonicalCodes(_ symbols: [UInt8]) -> [(Int, Int)] {
        var result = [(Int, Int)](repeating: (0, 0), count: 17)
        var code = 0, index = 0
        for length in 1...16 {
            for _ in 0..<Int(Self.counts[length - 1]) {
                result[Int(symbols[index])] = (code, length)
                code += 1
                index += 1
            }
            code <<= 1
        }
        return result
    }
}

private struct BitWriter {
    var bytes: [UInt8] = []
    private var pending = 0, used = 0

    mutating func write(_ value: Int, _ length: Int) {
        for bit in stride(from: length - 1, through: 0, by: -1) {
            pending = pending << 1 | (value >> bit) & 1
            used += 1
            if used == 8 {
                bytes.append(UInt8(pending))
                if pending == 0xFF { bytes.append(0) } // byte stuffing
                pending = 0
                used = 0
            }
        }
    }

    /// Pads the last byte with 1 bits (T.81 F.1.2.3).
    mutating func flush() {
        while used != 0 { write(1, 1) }
    }
}


private extension Array where Element == UInt8 {
    func firstIndex(pair a: UInt8, _ b: UInt8) -> Int? {
        indices.dropLast().first { self[$0] == a && self[$0 + 1] == b }
    }
    func lastIndex(pair a: UInt8, _ b: UInt8) -> Int? {
        indices.dropLast().last { self[$0] == a && self[$0 + 1] == b }
    }
    func contains(pair a: UInt8, _ b: UInt8) -> Bool { firstIndex(pair: a, b) != nil }
}
