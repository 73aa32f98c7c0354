import ArgumentParser
import Foundation

/// `tessera serve --config FILE`: the file is the command line written as JSON. Each key is a
/// long option's name and its value that option's: a string or number, `true` for a flag (false
/// or null: not given), an array for a repeatable option:
///
///     {"host": "0.0.0.0", "port": 8443, "data": "/srv/tessera", "tls-cert": "/etc/tessera/cert.pem",
///      "tls-key": "/etc/tessera/key.pem", "cors-origin": ["https://viewer.example"], "no-demo": true}
///
/// The file is turned into arguments and parsed by the same `@Option`s as the command line, so
/// an option added to ServeCommand (one `@Option` line) is a key of the file at once, with the
/// same name, type check and help, and the two can never disagree. An option given on the
/// command line replaces the file's (all of a repeatable option's values, not added to them).
/// A key that is no option is an error naming it: a misspelt `tls-cert` must not serve plain HTTP.
///
/// Not swift-configuration: its readers look keys up one by one (a second declaration of every
/// option beside the `@Option`) and cannot say which keys of a file nobody asked for, so a typo
/// would pass unnoticed. Foundation's JSONDecoder reads the file; its strict types keep `1`
/// from passing for `true`.
extension ServeCommand {
    /// One value of the file.
    enum ConfigValue: Decodable {
        case flag(Bool)
        case text(String)
        case list([ConfigValue])
        case none

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if container.decodeNil() { self = .none }
            else if let b = try? container.decode(Bool.self) { self = .flag(b) }
            else if let i = try? container.decode(Int.self) { self = .text(String(i)) }
            else if let d = try? container.decode(Double.self) { self = .text(String(d)) }
            else if let s = try? container.decode(String.self) { self = .text(s) }
            else { self = .list(try container.decode([ConfigValue].self)) }
        }

        func arguments(_ option: String) throws -> [String] {
            switch self {
            case .flag(let on): return on ? [option] : []
            case .text(let value): return [option, value]
            case .none: return []
            case .list(let values):
                return try values.flatMap { value in
                    if case .list = value { throw Diagnostics.fail("\(option.dropFirst(2)): a list of lists") }
                    return try value.arguments(option)
                }
            }
        }
    }

    /// The arguments of the command line after `serve`, as typed.
    static var commandLine: [String] {
        let all = CommandLine.arguments
        guard let k = all.dropFirst().firstIndex(of: "serve") else { return [] }
        return Array(all[(k + 1)...])
    }

    /// The options of `file` under those of `commandLine`; ends the command with one line naming
    /// the file and the key when the file is unreadable, not a JSON object, or a key is wrong.
    static func merging(configFile file: String, commandLine: [String]) throws -> ServeCommand {
        guard let data = FileManager.default.contents(atPath: file) else { throw Diagnostics.fail("cannot read the config file \(file)") }
        let keys: [String: ConfigValue]
        do { keys = try JSONDecoder().decode([String: ConfigValue].self, from: data) } catch {
            throw Diagnostics.fail("\(file) is not a JSON object of serve's options: \(Self.jsonProblem(error))")
        }
        let given = Set(commandLine.compactMap { $0.hasPrefix("--") ? String($0.dropFirst(2).prefix { $0 != "=" }) : nil })
        var arguments: [String] = []
        for (key, value) in keys.sorted(by: { $0.key < $1.key }) {
            guard key != "config", !key.hasPrefix("-") else { throw Diagnostics.fail("\(file): unknown key \"\(key)\"") }
            let own = try value.arguments("--" + key)
            // Each key alone through the parser, so that an unknown option or a bad value is named by its key.
            if Self.parseError(["--" + key])?.hasPrefix("Unknown option") ?? false || key == "help" {
                throw Diagnostics.fail("\(file): unknown key \"\(key)\" (the keys are serve's long options, see tessera serve --help)")
            }
            if !own.isEmpty, let message = Self.parseError(own) { throw Diagnostics.fail("\(file): \"\(key)\": \(message)") }
            if !given.contains(key) { arguments += own }
        }
        do { return try ServeCommand.parse(arguments + commandLine) } catch {
            throw Diagnostics.fail(ServeCommand.message(for: error))
        }
    }

    static func parseError(_ arguments: [String]) -> String? {
        do { _ = try ServeCommand.parse(arguments); return nil } catch { return ServeCommand.message(for: error) }
    }

    static func jsonProblem(_ error: any Error) -> String {
        switch error {
        case DecodingError.typeMismatch(_, let c), DecodingError.dataCorrupted(let c):
            let path = c.codingPath.map(\.stringValue).joined(separator: ".")
            return path.isEmpty ? c.debugDescription : "\(path): \(c.debugDescription)"
        default: return "\(error)"
        }
    }
}
