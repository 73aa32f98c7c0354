import DICOMCore
import DICOMParser
#if canImport(Glibc)
import Glibc
#endif

/// What an import does with a file found on media, decided before it is copied into the store.
enum FileSniff: Equatable {
    case instance
    /// A Media Storage Directory (PS3.10 §8.6): an index of the media, not an instance.
    case dicomdir
    /// README, autorun.inf, pictures: skipped, not failures.
    case notDICOM

    /// Media Storage Directory Storage, the Media Storage SOP Class of a DICOMDIR (PS3.4 Annex F.3,
    /// PS3.6 Annex A): detected by the meta group, since media may name the file anything.
    static let mediaStorageDirectoryClass = "1.2.840.10008.1.3.10"

    static func classify(path: String) -> FileSniff {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        // Unreadable files go on to staging, which reports why.
        guard fd >= 0 else { return .instance }
        defer { close(fd) }
        var head = [UInt8](repeating: 0, count: 16 << 10)
        let n = head.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return n == 0 ? .notDICOM : .instance }
        head.removeSubrange(n...)
        // Part 10 (PS3.10 §7.1): a preamble, `DICM`, then the meta group.
        if n >= 132 && Array(head[128..<132]) == Array("DICM".utf8) {
            return metaSOPClass(head) == mediaStorageDirectoryClass ? .dicomdir : .instance
        }
        // Without the prefix it may still be a bare data set; the parser's verdict decides.
        var options = ReadOptions.default
        options.stopBeforePixelData = true
        do throws(DICOMError) {
            _ = try DICOMFile.read(path: path, options: options)
            return .instance
        } catch {
            return error.kind == .notDICOM ? .notDICOM : .instance
        }
    }

    /// (0002,0002) from the meta group (always Explicit VR Little Endian, PS3.10 §7.1), read from
    /// the first bytes only: no parse of the data set.
    static func metaSOPClass(_ bytes: [UInt8]) -> String? {
        let longForm: Set<String> = ["OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"]
        func u16(_ i: Int) -> Int { Int(bytes[i]) | Int(bytes[i + 1]) << 8 }
        var i = 132
        while i + 8 <= bytes.count, u16(i) == 0x0002 {
            let element = u16(i + 2)
            let vr = String(decoding: bytes[(i + 4)..<(i + 6)], as: UTF8.self)
            var length: Int, start: Int
            if longForm.contains(vr) {
                guard i + 12 <= bytes.count else { return nil }
                length = u16(i + 8) | u16(i + 10) << 16
                start = i + 12
            } else {
                length = u16(i + 6)
                start = i + 8
            }
            guard start + length <= bytes.count else { return nil }
            if element == 0x0002 {
                return String(decoding: bytes[start..<(start + length)], as: UTF8.self)
                    .trimmingCharacters(in: [" ", "\0"])
            }
            i = start + length
        }
        return nil
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: Set<Character>) -> String {
        var s = Substring(self)
        while let c = s.last, set.contains(c) { s.removeLast() }
        while let c = s.first, set.contains(c) { s.removeFirst() }
        return String(s)
    }
}
