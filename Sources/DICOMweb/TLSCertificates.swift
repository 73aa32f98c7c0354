import Foundation
import Hummingbird
import HummingbirdCore
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL

/// The server's certificate chain and private key (PEM files), replaceable while it runs:
/// `reload()` (on SIGHUP) reads the files again, and each connection accepted after it presents
/// the new pair, while connections already open keep the one they shook hands with.
///
/// HummingbirdTLS builds one `NIOSSLContext` when the server is made, so the files are not read
/// per connection; instead its configuration's `sslContextCallback` (swift-nio-ssl, called once
/// per ClientHello) hands each handshake the pair current at that moment. Nothing is closed or
/// rebound to reload, so no connection is dropped and none refused.
public final class TLSCertificates: @unchecked Sendable {
    public let certificatePath: String
    public let keyPath: String
    private let lock = NIOLock()
    private var pair: Pair

    struct Pair {
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
    }

    /// What went wrong with the files, in words (swift-nio-ssl's errors name neither file nor cause).
    public struct LoadError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Reads and checks both files; throws `LoadError` when either is unreadable, is not PEM, or
    /// the key is not the certificate's.
    public init(certificate: String, key: String) throws {
        certificatePath = certificate
        keyPath = key
        pair = try Self.load(certificate: certificate, key: key)
    }

    /// Reads the files again; the new pair serves new connections. On error the previous pair stays.
    @discardableResult
    public func reload() throws -> String {
        let fresh = try Self.load(certificate: certificatePath, key: keyPath)
        lock.withLock { pair = fresh }
        return Self.describe(fresh.chain[0])
    }

    /// The leaf certificate being served: its subject's common name and serial number, for the log.
    public var leafDescription: String { Self.describe(lock.withLock { pair }.chain[0]) }

    static func describe(_ leaf: NIOSSLCertificate) -> String {
        "serial " + leaf.serialNumber.map { String(format: "%02X", $0) }.joined() + ", expires "
            + ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(leaf.notValidAfter)))
    }

    static func load(certificate: String, key: String) throws -> Pair {
        for (path, what) in [(certificate, "certificate"), (key, "key")] where !FileManager.default.isReadableFile(atPath: path) {
            throw LoadError(description: "cannot read the TLS \(what) file \(path)")
        }
        guard let chain = try? NIOSSLCertificate.fromPEMFile(certificate), !chain.isEmpty else {
            throw LoadError(description: "\(certificate) holds no PEM certificate")
        }
        guard let privateKey = try? NIOSSLPrivateKey(file: key, format: .pem) else {
            throw LoadError(description: "\(key) holds no PEM private key (unencrypted PKCS#8, RSA or EC)")
        }
        let pair = Pair(chain: chain, key: privateKey)
        // BoringSSL refuses a key that is not the leaf certificate's when a context is made from
        // the pair: checked here rather than failing every handshake afterwards.
        do { _ = try NIOSSLContext(configuration: Self.configuration(pair)) } catch {
            throw LoadError(description: "the private key in \(key) does not match the certificate in \(certificate) (\(error))")
        }
        return pair
    }

    /// TLS 1.2 and 1.3 only (swift-nio-ssl would accept 1.0 by default), the library's default cipher suites.
    static func configuration(_ pair: Pair) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: pair.chain.map { .certificate($0) },
                                                                     privateKey: .privateKey(pair.key))
        configuration.minimumTLSVersion = .tlsv12
        return configuration
    }

    /// The server's configuration: the pair at start, and per handshake whatever pair is current.
    var tlsConfiguration: TLSConfiguration {
        var configuration = Self.configuration(lock.withLock { pair })
        configuration.sslContextCallback = { [self] _, promise in
            let current = lock.withLock { pair }
            var override = NIOSSLContextConfigurationOverride()
            override.certificateChain = current.chain.map { .certificate($0) }
            override.privateKey = .privateKey(current.key)
            promise.succeed(override)
        }
        return configuration
    }

    /// The TLS context of the server, ALPN offering HTTP/2 then HTTP/1.1 (RFC 9113 §3.2). Made
    /// once, when the server is built, from a pair `load` already made one from: it cannot fail
    /// here, and crashing beats falling back to plain HTTP.
    var alpnContext: NIOSSLContext {
        var configuration = tlsConfiguration
        configuration.applicationProtocols = ["h2", "http/1.1"]
        return try! NIOSSLContext(configuration: configuration)
    }
}
