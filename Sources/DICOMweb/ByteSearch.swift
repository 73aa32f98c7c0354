/// Substring search over raw bytes, for the places that scan large bodies: multipart delimiters in
/// STOW-RS uploads, bulk-data placeholders in metadata responses.
enum ByteSearch {
    /// Offset of the first `needle` in `haystack` (glibc's `memmem`), nil when absent or empty.
    static func find(_ needle: [UInt8], in haystack: UnsafeRawBufferPointer) -> Int? {
        guard let base = haystack.baseAddress, !needle.isEmpty, haystack.count >= needle.count else { return nil }
        return needle.withUnsafeBytes { n -> Int? in
            guard let needleBase = n.baseAddress, let found = libcMemmem(base, haystack.count, needleBase, n.count) else { return nil }
            return base.distance(to: UnsafeRawPointer(found))
        }
    }
}

/// glibc declares memmem only under _GNU_SOURCE, which Swift's Glibc module does not set.
@_silgen_name("memmem")
private func libcMemmem(_ haystack: UnsafeRawPointer, _ haystackLength: Int, _ needle: UnsafeRawPointer, _ needleLength: Int) -> UnsafeMutableRawPointer?
