import DICOMCore
@testable import DICOMweb
import Foundation
import HTTPTypes
import HummingbirdTesting
import ImageSetStore
import NIOCore
import TestSupport
import XCTest

/// QIDO-RS conformance (issue 11): person-name groups, path UIDs, name matching, private
/// includefield, paging.
final class QIDOConformanceTests: DICOMwebTestCase {
    func get(_ client: any TestClientProtocol, _ uri: String) async throws -> (HTTPResponse.Status, [[String: Any]], [String]) {
        try await client.execute(uri: uri, method: .get) { r in
            (r.status, (try? Self.json(r.body)) as? [[String: Any]] ?? [], r.headers[values: HTTPField.Name("Warning")!])
        }
    }

    /// A query value percent-encoded (`=`, `^`, `\` and non-ASCII letters included).
    static func q(_ value: String) -> String {
        value.addingPercentEncoding(withAllowedCharacters: CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789*?.-_")) ?? value
    }

    static func canonical(_ json: Any) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys, .fragmentsAllowed]), as: UTF8.self)
    }

    // PS3.18 §F.2.2: a PN value is an object of its Alphabetic / Ideographic / Phonetic component
    // groups, only the groups present (PS3.5 §6.2.1.1: trailing empty groups may be omitted).
    // Oracle: pydicom's to_json_dict() of the very files stored.
    func testPersonNamesComeBackAsComponentGroupsLikePydicom() async throws {
        let names = [
            ("Yamada^Tarou=山田^太郎=やまだ^たろう", "Ref^Doc=参照^医師"),
            ("Wang^XiaoDong=王^小東=", "A==C"),
            ("=Kim", "Single^Group"),
        ]
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-pn-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let files = try names.enumerated().map { n, name in
            let study = "1.2.3.50.\(n + 1)"
            let bytes = try Self.instance(sop: "\(study).1.1", study: study, series: "\(study).1", patientName: name.0,
                                          extra: [Self.text(0x0008_0005, .CS, "ISO_IR 192"), Self.text(0x0008_0090, .PN, name.1)])
            let path = dir.appendingPathComponent("\(n).dcm").path
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            return (study: study, path: path, bytes: bytes)
        }
        let oracle = try Corpus.oracle("pydicom_json.py", [], stdin: Data(files.map(\.path).joined(separator: "\n").utf8))
        let decoded = try XCTUnwrap(JSONSerialization.jsonObject(with: oracle) as? [String: [String: Any]])
        // pydicom's elements, by path and tag, as canonical JSON text.
        let expected = try decoded.mapValues { json in try ["00100010", "00080090"].reduce(into: [String: String]()) { out, tag in
            out[tag] = try Self.canonical(XCTUnwrap(json[tag], tag))
        } }
        try await withApp { client in
            _ = try await self.stow(client, files.map(\.bytes))
            for file in files {
                let theirs = try XCTUnwrap(expected[file.path])
                for path in ["/dicomweb/studies?StudyInstanceUID=\(file.study)", "/dicomweb/instances?StudyInstanceUID=\(file.study)"] {
                    let (status, rows, _) = try await self.get(client, path)
                    XCTAssertEqual(status, .ok)
                    let row = try XCTUnwrap(rows.first, path)
                    for tag in ["00100010", "00080090"] {
                        XCTAssertEqual(try Self.canonical(XCTUnwrap(row[tag], tag)), theirs[tag], "\(path) \(tag)")
                    }
                }
            }
            let (_, rows, _) = try await self.get(client, "/dicomweb/studies?StudyInstanceUID=1.2.3.50.1")
            let groups = try XCTUnwrap(((rows.first?["00100010"] as? [String: Any])?["Value"] as? [[String: String]])?.first)
            XCTAssertEqual(groups, ["Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎", "Phonetic": "やまだ^たろう"])
        }
    }

    // Docs/api.md: a UID that is not valid per PS3.5 §9.1 is a 400 before anything is looked up,
    // in the path as in the query (PS3.18 §10.6.1: the path names a study or series by its UID).
    func testInvalidUIDInThePathIsBadRequest() async throws {
        try await withApp { client in
            _ = try await self.stow(client, [try Self.instance(sop: "1.2.3.51.1")])
            for path in ["/studies/not-a-uid/series", "/studies/not-a-uid/instances",
                         "/studies/\(Self.study)/series/not-a-uid/instances", "/studies/1..2/series"] {
                try await client.execute(uri: "/dicomweb" + path, method: .get) { r in
                    XCTAssertEqual(r.status, .badRequest, path)
                    XCTAssertEqual(r.headers[.contentType], "application/json", path)
                    XCTAssertNotNil((try? Self.json(r.body) as? [String: Any])?["error"], path)
                }
            }
            let (status, rows, _) = try await self.get(client, "/dicomweb/studies/\(Self.study)/series/\(Self.series)/instances")
            XCTAssertEqual(status, .ok)
            XCTAssertEqual(rows.count, 1)
        }
    }

    // PS3.4 C.2.2.2.1 / C.2.2.2.4 (single value and wildcard matching of PN), PS3.5 §6.2.1.1
    // (trailing empty components are insignificant), PS3.18 §8.3.4 (fuzzymatching); Docs/api.md:
    // person names match case-insensitively in every script, fuzzy matching takes each word of
    // the value as the prefix of some name component.
    func testPersonNameMatchingFoldsCaseInEveryScriptAndFuzzyMatchesComponents() async throws {
        try await withApp { client in
            let names = ["Family^Given^^^", "Доевский^Иван", "MÜLLER^HANS", "Παπαδόπουλος^Νίκος", "Smith^John"]
            _ = try await self.stow(client, try names.enumerated().map { n, name in
                try Self.instance(sop: "1.2.3.52.\(n + 1).1.1", study: "1.2.3.52.\(n + 1)", series: "1.2.3.52.\(n + 1).1",
                                  patientName: name, extra: [Self.text(0x0008_0005, .CS, "ISO_IR 192")])
            })
            func found(_ value: String, fuzzy: Bool = false) async throws -> [String] {
                let (status, rows, _) = try await self.get(client, "/dicomweb/studies?PatientName=\(Self.q(value))\(fuzzy ? "&fuzzymatching=true" : "")")
                XCTAssertEqual(status, .ok, value)
                return rows.compactMap { ((($0["00100010"] as? [String: Any])?["Value"] as? [[String: String]])?.first?["Alphabetic"]) }.sorted()
            }
            let cases: [(String, Bool, [String])] = [
                ("Family^Given", true, ["Family^Given^^^"]),
                ("fam^giv", true, ["Family^Given^^^"]),
                ("GIV fam", true, ["Family^Given^^^"]),
                ("Family^Given", false, ["Family^Given^^^"]),   // A^B^^^ is A^B
                ("fam^giv", false, []),
                ("family^given^^", false, ["Family^Given^^^"]),
                ("ДОЕ*", false, ["Доевский^Иван"]),
                ("доевский^иван", false, ["Доевский^Иван"]),
                ("иван", true, ["Доевский^Иван"]),
                ("müller^hans", false, ["MÜLLER^HANS"]),
                ("Müll*", false, ["MÜLLER^HANS"]),
                ("ΠΑΠΑΔΌΠΟΥΛΟΣ*", false, ["Παπαδόπουλος^Νίκος"]),  // Σ folds with the final ς
                ("ΝΊΚ", true, ["Παπαδόπουλος^Νίκος"]),
                ("νικ", true, []),                               // accents are kept: only case folds
                ("smith*", false, ["Smith^John"]),
                ("S?ith^J*", false, ["Smith^John"]),
                ("john", true, ["Smith^John"]),
                ("john", false, []),
                ("xyz", true, []),
            ]
            for (value, fuzzy, expected) in cases {
                let got = try await found(value, fuzzy: fuzzy)
                XCTAssertEqual(got, expected, "\(value) fuzzy=\(fuzzy)")
            }
        }
    }

    // PS3.18 §10.6.3.3.1-3: a Private Data Element given as an include parameter comes back with
    // its Private Creator Element (and not with other blocks' creators).
    func testPrivateIncludefieldBringsItsPrivateCreator() async throws {
        try await withApp { client in
            let extra = [Self.text(0x0009_0010, .LO, "TESSERA TEST"), Self.text(0x0009_0011, .LO, "OTHER BLOCK"),
                         Self.text(0x0009_1001, .LO, "private value"), Self.text(0x0009_1101, .LO, "other value")]
            _ = try await self.stow(client, [try Self.instance(sop: "1.2.3.53.1", extra: extra)])
            for level in ["instances", "studies"] {
                let (status, rows, _) = try await self.get(client, "/dicomweb/\(level)?StudyInstanceUID=\(Self.study)&includefield=00091001")
                XCTAssertEqual(status, .ok)
                let row = try XCTUnwrap(rows.first, level)
                XCTAssertEqual(((row["00091001"] as? [String: Any])?["Value"] as? [String])?.first, "private value", level)
                XCTAssertEqual(((row["00090010"] as? [String: Any])?["Value"] as? [String])?.first, "TESSERA TEST", level)
                XCTAssertNil(row["00090011"], level)
                XCTAssertNil(row["00091101"], level)
            }
        }
    }

    // PS3.18 §8.3.4.4.1 (paging) and §10.6.3.2: without `limit` the origin server returns at most
    // its default page and, when matches remain, a `Warning: 299` saying so; a `limit` above the
    // maximum is clamped, with a Warning; the index is asked for one row more than the page.
    func testDefaultLimitAndClampedLimitWarn() async throws {
        try await withApp { client in
            let n = SearchQuery.defaultLimit + 1
            _ = try await self.stow(client, try (1...n).map { try Self.instance(sop: "1.2.3.54.\($0)") })
            let base = "/dicomweb/studies/\(Self.study)/series/\(Self.series)/instances"
            let (_, page, warnings) = try await self.get(client, base)
            XCTAssertEqual(page.count, SearchQuery.defaultLimit)
            XCTAssertEqual(warnings.count, 1)
            XCTAssertTrue(warnings.first?.hasPrefix("299 ") ?? false)
            XCTAssertTrue(warnings.first?.contains("additional results") ?? false, "\(warnings)")
            let (_, rest, none) = try await self.get(client, base + "?offset=1")
            XCTAssertEqual(rest.count, SearchQuery.defaultLimit, "exactly a page left: nothing remains")
            XCTAssertEqual(none, [])
            let (_, all, asked) = try await self.get(client, base + "?limit=\(n)")
            XCTAssertEqual(all.count, n)
            XCTAssertEqual(asked, [])
            let (_, chosen, chosenWarnings) = try await self.get(client, base + "?limit=10")
            XCTAssertEqual(chosen.count, 10)
            XCTAssertEqual(chosenWarnings, [], "a page the client sized is not a truncation")
            let (_, clamped, clampWarnings) = try await self.get(client, base + "?limit=\(SearchQuery.maximumLimit + 1)")
            XCTAssertEqual(clamped.count, n)
            XCTAssertEqual(clampWarnings.count, 1)
            XCTAssertTrue(clampWarnings.first?.contains("exceeds the maximum of \(SearchQuery.maximumLimit)") ?? false, "\(clampWarnings)")
        }
    }
}
