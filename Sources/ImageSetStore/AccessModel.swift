import Foundation

/// The three kinds of user (Docs/security.md): edge gateways store, viewers read, admins do
/// everything. The store keeps roles with API keys and in the audit trail; which route needs
/// which role is the Access layer's policy.
public enum Role: String, Sendable, Hashable, Codable, CaseIterable {
    case gateway, viewer, admin
}

/// Who made a request, as authentication established it and as the audit trail records it.
public struct Principal: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable, Codable {
        /// `Authorization: Bearer <API key>`; `name` is the key's name.
        case apiKey = "api-key"
        /// An OIDC bearer JWT; `name` is its `sub`.
        case token
        /// Authentication is off (loopback development): every request is this principal.
        case anonymous
        /// A local command (`tessera import`, `tessera keys`) run with access to the data folder.
        case local
    }
    public var name: String
    public var roles: Set<Role>
    public var kind: Kind

    public init(name: String, roles: Set<Role>, kind: Kind) {
        self.name = name
        self.roles = roles
        self.kind = kind
    }

    public func has(_ role: Role) -> Bool { roles.contains(role) }
}

extension AuditContext {
    /// A local command's changes (`tessera import`, `prune`, `keys`): the operating-system user who ran it.
    public static var localUser: AuditContext {
        AuditContext(principal: Principal(name: ProcessInfo.processInfo.userName, roles: [.admin], kind: .local))
    }
}

/// The request an audited action belongs to: who, from where, under which request id.
public struct AuditContext: Sendable, Hashable {
    public var principal: Principal
    public var clientAddress: String?
    public var requestID: String?

    public init(principal: Principal, clientAddress: String? = nil, requestID: String? = nil) {
        self.principal = principal
        self.clientAddress = clientAddress
        self.requestID = requestID
    }
}
