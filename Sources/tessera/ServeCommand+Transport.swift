import ArgumentParser
import DICOMweb
import Dispatch
import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// TLS, the public URL and CORS origins of `serve`, checked before anything else starts so that
/// a bad value ends the command with one line on stderr.
struct TransportSettings {
    var tls: TLSCertificates?
    var publicURL: PublicURL?
    var corsOrigins: [String]?
    var http2Cleartext = false

    func apply(to configuration: inout DICOMwebConfiguration) {
        configuration.http2Cleartext = http2Cleartext
        configuration.tls = tls
        configuration.publicURL = publicURL
        configuration.corsOrigins = corsOrigins
    }
}

extension ServeCommand {
    func transportConfiguration() throws -> TransportSettings {
        var settings = TransportSettings(http2Cleartext: http2Cleartext)
        switch (tlsCert, tlsKey) {
        case (nil, nil): break
        case let (cert?, key?):
            do { settings.tls = try TLSCertificates(certificate: cert, key: key) } catch {
                throw Diagnostics.fail("cannot serve TLS: \(error)")
            }
        default: throw Diagnostics.fail("--tls-cert and --tls-key go together")
        }
        if let publicURL {
            guard let url = PublicURL(publicURL) else {
                throw Diagnostics.fail("--public-url \(publicURL) is not http(s)://host[:port][/prefix] (no query, no user)")
            }
            settings.publicURL = url
        }
        if corsOrigins == ["none"] {
            settings.corsOrigins = []
        } else if !corsOrigins.isEmpty {
            settings.corsOrigins = try corsOrigins.map { text in
                guard let origin = DICOMwebConfiguration.corsOrigin(text) else {
                    throw Diagnostics.fail("--cors-origin \(text) is not an origin: scheme://host[:port] without a path, * for any, or none alone")
                }
                return origin
            }
        }
        return settings
    }

    /// SIGHUP rereads the certificate and key; a pair that does not load is logged and the old
    /// one kept. The returned source must stay alive while the server runs.
    static func reloadOnHangUp(_ tls: TLSCertificates, logger: Logger) -> any DispatchSourceSignal {
        logger.info("TLS", metadata: ["certificate": "\(tls.certificatePath)", "leaf": "\(tls.leafDescription)"])
        // Ignored as a signal (its default ends the process); the source still sees it.
        signal(SIGHUP, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: DispatchQueue(label: "tessera.tls-reload"))
        source.setEventHandler {
            do {
                let leaf = try tls.reload()
                logger.info("TLS certificate reloaded", metadata: ["certificate": "\(tls.certificatePath)", "leaf": "\(leaf)"])
            } catch {
                logger.error("TLS certificate not reloaded; still serving the previous one", metadata: ["error": "\(error)"])
            }
        }
        source.resume()
        return source
    }
}
