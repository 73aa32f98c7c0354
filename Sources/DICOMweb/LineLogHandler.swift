import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The server's log handler: the same lines as swift-log's `StreamLogHandler.standardError`
/// (`TIMESTAMP LEVEL LABEL: key=value … [SOURCE] MESSAGE`, metadata sorted by key, the local time
/// with its offset), so whatever reads the log reads it as before. Written for the request line,
/// one per request: StreamLogHandler merged and sorted the metadata into a new dictionary and a
/// string per field, and formatted the time with `localtime`/`strftime` every line, 4.4 % of a
/// stored frame's CPU (perf, Docs/performance.md). Here the fields go straight into one byte buffer,
/// the time text is made once a second, and the line is one `write(2)`, as StreamLogHandler's
/// unbuffered stderr made it.
public struct LineLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadataProvider: Logger.MetadataProvider?
    public var metadata = Logger.Metadata()
    private let label: String
    private let output: @Sendable (UnsafeRawBufferPointer) -> Void

    /// Lines to standard error.
    public static func standardError(label: String) -> LineLogHandler {
        LineLogHandler(label: label, metadataProvider: LoggingSystem.metadataProvider, output: writeStandardError)
    }

    /// Lines to `output`, one call per line (tests).
    public init(label: String, metadataProvider: Logger.MetadataProvider? = nil, output: @escaping @Sendable (UnsafeRawBufferPointer) -> Void) {
        self.label = label
        self.metadataProvider = metadataProvider
        self.output = output
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Writes the line `log(event:)` would for `fields`, which are sorted by key with each key once,
    /// when this handler adds no fields of its own (no metadata, no provider), and says so; false,
    /// and nothing written, otherwise. For the stored-frame fast path's request line, whose fields
    /// it knows: building and sorting a `Logger.Metadata` for it cost more than the line.
    func logSorted(level: Logger.Level, message: String, source: String, fields: [(String, String)]) -> Bool {
        guard metadata.isEmpty, metadataProvider == nil else { return false }
        var line = head(level)
        for (key, value) in fields { append(key, value.utf8, to: &line) }
        finish(&line, source: source, message: message)
        return true
    }

    private func head(_ level: Logger.Level) -> [UInt8] {
        var line: [UInt8] = []
        line.reserveCapacity(320)
        Self.clock.append(to: &line)
        line.append(0x20)
        line.append(contentsOf: level.rawValue.utf8)
        if !label.isEmpty { line.append(0x20) }
        line.append(contentsOf: label.utf8)
        line.append(UInt8(ascii: ":"))
        return line
    }

    private func append(_ key: String, _ value: some Collection<UInt8>, to line: inout [UInt8]) {
        line.append(0x20)
        line.append(contentsOf: key.utf8)
        line.append(UInt8(ascii: "="))
        line.append(contentsOf: value)
    }

    private func finish(_ line: inout [UInt8], source: String, message: String) {
        line.append(contentsOf: " [".utf8)
        line.append(contentsOf: source.utf8)
        line.append(contentsOf: "] ".utf8)
        line.append(contentsOf: message.utf8)
        line.append(0x0A)
        line.withUnsafeBytes(output)
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let provided = metadataProvider?.get(), !provided.isEmpty { fields.merge(provided) { _, new in new } }
        if let explicit = event.metadata, !explicit.isEmpty { fields.merge(explicit) { _, new in new } }
        if let error = event.error {
            fields["error.message"] = "\(error)"
            fields["error.type"] = "\(String(reflecting: type(of: error)))"
        }
        var line = head(event.level)
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) {
            switch value {
            case .string(let s): append(key, s.utf8, to: &line)
            default: append(key, "\(value)".utf8, to: &line)
            }
        }
        finish(&line, source: event.source, message: event.message.description)
    }

    /// Lines from several threads go out whole, as StreamLogHandler's `flockfile` kept them (a
    /// pipe takes a write of more than 4 KiB in pieces).
    private static let writing = Mutex(())

    @Sendable static func writeStandardError(_ bytes: UnsafeRawBufferPointer) {
        writing.withLock { _ in writeFully(bytes) }
    }

    private static func writeFully(_ bytes: UnsafeRawBufferPointer) {
        var done = 0
        while done < bytes.count {
            let n = write(STDERR_FILENO, bytes.baseAddress! + done, bytes.count - done)
            if n > 0 { done += n } else if n < 0 && errno == EINTR { continue } else { return }
        }
    }

    /// `%Y-%m-%dT%H:%M:%S%z` in local time, as StreamLogHandler writes it, made again when the second changes.
    static let clock = SecondClock()

    final class SecondClock: Sendable {
        private let cached = Mutex<(second: Int, text: [UInt8])>((Int.min, []))

        // localtime_r, unlike localtime, need not read TZ itself.
        init() { tzset() }

        func append(to line: inout [UInt8]) {
            var now = time(nil)
            let text = cached.withLock { cached -> [UInt8] in
                if cached.second == Int(now) { return cached.text }
                var local = tm()
                var buffer = [Int8](repeating: 0, count: 64)
                guard localtime_r(&now, &local) != nil,
                      strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &local) > 0 else { return Array("<unknown>".utf8) }
                let text = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
                cached = (Int(now), text)
                return text
            }
            line.append(contentsOf: text)
        }
    }
}
