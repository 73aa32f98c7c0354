import ArgumentParser
import DICOMweb
import Foundation

extension ServeCommand {
    /// `--no-metrics` and `--metrics-token-file`. The token is read from a file (or
    /// TESSERA_METRICS_TOKEN_FILE names the file), never from the command line, where `ps` shows it.
    func applyMetricsOptions(to config: inout DICOMwebConfiguration) throws {
        if noMetrics { config.metrics = nil }
        guard let metricsTokenFile else { return }
        guard let data = FileManager.default.contents(atPath: metricsTokenFile) else {
            throw Diagnostics.fail("cannot read the metrics token file \(metricsTokenFile)")
        }
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        // Short tokens are guessable by a scraper-shaped client; the file's text is never logged.
        guard token.utf8.count >= 16, !token.contains(where: \.isWhitespace) else {
            throw Diagnostics.fail("the metrics token in \(metricsTokenFile) is at least 16 characters without spaces")
        }
        config.metricsToken = token
    }
}
