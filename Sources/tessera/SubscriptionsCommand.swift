import ArgumentParser
import DICOMweb
import Foundation
import ImageSetStore
import Logging
import PostgresIndex

/// `tessera subscriptions add|list|show|remove|enable|disable`: webhook subscriptions (Docs/events.md,
/// "Webhooks"). Like `tessera keys`, they open only the index (the folder's, without its lock, or
/// the shared PostgreSQL one), so they work beside a running server, whose delivery picks a change
/// up within its poll interval (2 s).
struct SubscriptionsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "subscriptions", abstract: "Add, list, show, remove, enable and disable webhook subscriptions.",
        subcommands: [Add.self, List.self, Show.self, Remove.self, Enable.self, Disable.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a subscription; prints its id, and the secret once when it was generated.")
        @Option(help: "Where events are POSTed (http or https).") var url: String
        @Option(name: .customLong("event-type"), help: ArgumentHelp("An event type to deliver (instance.stored, …); repeatable. Default: every type.", valueName: "TYPE"))
        var eventTypes: [String] = []
        @Option(name: .customLong("study-uid"), help: "Only events of this Study Instance UID.") var studyInstanceUID: String?
        @Option(name: .customLong("patient-id"), help: "Only events of this Patient ID.") var patientID: String?
        @Option(name: .customLong("secret-file"), help: ArgumentHelp("A file holding the signing secret (16 to 512 bytes; one trailing newline is dropped). Default: one is generated and printed once.", valueName: "FILE"))
        var secretFile: String?
        @Option(help: "Deliver the events after this sequence number (0: the whole feed). Default: the feed's newest, so events from now on.")
        var after: Int64?
        @OptionGroup var place: KeyStoreOptions

        func run() async throws {
            var secret: String?
            if let secretFile {
                guard var text = try? String(contentsOfFile: secretFile, encoding: .utf8) else { throw Diagnostics.fail("cannot read \(secretFile)") }
                if text.hasSuffix("\n") { text.removeLast() }
                secret = text
            }
            let types = Array(Set(eventTypes)).sorted()
            do {
                try Subscription.validate(url: url, secret: secret, eventTypes: types)
            } catch let e as SubscriptionError {
                throw Diagnostics.fail(e.description)
            }
            if let after, after < 0 { throw Diagnostics.fail("--after is 0 or more") }
            let index = try await place.open(create: true)
            var cursor = after ?? 0
            if after == nil { cursor = try await latest(index) }
            let s = Subscription(id: Subscription.newID(), url: url, eventTypes: types, studyInstanceUID: studyInstanceUID, patientID: patientID,
                                 secret: secret ?? Subscription.generateSecret(), created: Date(), cursor: cursor)
            try await index.createSubscription(s)
            print(s.id)
            if secret == nil {
                print(s.secret)
                Diagnostics.line("added subscription \(s.id); its secret (second line) is shown only this once")
            } else {
                Diagnostics.line("added subscription \(s.id)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the subscriptions (never their secrets).")
        @OptionGroup var place: KeyStoreOptions
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() async throws {
            let index = try await place.open(create: false)
            let (all, latest) = (try await index.subscriptions(), try await latest(index))
            if json { return print(Subscription.jsonText(all.map { $0.jsonObject(latest: latest) })) }
            print("ID                                STATE     CURSOR      LAG  FAILURES  URL")
            for s in all {
                print(s.id.padding(toLength: 34, withPad: " ", startingAt: 0) + s.state.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0)
                      + String(s.cursor).padding(toLength: 12, withPad: " ", startingAt: 0)
                      + String(max(0, latest - s.cursor)).padding(toLength: 5, withPad: " ", startingAt: 0)
                      + String(s.consecutiveFailures).padding(toLength: 10, withPad: " ", startingAt: 0) + s.url)
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One subscription as JSON: cursor, lag, state, failures, last error.")
        @Argument(help: "The subscription's id.") var id: String
        @OptionGroup var place: KeyStoreOptions

        func run() async throws {
            let index = try await place.open(create: false)
            guard let s = try await index.subscription(id: id) else { throw Diagnostics.fail("no subscription \(id)") }
            print(Subscription.jsonText(s.jsonObject(latest: try await latest(index))))
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a subscription; delivery to it stops.")
        @Argument(help: "The subscription's id.") var id: String
        @OptionGroup var place: KeyStoreOptions

        func run() async throws {
            guard try await place.open(create: false).deleteSubscription(id: id) else { throw Diagnostics.fail("no subscription \(id)") }
            Diagnostics.line("removed subscription \(id)")
        }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Re-enable a failing or disabled subscription: delivery resumes from its cursor.")
        @Argument(help: "The subscription's id.") var id: String
        @OptionGroup var place: KeyStoreOptions
        func run() async throws { try await SubscriptionsCommand.setState(id, .active, place, "enabled") }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop delivering to a subscription; its cursor is kept.")
        @Argument(help: "The subscription's id.") var id: String
        @OptionGroup var place: KeyStoreOptions
        func run() async throws { try await SubscriptionsCommand.setState(id, .disabled, place, "disabled") }
    }

    static func setState(_ id: String, _ state: Subscription.State, _ place: KeyStoreOptions, _ done: String) async throws {
        guard try await place.open(create: false).setSubscriptionState(id: id, state) else { throw Diagnostics.fail("no subscription \(id)") }
        Diagnostics.line("\(done) subscription \(id)")
    }
}

/// The feed's newest sequence number (the lag's reference).
func latest(_ index: any ImageSetIndex & SubscriptionIndex) async throws -> Int64 { try await index.latestChangeSequence() }
