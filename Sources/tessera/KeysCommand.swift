import AccessControl
import ArgumentParser
import Foundation
import ImageSetStore
import Logging
import PostgresIndex

/// `tessera keys create|list|revoke`: API keys for machines (Docs/security.md, "API keys"). They
/// open only the folder's index, without its lock, so they work beside a running `tessera serve`,
/// which sees a change within its key cache's lifetime (5 s).
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Create, list and revoke API keys (Authorization: Bearer KEY).",
        subcommands: [Create.self, List.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        // Named here: without a name ArgumentParser derives one by reflection at every start.
        static let configuration = CommandConfiguration(
            commandName: "create", abstract: "Create an API key and print it once; only its SHA-256 is stored.")
        @Option(help: "gateway (STOW-RS, reading back what it stored), viewer (reads) or admin (everything).") var role: Role
        @Option(help: "A unique name (letters, digits, '.', '_', '-'); audit records name the key by it.") var name: String
        @OptionGroup var place: KeyStoreOptions

        func run() async throws {
            let keys = try await place.open(create: true)
            let key = APIKey.generate()
            do {
                try await keys.createAPIKey(APIKeyRecord(name: name, role: role, keyHash: APIKey.hash(key), created: Date()), audit: .localUser)
            } catch let e as AccessKeyError {
                throw Diagnostics.fail(e.description)
            }
            print(key)
            Diagnostics.line("created \(role.rawValue) key \(name); it is shown only this once (the folder keeps only its hash). "
                             + "Send it as Authorization: Bearer KEY")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List the API keys (never the keys themselves).")
        @OptionGroup var place: KeyStoreOptions
        @Flag(help: "Print JSON instead of a table.") var json = false

        struct Item: Encodable {
            let name: String, role: String, created: Date, revoked: Date?
        }

        func run() async throws {
            let items = try await place.open(create: false).apiKeys().map {
                Item(name: $0.name, role: $0.role.rawValue, created: $0.created, revoked: $0.revoked)
            }
            if json { return try AdminJSON.write(items) }
            let iso = ISO8601DateFormatter()
            print("NAME".padding(toLength: 32, withPad: " ", startingAt: 0) + " ROLE     CREATED              REVOKED")
            for i in items {
                let name: String = i.name.padding(toLength: 32, withPad: " ", startingAt: 0)
                let role: String = i.role.padding(toLength: 8, withPad: " ", startingAt: 0)
                let revoked: String = i.revoked.map { iso.string(from: $0) } ?? "-"
                print(name + " " + role + " " + iso.string(from: i.created) + " " + revoked)
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "revoke", abstract: "Revoke an API key; a running server refuses it within 5 seconds.")
        @Argument(help: "The key's name.") var name: String
        @OptionGroup var place: KeyStoreOptions

        func run() async throws {
            guard try await place.open(create: false).revokeAPIKey(name: name, at: Date(), audit: .localUser) else {
                throw Diagnostics.fail("no unrevoked key named \(name) in \(place.data ?? "the index")")
            }
            Diagnostics.line("revoked key \(name)")
        }
    }

}

extension Role: ExpressibleByArgument {}

/// Where the keys are: a data folder's index, or the PostgreSQL index replicas share (`--index`,
/// as `tessera serve` takes it).
struct KeyStoreOptions: ParsableArguments {
    @Option(help: "The data folder (created when missing, for create).") var data: String?
    @Option(help: ArgumentHelp("The PostgreSQL index, postgresql://USER@HOST:PORT/DB (password from PGPASSWORD), instead of a data folder.", valueName: "URL"))
    var index: String?

    func validate() throws {
        guard (data == nil) != (index == nil) else { throw ValidationError("give --data DIR or --index postgresql://…, one of them") }
    }

    func open(create: Bool) async throws -> any ImageSetIndex & AccessKeyIndex & SubscriptionIndex {
        do {
            if let index { return try await PostgresIndex.connect(url: index, logger: Logger(label: "tessera.keys")) }
            return try Datastore.openIndex(folder: data ?? "", create: create)
        } catch {
            throw Diagnostics.fail("\(error)")
        }
    }
}
