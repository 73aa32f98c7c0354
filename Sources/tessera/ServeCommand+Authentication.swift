import AccessControl
import ArgumentParser
import Foundation
import ImageSetStore
import Logging

/// `tessera serve`'s authentication options and the secure-by-default rule (Docs/security.md):
/// with no API key and no OIDC provider, authentication is off and the server may listen on
/// loopback only; any other address without authentication is refused unless `--insecure-no-auth`.
struct AuthenticationOptions: ParsableArguments {
    @Option(name: .customLong("oidc-issuer"), help: "Accept OIDC bearer tokens whose iss is exactly this.") var issuer: String?
    @Option(name: .customLong("oidc-audience"), help: "The aud the tokens must name (with --oidc-issuer).") var audience: String?
    @Option(name: .customLong("oidc-jwks"), help: ArgumentHelp("The provider's signing keys: a JWKS file, or an https:// (http://) URL.", valueName: "FILE|URL"))
    var jwks: String?
    @Option(name: .customLong("oidc-roles-claim"), help: "Dotted path of the roles claim (Keycloak: realm_access.roles).") var rolesClaim = "roles"
    @Option(name: .customLong("oidc-role-prefix"), help: "Prefix of the role values (e.g. tessera- for tessera-viewer); others are ignored.")
    var rolePrefix = ""
    @Option(name: .customLong("oidc-clock-skew"), help: "Seconds of clock difference allowed for exp and nbf.") var clockSkew = 60
    @Flag(name: .customLong("insecure-no-auth"), help: "Listen on a non-loopback address with authentication off (anyone reaching the port is admin).")
    var insecureNoAuth = false

    func validate() throws {
        let given = [issuer, audience, jwks].compactMap { $0 }.count
        guard given == 0 || given == 3 else { throw ValidationError("--oidc-issuer, --oidc-audience and --oidc-jwks go together") }
        guard (0...600).contains(clockSkew) else { throw ValidationError("--oidc-clock-skew is 0 to 600 seconds") }
    }

    /// The server's authenticator; ends the command (one line on stderr) when the configuration
    /// cannot work or would leave a non-loopback address open.
    func authenticator(store: Datastore, host: String, configuration: inout AuthenticationConfiguration,
                       logger: Logger) async throws -> RequestAuthenticator {
        if let issuer, let audience, let jwks {
            var oidc = OIDCConfiguration(issuer: issuer, audience: audience, jwks: .init(jwks))
            oidc.rolesClaim = rolesClaim
            oidc.rolePrefix = rolePrefix
            oidc.clockSkew = TimeInterval(clockSkew)
            configuration.oidc = oidc
        }
        let authenticator = RequestAuthenticator(keys: store.accessKeys, configuration: configuration, logger: logger)
        if let oidc = authenticator.oidc {
            do { try await oidc.loadKeys() } catch {
                // A file is ours to fix now; a provider may be down for a moment and is retried.
                if case .file = oidc.configuration.jwks { throw Diagnostics.fail("cannot use the OIDC key set \(jwks ?? ""): \(error)") }
                logger.warning("cannot read the OIDC key set yet; tokens fail until it can be read", metadata: ["jwks": "\(jwks ?? "")", "error": "\(error)"])
            }
        }
        if await authenticator.isEnabled() {
            let keys = await authenticator.apiKeys.hasActiveKeys()
            logger.info("authentication on", metadata: ["oidcIssuer": "\(issuer ?? "-")", "apiKeys": "\(keys)"])
        } else if !Self.isLoopback(host) {
            guard insecureNoAuth else {
                throw Diagnostics.fail("refusing to listen on \(host) with authentication off: create an API key (tessera keys create --role admin --name NAME --data DIR) "
                                       + "or configure OIDC (--oidc-issuer, --oidc-audience, --oidc-jwks), or pass --insecure-no-auth")
            }
            logger.warning("AUTHENTICATION IS OFF ON A NON-LOOPBACK ADDRESS (--insecure-no-auth): anyone who can reach this port can read and delete every study",
                           metadata: ["host": "\(host)"])
        } else {
            logger.info("authentication off: no API key and no OIDC provider; every request is admin, loopback only")
        }
        return authenticator
    }

    /// 127.0.0.0/8, ::1 and localhost; 0.0.0.0 and :: (every interface) are not.
    static func isLoopback(_ host: String) -> Bool {
        let h = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).lowercased()
        if h == "localhost" || h == "::1" { return true }
        let octets = h.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
    }
}
