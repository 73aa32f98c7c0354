import Foundation

/// The external test corpus (pydicom's test files, pydicom-data) and oracles, installed by
/// `Tools/test` into the git-ignored `.oracles/` folder. Missing pieces are errors, never skips:
/// a suite that silently skips its oracle comparisons would pass while proving nothing.
public enum Corpus {
    public struct Missing: Error, CustomStringConvertible {
        public let description: String
    }

    public static let packageRoot: URL = {
        // Tests/TestSupport/Corpus.swift → package root
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }()

    public static var oraclesDirectory: URL { packageRoot.appendingPathComponent(".oracles") }

    public static var python: String {
        ProcessInfo.processInfo.environment["TESSERA_PYTHON"]
            ?? oraclesDirectory.appendingPathComponent("venv/bin/python").path
    }

    public static func sitePackages() throws -> URL {
        let lib = oraclesDirectory.appendingPathComponent("venv/lib")
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: lib.path)) ?? []
        guard let py = versions.sorted().last(where: { $0.hasPrefix("python3") }) else {
            throw Missing(description: "no Python venv at \(lib.path): run Tools/test to install the oracles")
        }
        return lib.appendingPathComponent(py).appendingPathComponent("site-packages")
    }

    /// Every DICOM file of pydicom's test data and pydicom-data, sorted by path.
    public static func files() throws -> [String] {
        let site = try sitePackages()
        let roots = ["pydicom/data/test_files", "pydicom/data/charset_files", "data_store/data"]
        var out: [String] = []
        for root in roots {
            let dir = site.appendingPathComponent(root)
            guard let walker = FileManager.default.enumerator(atPath: dir.path) else {
                throw Missing(description: "corpus folder \(dir.path) is missing: run Tools/test")
            }
            for case let rel as String in walker {
                let url = dir.appendingPathComponent(rel)
                var isDir: ObjCBool = false
                guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), !isDir.boolValue else { continue }
                let name = url.lastPathComponent
                if name.hasSuffix(".dcm") || (!name.contains(".") && name != "README") {
                    out.append(url.path)
                }
            }
        }
        guard out.count > 150 else {
            throw Missing(description: "corpus has only \(out.count) files: run Tools/test")
        }
        return out.sorted()
    }

    /// Runs a command and returns its standard output; throws with its stderr if it fails.
    @discardableResult
    public static func run(_ executable: String, _ arguments: [String], stdin: Data? = nil) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let input = Pipe()
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(stdin) }
        try input.fileHandleForWriting.close()
        // Read both pipes concurrently so a chatty child cannot block on a full pipe.
        final class Box: @unchecked Sendable { var data = Data() } // written before group.leave, read after wait
        let errBox = Box()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async {
            errBox.data = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        let errData = errBox.data
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Missing(description: "\(executable) \(arguments.prefix(3).joined(separator: " ")) failed (\(process.terminationStatus)): \(String(decoding: errData.prefix(2000), as: UTF8.self))")
        }
        return outData
    }

    /// Runs a Python oracle script from `Tools/oracles/` with the venv's interpreter.
    public static func oracle(_ script: String, _ arguments: [String], stdin: Data? = nil) throws -> Data {
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw Missing(description: "no Python at \(python): run Tools/test to install the oracles")
        }
        let path = packageRoot.appendingPathComponent("Tools/oracles").appendingPathComponent(script).path
        return try run(python, [path] + arguments, stdin: stdin)
    }

    /// A product built beside the test bundle (e.g. the `tessera` executable).
    public static func product(_ name: String) throws -> String {
        let path = Bundle.main.bundleURL.appendingPathComponent(name).path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw Missing(description: "\(path) is not built: run `swift build --build-tests` first (Tools/test does)")
        }
        return path
    }

    /// Runs a command and returns its exit status, standard output and standard error.
    public static func runCapturing(_ executable: String, _ arguments: [String]) throws -> (status: Int32, out: Data, err: Data) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let outURL = dir.appendingPathComponent("out"), errURL = dir.appendingPathComponent("err")
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        try process.run()
        process.waitUntilExit()
        return (process.terminationStatus, try Data(contentsOf: outURL), try Data(contentsOf: errURL))
    }

    /// The path of a command on PATH (e.g. `dcmdump`), or an error saying how to install it.
    public static func tool(_ name: String) throws -> String {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw Missing(description: "\(name) is not installed: run Tools/test")
    }
}
