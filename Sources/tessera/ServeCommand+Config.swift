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
/// Environment variables work the same way (TESSERA_PORT=8443, see `merging`), between the file
/// and the command line.
///
/// Not swift-configuration: its readers look keys up one by one (a second declaration of every
/// option beside the `@Option`) and cannot say which keys of a file, or which TESSERA_ variables,
/// nobody asked for, so a typo would pass unnoticed; and its snapshot would type each value a
/// second time beside the parser. Foundation's JSONDecoder reads the file; its strict types keep
/// `1` from passing for `true`; the environment is `ProcessInfo.environment`, filtered by prefix.
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

    /// The environment variables of options: `TESSERA_` and the long option's name in capitals,
    /// dashes as underscores (`--max-connections`: TESSERA_MAX_CONNECTIONS).
    static let environmentPrefix = "TESSERA_"

    static func environmentName(_ key: String) -> String {
        environmentPrefix + key.uppercased().replacingOccurrences(of: "-", with: "_")
    }

    /// The command line, over the environment's options, over the config file's (`--config`, or
    /// TESSERA_CONFIG when the command line has none), over the defaults. Ends the command with one
    /// line naming the file and key, or the variable, when one is unreadable or wrong. A TESSERA_
    /// variable that names no option is a warning, not an error: the same environment carries other
    /// tools' TESSERA_ variables (TESSERA_PYTHON). The tests' TESSERA_TEST_* are passed over in silence.
    static func merging(configFile: String?, environment: [String: String], commandLine: [String]) throws -> ServeCommand {
        let given = Set(commandLine.compactMap { $0.hasPrefix("--") ? String($0.dropFirst(2).prefix { $0 != "=" }) : nil })
        var fromEnvironment: Set<String> = []
        var environmentArguments: [String] = []
        for (name, text) in environment.sorted(by: { $0.key < $1.key }) where name.hasPrefix(environmentPrefix) {
            let key = name.dropFirst(environmentPrefix.count).lowercased().replacingOccurrences(of: "_", with: "-")
            // Empty is unset (a container's `TESSERA_X=`); TESSERA_CONFIG names the file, read below.
            // TESSERA_TEST_* belong to the test suite (Tools/test), whose servers inherit them.
            guard !text.isEmpty, key != "config", !name.hasPrefix(environmentPrefix + "TEST_") else { continue }
            guard !key.isEmpty, !key.hasPrefix("-"), key != "help", !(parseError(["--" + key])?.hasPrefix("Unknown option") ?? false) else {
                Diagnostics.line("warning: \(name) is not a serve option (ignored; the variables are TESSERA_ and an option's name, see Docs/configuration.md)")
                continue
            }
            let own = try environmentValue(text, name: name, isFlag: parseError(["--" + key]) == nil).arguments("--" + key)
            // The parser's message quotes a value only when its type is wrong (a number, a CIDR): secrets are text.
            if !own.isEmpty, let message = parseError(own) { throw Diagnostics.fail("\(name): \(message)") }
            fromEnvironment.insert(key)
            if !given.contains(key) { environmentArguments += own }
        }
        var fileArguments: [String] = []
        if let file = configFile ?? environment["TESSERA_CONFIG"].flatMap({ $0.isEmpty ? nil : $0 }) {
            fileArguments = try configArguments(file: file, skipping: given.union(fromEnvironment))
        }
        do { return try ServeCommand.parse(fileArguments + environmentArguments + commandLine) } catch {
            throw Diagnostics.fail(ServeCommand.message(for: error))
        }
    }

    /// A variable's text as a value: a flag's `true`/`1`/`yes`/`on` (or `false`/`0`/`no`/`off`), a
    /// repeatable option's JSON array (`["https://a.example","https://b.example"]`), else the text.
    static func environmentValue(_ text: String, name: String, isFlag: Bool) throws -> ConfigValue {
        if isFlag {
            switch text.lowercased() {
            case "true", "1", "yes", "on": return .flag(true)
            case "false", "0", "no", "off": return .flag(false)
            default: throw Diagnostics.fail("\(name) is a flag: true or false")
            }
        }
        guard text.hasPrefix("[") else { return .text(text) }
        do { return .list(try JSONDecoder().decode([ConfigValue].self, from: Data(text.utf8))) } catch {
            throw Diagnostics.fail("\(name) starts with [ but is not a JSON array: \(jsonProblem(error))")
        }
    }

    /// The arguments of `file`'s keys but those in `skipping` (given with more precedence).
    static func configArguments(file: String, skipping given: Set<String>) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: file) else { throw Diagnostics.fail("cannot read the config file \(file)") }
        let keys: [String: ConfigValue]
        do { keys = try JSONDecoder().decode([String: ConfigValue].self, from: data) } catch {
            throw Diagnostics.fail("\(file) is not a JSON object of serve's options: \(Self.jsonProblem(error))")
        }
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
        return arguments
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
