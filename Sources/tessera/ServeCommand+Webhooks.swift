import ArgumentParser
import Foundation
import ImageSetStore
import Logging
import Webhooks

/// `tessera serve`'s webhook delivery options (Docs/configuration.md, "Webhooks").
struct WebhookServeOptions: ParsableArguments {
    @Flag(help: "Deliver no webhooks from this process (another replica does; subscriptions can still be managed).") var noWebhooks = false
    @Option(help: "Consecutive failed deliveries after which a subscription is marked failing and delivery stops.") var webhookFailureLimit = 15
    @Option(help: "Seconds: the first retry waits up to this (full jitter), each next up to twice as long…") var webhookBackoff = 1.0
    @Option(help: "…and never more than this many seconds.") var webhookBackoffMax = 600.0
    @Option(help: "Seconds to open a connection to a receiver.") var webhookConnectTimeout = 5.0
    @Option(help: "Seconds for a whole delivery (connect, send, the receiver's answer).") var webhookTimeout = 10.0
    @Option(help: "Seconds between looks at the subscription list (added, removed, re-enabled ones).") var webhookPollInterval = 2.0
    @Option(help: "Seconds a replica's lease on a subscription lasts; another replica takes over a dead one's after it.") var webhookLease = 30.0

    func validate() throws {
        guard webhookFailureLimit >= 1 else { throw ValidationError("--webhook-failure-limit is at least 1") }
        for (name, value) in [("webhook-backoff", webhookBackoff), ("webhook-backoff-max", webhookBackoffMax),
                              ("webhook-connect-timeout", webhookConnectTimeout), ("webhook-timeout", webhookTimeout),
                              ("webhook-poll-interval", webhookPollInterval), ("webhook-lease", webhookLease)] where !(value > 0 && value <= 86_400) {
            throw ValidationError("--\(name) is more than 0 and at most 86400 seconds")
        }
        guard webhookBackoffMax >= webhookBackoff else { throw ValidationError("--webhook-backoff-max is at least --webhook-backoff") }
        // The lease is renewed before a POST once a third of it has passed: the POST must end in the rest.
        guard webhookTimeout < webhookLease * 2 / 3 else {
            throw ValidationError("--webhook-timeout is less than two thirds of --webhook-lease (a delivery must end within its lease)")
        }
    }

    var options: WebhookOptions {
        var o = WebhookOptions()
        o.failureLimit = webhookFailureLimit
        o.backoff = WebhookBackoff(base: webhookBackoff, maximum: webhookBackoffMax)
        o.connectTimeout = webhookConnectTimeout
        o.requestTimeout = webhookTimeout
        o.pollInterval = webhookPollInterval
        o.leaseDuration = webhookLease
        return o
    }

    /// Starts delivery beside the server (nil with --no-webhooks).
    func start(store: Datastore, logger: Logger) -> WebhookDispatcher? {
        guard !noWebhooks else { return nil }
        let dispatcher = WebhookDispatcher(index: store.subscriptions, source: FeedEventSource(store: store), options: options, logger: logger)
        dispatcher.start()
        return dispatcher
    }
}
