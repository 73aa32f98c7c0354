import Crypto
import Foundation
import ImageSetStore

/// How each webhook POST is signed (Docs/events.md, "Verifying a delivery"): HMAC-SHA256, keyed
/// with the subscription's secret, over the ASCII decimal Unix time, a dot, and the body's bytes;
/// sent as `Tessera-Signature: t=UNIX,v1=HEX`. The time is inside the MAC so that a receiver can
/// refuse an old request replayed at it (it checks that `t` is recent), and the sequence number in
/// the body and in `Tessera-Event-Sequence` lets it drop a duplicate delivery.
public enum WebhookSignature {
    public static let header = "Tessera-Signature"

    public static func mac(secret: String, timestamp: Int, body: some Sequence<UInt8>) -> [UInt8] {
        var h = HMAC<SHA256>(key: SymmetricKey(data: Array(secret.utf8)))
        h.update(data: Array("\(timestamp).".utf8))
        h.update(data: Array(body))
        return Array(h.finalize())
    }

    /// The header's value: `t=UNIX,v1=HEX` (lower-case hex of the MAC).
    public static func sign(secret: String, timestamp: Int, body: some Sequence<UInt8>) -> String {
        "t=\(timestamp),v1=" + mac(secret: secret, timestamp: timestamp, body: body).map { String(format: "%02x", $0) }.joined()
    }

    /// Whether `header` is a valid signature of `body` with `secret`, made within `tolerance`
    /// seconds of `now`. Several `v1=` values are allowed (one matching suffices), for a receiver
    /// rotating secrets. The comparison takes the same time wherever the MACs differ.
    public static func verify(header: String, secret: String, body: some Sequence<UInt8>, tolerance: TimeInterval = 300,
                              now: Date = Date()) -> Bool {
        var timestamp: Int?
        var candidates: [String] = []
        for part in header.split(separator: ",") {
            let kv = part.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2 else { continue }
            if kv[0] == "t" { timestamp = Int(kv[1]) } else if kv[0] == "v1" { candidates.append(kv[1].lowercased()) }
        }
        guard let timestamp, abs(now.timeIntervalSince1970 - Double(timestamp)) <= tolerance else { return false }
        let expected = Array(mac(secret: secret, timestamp: timestamp, body: body).map { String(format: "%02x", $0) }.joined().utf8)
        return candidates.reduce(false) { ok, c in APIKey.constantTimeEqual(Array(c.utf8), expected) || ok }
    }
}

/// Exponential backoff with full jitter (a random delay between 0 and the exponential cap, so
/// that many subscriptions failing together do not retry in step), capped at `maximum`.
public struct WebhookBackoff: Sendable, Hashable {
    public var base: Double
    public var maximum: Double

    public init(base: Double, maximum: Double) {
        self.base = base
        self.maximum = maximum
    }

    /// The cap after `failures` consecutive failures (1: `base`, 2: twice that, …), at most `maximum`.
    public func cap(afterFailures failures: Int) -> Double {
        min(maximum, base * pow(2, Double(max(0, min(failures, 62) - 1))))
    }

    public func delay(afterFailures failures: Int) -> Double {
        Double.random(in: 0...cap(afterFailures: failures))
    }
}
