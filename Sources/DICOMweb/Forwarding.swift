#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import HTTPTypes
import Hummingbird
import NIOCore

/// An IPv4 or IPv6 network, `address/prefix` (a bare address is the one host), for the proxies
/// whose forwarding headers Tessera believes.
public struct CIDR: Sendable, Equatable, CustomStringConvertible {
    let bytes: [UInt8]  // 4 or 16, host bits cleared
    let prefix: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = CIDR.addressBytes(String(parts[0])) else { return nil }
        let bits = address.count * 8
        var prefix = bits
        if parts.count == 2 {
            guard let p = Int(parts[1]), p >= 0, p <= bits, !parts[1].hasPrefix("+") else { return nil }
            prefix = p
        }
        self.prefix = prefix
        bytes = address.enumerated().map { k, b in
            let keep = max(0, min(8, prefix - 8 * k))
            return keep == 0 ? 0 : b & ~UInt8((1 << (8 - keep)) - 1)
        }
    }

    public var description: String {
        var text = [CChar](repeating: 0, count: 64)
        var copy = bytes
        _ = inet_ntop(bytes.count == 4 ? AF_INET : AF_INET6, &copy, &text, socklen_t(text.count))
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) + "/\(prefix)"
    }

    /// 127.0.0.0/8 and ::1: a proxy on the same machine.
    public static let loopback = [CIDR("127.0.0.0/8")!, CIDR("::1")!]

    public func contains(_ address: [UInt8]) -> Bool {
        guard address.count == bytes.count else { return false }
        return CIDR.maskedEqual(address, bytes, prefix)
    }

    /// Whether an address in text form (IPv4, IPv6, IPv4-mapped IPv6) is in one of `networks`.
    static func contains(_ networks: [CIDR], address text: String?) -> Bool {
        guard let text, let address = addressBytes(text) else { return false }
        return networks.contains { $0.contains(address) }
    }

    static func maskedEqual(_ a: [UInt8], _ b: [UInt8], _ prefix: Int) -> Bool {
        for k in a.indices {
            let keep = max(0, min(8, prefix - 8 * k))
            if keep == 0 { break }
            let mask = ~UInt8((1 << (8 - keep)) - 1)
            if a[k] & mask != b[k] & mask { return false }
        }
        return true
    }

    /// 4 bytes for IPv4 (also when written as IPv4-mapped IPv6, as a dual-stack socket reports
    /// IPv4 peers), 16 for IPv6; nil for anything else (an `_obfuscated` or `unknown` node).
    static func addressBytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        let b = withUnsafeBytes(of: &v6) { Array($0) }
        if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xFF && b[11] == 0xFF { return Array(b[12...]) }
        return b
    }
}

extension HTTPField.Name {
    /// RFC 7239's header, and the older `X-Forwarded-For`: where a trusted proxy names the client.
    static let forwarded = HTTPField.Name("Forwarded")!
    static let xForwardedFor = HTTPField.Name("X-Forwarded-For")!
}

/// Forwarding headers count only when the connection comes from a trusted proxy: from anyone else
/// (or with no peer address) `Forwarded` and `X-Forwarded-*` are removed before any handler runs,
/// so a client cannot make Tessera write its URLs (RetrieveURL, BulkDataURI) with a host it chose.
/// `Host` likewise: from an untrusted peer it is replaced by the address the connection reached
/// (nil in-process, where the configured address stands in), so links name this server whatever
/// the client wrote there (a forged Host would otherwise end up in responses, and in caches).
struct TrustedForwardingMiddleware: RouterMiddleware {
    let trusted: [CIDR]
    static let names = ["Forwarded", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-For", "X-Forwarded-Port"].map { HTTPField.Name($0)! }

    func handle(_ request: Request, context: TesseraRequestContext,
                next: (Request, TesseraRequestContext) async throws -> Response) async throws -> Response {
        guard !CIDR.contains(trusted, address: context.remoteAddress?.ipAddress) else {
            return try await next(request, context)
        }
        var head = request.head
        for name in Self.names { head.headerFields[name] = nil }
        head.authority = context.localAddress.flatMap(Self.authority)
        return try await next(Request(head: head, body: request.body), context)
    }

    /// `127.0.0.1:8080`, `[::1]:8443`: a socket address as the authority of a URL.
    static func authority(_ address: SocketAddress) -> String? {
        guard let ip = address.ipAddress, let port = address.port else { return nil }
        let host = CIDR.addressBytes(ip)?.count == 4 ? (ip.hasPrefix("::ffff:") ? String(ip.dropFirst(7)) : ip) : "[\(ip)]"
        return "\(host):\(port)"
    }
}

/// `--public-url https://pacs.example.org[:port][/prefix]`: where clients reach the service, the
/// root of every link when configured. A prefix is where a proxy mounts Tessera (the proxy strips
/// it); links then read `https://pacs.example.org/prefix/dicomweb/...`.
public struct PublicURL: Sendable, Equatable, CustomStringConvertible {
    /// Scheme, authority and prefix, without a trailing `/`.
    public let description: String

    /// Nil unless http(s), with a host, and without user, query or fragment; only URL characters
    /// that need no escaping in JSON or XML, since the URL is written into both unescaped.
    public init?(_ text: String) {
        var url = text
        while url.hasSuffix("/") { url.removeLast() }
        guard let sep = url.range(of: "://") else { return nil }
        let scheme = url[..<sep.lowerBound].lowercased()
        let rest = url[sep.upperBound...]
        let authority = rest.prefix { $0 != "/" }
        guard scheme == "http" || scheme == "https", !authority.isEmpty, !authority.hasPrefix(":"),
              authority.allSatisfy(DICOMwebService.hostCharacters.contains),
              rest.dropFirst(authority.count).allSatisfy(DICOMwebService.pathCharacters.contains) else { return nil }
        description = scheme + "://" + rest
    }
}

/// One element of a `Forwarded` header (RFC 7239 §4): its parameters, names lower-cased, values unquoted.
struct ForwardedElement: Equatable {
    var parameters: [String: String]
    subscript(_ name: String) -> String? { parameters[name] }

    /// `Forwarded: for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8::1]:4711"` — each
    /// comma-separated element in order (the first was added by the proxy nearest the client).
    static func parse(_ header: String) -> [ForwardedElement] {
        MediaType.splitOutsideQuotes(Substring(header), separator: ",").map { element in
            var parameters: [String: String] = [:]
            for pair in MediaType.splitOutsideQuotes(element, separator: ";") {
                guard let eq = pair.firstIndex(of: "=") else { continue }
                let name = pair[..<eq].trimmingCharacters(in: " \t").lowercased()
                var value = pair[pair.index(after: eq)...].trimmingCharacters(in: " \t")
                if value.count >= 2, value.first == "\"", value.last == "\"" {
                    value = String(value.dropFirst().dropLast()).replacingOccurrences(of: "\\\"", with: "\"")
                        .replacingOccurrences(of: "\\\\", with: "\\")
                }
                if !name.isEmpty { parameters[name] = value }
            }
            return ForwardedElement(parameters: parameters)
        }.filter { !$0.parameters.isEmpty }
    }

    /// The address of a `for=` node without its port: `[2001:db8::1]:4711` → `2001:db8::1`,
    /// `192.0.2.43:47011` → `192.0.2.43`; names such as `unknown` or `_hidden` come back as they are.
    static func nodeAddress(_ node: String) -> String {
        if node.hasPrefix("["), let close = node.firstIndex(of: "]") {
            return String(node[node.index(after: node.startIndex)..<close])
        }
        let colons = node.filter { $0 == ":" }.count
        if colons == 1, let colon = node.firstIndex(of: ":") { return String(node[..<colon]) }
        return node
    }

    /// The element describing the request as the client made it. Proxies append, so the chain is
    /// walked from the end (added by the trusted peer) towards the client, one element further for
    /// each `for=` that is itself a trusted proxy; elements before that may have been sent by the
    /// client and are not believed.
    static func clientFacing(_ elements: [ForwardedElement], trusted: [CIDR]) -> ForwardedElement? {
        var k = elements.count - 1
        while k > 0, CIDR.contains(trusted, address: elements[k]["for"].map(nodeAddress)) { k -= 1 }
        return k >= 0 ? elements[k] : nil
    }
}

extension DICOMwebService {
    /// The DICOMweb root as the client sees it: the configured public URL; else, behind a proxy,
    /// from `Forwarded` (RFC 7239) or `X-Forwarded-Proto`/`X-Forwarded-Host`; else from `Host`
    /// (those of untrusted peers never get here: TrustedForwardingMiddleware puts the address the
    /// connection reached in its place). A Host without a port (dicomweb-client sends one) gets
    /// the port the server listens on. The scheme is https when Tessera serves TLS itself.
    func root(_ request: Request) -> String {
        if let publicURL = configuration.publicURL { return "\(publicURL)/dicomweb" }
        let headers = request.headers
        func firstValue(_ name: String) -> String? {
            headers[HTTPField.Name(name)!]?.split(separator: ",").first.map { $0.trimmingCharacters(in: " \t") }.flatMap { $0.isEmpty ? nil : $0 }
        }
        let element = headers[values: .forwarded].isEmpty ? nil
            : ForwardedElement.clientFacing(ForwardedElement.parse(headers[values: .forwarded].joined(separator: ",")),
                                            trusted: configuration.trustedProxies)
        let scheme = configuration.tls == nil ? "http" : "https"
        // Values go into URLs inside JSON: a scheme of scheme characters, a host of authority characters.
        let proto = (element?["proto"] ?? firstValue("X-Forwarded-Proto")).flatMap { $0.allSatisfy(Self.schemeCharacters.contains) ? $0.lowercased() : nil } ?? scheme
        if let forwarded = (element?["host"] ?? firstValue("X-Forwarded-Host")).flatMap({ $0.allSatisfy(Self.authorityCharacters.contains) ? $0 : nil }) {
            return "\(proto)://\(forwarded)/dicomweb"
        }
        var host = request.head.authority.flatMap { $0.allSatisfy(Self.authorityCharacters.contains) ? $0 : nil }
            ?? "\(configuration.host):\(configuration.port)"
        let hasPort = host.hasPrefix("[") ? host.contains("]:") : host.contains(":")
        if !hasPort && configuration.port != (proto == "https" ? 443 : 80) { host += ":\(configuration.port)" }
        return "\(proto)://\(host)/dicomweb"
    }

    static let schemeCharacters = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.")
    /// RFC 3986 §3.2: reg-name, IP literal and port characters.
    static let authorityCharacters = schemeCharacters.union("_~!$&'()*,;=:[]%")
    /// A host and port of unreserved characters and IP literals only (RFC 3986 §2.3, §3.2.2):
    /// nothing that JSON or XML would need escaped.
    static let hostCharacters = schemeCharacters.union("_~:[]")
    static let pathCharacters = hostCharacters.union("/%")
}
