import Foundation

/// A streaming reader of multipart bodies (RFC 2046 §5.1.1) that hands each part's bytes over in
/// the largest runs it can, straight out of the buffers it is fed.
///
/// Why not MultipartKit's parser: it walks the body byte by byte and, at every CR it cannot yet
/// rule out as the start of a boundary, allocates a buffer for the bytes seen so far; a 16-bit
/// CT frame has a CR every few hundred bytes, and the parser was a fifth of the server's CPU under
/// STOW load. Here the delimiter is found with `memmem`, and only a possible partial delimiter at
/// the end of a buffer (fewer bytes than the delimiter) is kept between calls: memory stays
/// bounded by the header cap whatever the body's size.
package struct MultipartReader {
    package enum Event {
        /// A part starts; its header fields, names as sent.
        case headers([(name: String, value: String)])
        /// Some of the current part's bytes, valid only during the call.
        case body(UnsafeRawBufferPointer)
        /// The current part is complete: the delimiter after it was read.
        case partEnd
    }

    package struct Error: Swift.Error, CustomStringConvertible {
        package let description: String
    }

    /// Header fields of one part may not exceed this many bytes.
    package static let maximumHeaderSize = 16 * 1024

    private enum State {
        /// Before the first delimiter; what is read is dropped.
        case preamble
        /// Just after a delimiter: `--` closes the body, else transport padding and CRLF.
        case afterDelimiter
        case headers
        case body
        case epilogue
    }

    /// CRLF "--" boundary. The first delimiter may come without its CRLF: the reader starts with
    /// a CRLF in `carry`, as if one had been read.
    private let delimiter: [UInt8]
    private var state = State.preamble
    /// Bytes of a possible delimiter at the end of the last buffer (body and preamble), or of
    /// unfinished header lines and delimiter suffixes: never more than the header cap.
    private var carry: [UInt8] = [0x0D, 0x0A]

    package init(boundary: String) {
        delimiter = Array("\r\n--\(boundary)".utf8)
    }

    /// True between a part's delimiter and the next one: a body that ends here cut a part short.
    package var isInsidePart: Bool {
        switch state {
        case .headers, .body: return true
        case .preamble, .afterDelimiter, .epilogue: return false
        }
    }

    /// Reads the next buffer of the body, reporting what it completes through `handle`.
    package mutating func read(_ buffer: UnsafeRawBufferPointer, _ handle: (Event) throws -> Void) throws {
        var input = buffer
        while !input.isEmpty {
            switch state {
            case .epilogue:
                return
            case .preamble, .body:
                input = try scanForDelimiter(input, handle)
            case .afterDelimiter:
                input = try readAfterDelimiter(input)
            case .headers:
                input = try readHeaders(input, handle)
            }
        }
    }

    /// Body (or preamble) bytes up to the next delimiter. Returns the input left after it, empty
    /// when the delimiter is not in this buffer.
    private mutating func scanForDelimiter(_ input: UnsafeRawBufferPointer, _ handle: (Event) throws -> Void) throws -> UnsafeRawBufferPointer {
        let emits: Bool
        if case .body = state { emits = true } else { emits = false }
        if !carry.isEmpty {
            // A delimiter that starts in `carry` ends within the next `delimiter.count` bytes, so
            // this small window settles whether it does.
            let window = carry + input.prefix(delimiter.count)
            let found = window.withUnsafeBytes { ByteSearch.find(delimiter, in: $0) }
            if let p = found {
                if emits && p > 0 { try window.withUnsafeBytes { try handle(.body(UnsafeRawBufferPointer(rebasing: $0[..<p]))) } }
                let consumed = p + delimiter.count - carry.count
                carry = []
                state = .afterDelimiter
                if emits { try handle(.partEnd) }
                return UnsafeRawBufferPointer(rebasing: input[consumed...])
            }
            if input.count < delimiter.count {
                // Not enough new bytes to decide: keep what may still begin a delimiter.
                let keep = Self.partialMatchLength(delimiter, atEndOf: window)
                if emits && window.count > keep {
                    try window.withUnsafeBytes { try handle(.body(UnsafeRawBufferPointer(rebasing: $0[..<(window.count - keep)]))) }
                }
                carry = Array(window.suffix(keep))
                return UnsafeRawBufferPointer(start: nil, count: 0)
            }
            if emits { try carry.withUnsafeBytes { try handle(.body($0)) } }
            carry = []
        }
        if let p = ByteSearch.find(delimiter, in: input) {
            if emits && p > 0 { try handle(.body(UnsafeRawBufferPointer(rebasing: input[..<p]))) }
            state = .afterDelimiter
            if emits { try handle(.partEnd) }
            return UnsafeRawBufferPointer(rebasing: input[(p + delimiter.count)...])
        }
        let keep = Self.partialMatchLength(delimiter, atEndOf: input)
        if emits && input.count > keep { try handle(.body(UnsafeRawBufferPointer(rebasing: input[..<(input.count - keep)]))) }
        carry = Array(input.suffix(keep))
        return UnsafeRawBufferPointer(start: nil, count: 0)
    }

    /// Moves input bytes into `carry` one at a time until `isComplete(carry)`; returns the input
    /// after that byte, or nil when the input ran out first. `carry` may not grow past `limit`.
    private mutating func collect(_ input: UnsafeRawBufferPointer, limit: Int, tooLong: @autoclosure () -> String,
                                  until isComplete: ([UInt8]) -> Bool) throws -> UnsafeRawBufferPointer? {
        for i in input.indices {
            carry.append(input[i])
            if isComplete(carry) { return UnsafeRawBufferPointer(rebasing: input[(i + 1)...]) }
            guard carry.count <= limit else { throw Error(description: tooLong()) }
        }
        return nil
    }

    /// `--` (the close delimiter) or transport padding then CRLF (a new part).
    private mutating func readAfterDelimiter(_ input: UnsafeRawBufferPointer) throws -> UnsafeRawBufferPointer {
        let closes: ([UInt8]) -> Bool = { $0.count >= 2 && $0[0] == UInt8(ascii: "-") && $0[1] == UInt8(ascii: "-") }
        guard let rest = try collect(input, limit: 1024, tooLong: "a boundary delimiter is followed by too much padding",
                                     until: { closes($0) || $0.last == 0x0A }) else {
            return UnsafeRawBufferPointer(start: nil, count: 0)
        }
        defer { carry = [] }
        if closes(carry) {
            state = .epilogue
            return UnsafeRawBufferPointer(start: nil, count: 0)
        }
        // Transport padding (spaces, tabs) then CRLF.
        guard carry.count >= 2, carry[carry.count - 2] == 0x0D, carry.dropLast(2).allSatisfy({ $0 == 0x20 || $0 == 0x09 }) else {
            throw Error(description: "a boundary delimiter is followed by neither -- nor CRLF")
        }
        state = .headers
        return rest
    }

    /// Header lines up to the empty line.
    private mutating func readHeaders(_ input: UnsafeRawBufferPointer, _ handle: (Event) throws -> Void) throws -> UnsafeRawBufferPointer {
        // An empty first line (no fields) or CRLF CRLF ends the header block.
        let ended: ([UInt8]) -> Bool = { c in
            let n = c.count
            return (n == 2 && c[0] == 0x0D && c[1] == 0x0A)
                || (n >= 4 && c[n - 4] == 0x0D && c[n - 3] == 0x0A && c[n - 2] == 0x0D && c[n - 1] == 0x0A)
        }
        guard let rest = try collect(input, limit: Self.maximumHeaderSize,
                                     tooLong: "a part's header fields exceed \(Self.maximumHeaderSize) bytes", until: ended) else {
            return UnsafeRawBufferPointer(start: nil, count: 0)
        }
        let fields = try Self.fields(carry)
        carry = []
        state = .body
        try handle(.headers(fields))
        return rest
    }

    /// `Name: value` lines (RFC 5322 §2.2; a line starting with white space continues the last).
    private static func fields(_ block: [UInt8]) throws -> [(name: String, value: String)] {
        var fields: [(name: String, value: String)] = []
        var lines = String(decoding: block, as: UTF8.self).components(separatedBy: "\r\n")
        while lines.last == "" { lines.removeLast() }
        for line in lines {
            if let first = line.first, first == " " || first == "\t", !fields.isEmpty {
                fields[fields.count - 1].value += " " + line.trimmingCharacters(in: .whitespaces)
                continue
            }
            guard let colon = line.firstIndex(of: ":"), colon != line.startIndex else {
                throw Error(description: "a part has a malformed header line")
            }
            fields.append((String(line[..<colon]).trimmingCharacters(in: .whitespaces),
                           String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)))
        }
        return fields
    }

    /// The length of the longest suffix of `bytes` that is a proper prefix of `needle`.
    static func partialMatchLength(_ needle: [UInt8], atEndOf bytes: some Collection<UInt8>) -> Int {
        let tail = Array(bytes.suffix(needle.count - 1))
        var length = tail.count
        while length > 0 {
            // Every candidate starts with the delimiter's CR, which rules out most at once.
            if tail[tail.count - length] == needle[0], tail[(tail.count - length)...].elementsEqual(needle[..<length]) { return length }
            length -= 1
        }
        return 0
    }
}
