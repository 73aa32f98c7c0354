// swift-tools-version:6.0
import PackageDescription

// Layers, bottom to top; each target imports only those below it (Docs/architecture.md).
let package = Package(
    name: "Tessera",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "tessera", targets: ["tessera"]),
        .library(name: "DICOMParser", targets: ["DICOMParser"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.0"),
        .package(url: "https://github.com/adam-fowler/compress-nio", from: "1.4.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.8.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // Already in the graph through Hummingbird; named for the change feed's streams, which end on a graceful shutdown.
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
    ],
    targets: [
        .target(name: "DICOMCore"),
        .target(name: "DICOMDictionary", dependencies: ["DICOMCore"]),
        .target(
            name: "DICOMParser",
            dependencies: [
                "DICOMCore", "DICOMDictionary",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "CompressNIO", package: "compress-nio"),
            ]
        ),
        // System libraries, found through pkg-config; nothing but their headers lives here.
        .systemLibrary(name: "COpenJPEG", pkgConfig: "libopenjp2", providers: [.apt(["libopenjp2-7-dev"])]),
        .systemLibrary(name: "CJPEG", pkgConfig: "libjpeg", providers: [.apt(["libjpeg-dev"])]),
        .systemLibrary(name: "CCharLS", pkgConfig: "charls", providers: [.apt(["libcharls-dev"])]),
        // A small C++ shim exposing OpenJPH (HTJ2K) through a C interface; Debian's openjph.pc is
        // empty, so the library is named directly.
        .target(
            name: "COpenJPH",
            linkerSettings: [.linkedLibrary("openjph")]
        ),
        // C glue over those libraries (memory streams, longjmp error handling); see include/ccodecs.h.
        // 12-bit JPEG goes through DCMTK's libijg12 (Debian: libdcmtk-dev); it has no pkg-config file
        // and Debian ships no headers for it, so DCMTK's are in Sources/CCodecs/ijg12 and the library
        // is named directly.
        .target(name: "CCodecs", dependencies: ["COpenJPEG", "CJPEG", "CCharLS"], linkerSettings: [.linkedLibrary("ijg12")]),
        .target(
            name: "PixelData",
            dependencies: ["DICOMParser", "CCodecs", "COpenJPH", .product(name: "CompressNIO", package: "compress-nio"),
                           .product(name: "NIOCore", package: "swift-nio")]
        ),
        // The system of record: ingest, the index (GRDB/SQLite behind a protocol) and the blob store.
        .target(
            name: "ImageSetStore",
            dependencies: [
                "DICOMParser", "PixelData",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // The index on PostgreSQL (postgres-nio): a second implementation of the store's ImageSetIndex and
        // AccessKeyIndex, for several `tessera serve` replicas on one database.
        .target(
            name: "PostgresIndex",
            dependencies: [
                "ImageSetStore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // Blobs on the S3 API (SigV4 over AsyncHTTPClient): a second implementation of the store's BlobStore.
        .target(
            name: "ObjectStorage",
            dependencies: [
                "ImageSetStore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // Who is asking: API keys (hashes in the index) and OIDC bearer JWTs (jwt-kit, JWKS from a
        // file or a URL), mapped to roles; the route policy that says which role may do what.
        .target(
            name: "AccessControl",
            dependencies: [
                "ImageSetStore",
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // Webhooks: delivery of the change feed to subscribers, signed (swift-crypto) POSTs over
        // AsyncHTTPClient with backoff, one task per subscription, leases in the index (Docs/events.md).
        .target(
            name: "Webhooks",
            dependencies: [
                "ImageSetStore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // DICOMweb (STOW-RS, QIDO-RS, WADO-RS) and the image-set API over HTTP.
        .target(
            name: "DICOMweb",
            dependencies: [
                "ImageSetStore", "PixelData", "DICOMParser", "AccessControl",
                .product(name: "HummingbirdAuth", package: "hummingbird-auth"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdHTTP2", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .executableTarget(
            name: "tessera",
            dependencies: [
                "DICOMParser", "PixelData", "ImageSetStore", "DICOMweb", "AccessControl", "PostgresIndex", "ObjectStorage", "Webhooks",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Tools: the reader's libFuzzer target and the parsing benchmark (Docs/fuzzing.md, Docs/performance.md).
        .executableTarget(name: "tessera-fuzz", dependencies: ["DICOMParser", "PixelData", "DICOMweb"], path: "Tools/Fuzz"),
        .executableTarget(name: "tessera-bench", dependencies: ["DICOMParser", "PixelData"], path: "Tools/Benchmark"),
        .target(name: "TestSupport", dependencies: ["DICOMParser"], path: "Tests/TestSupport"),
        // Datastores on the backends a test run asks for (TESSERA_TEST_INDEX, TESSERA_TEST_BLOBS): one
        // suite runs against SQLite + files and against PostgreSQL + S3 (Docs/architecture.md).
        .target(name: "StoreTestSupport", dependencies: ["ImageSetStore", "PostgresIndex", "ObjectStorage", "TestSupport",
                                                   .product(name: "PostgresNIO", package: "postgres-nio")],
                path: "Tests/StoreTestSupport"),
        .testTarget(name: "DICOMCoreTests", dependencies: ["DICOMCore"]),
        .testTarget(name: "DICOMDictionaryTests", dependencies: ["DICOMDictionary", "TestSupport"]),
        .testTarget(name: "DICOMParserTests", dependencies: ["DICOMParser", "TestSupport"]),
        .testTarget(name: "PixelDataTests", dependencies: ["PixelData", "TestSupport"]),
        .testTarget(name: "ImageSetStoreTests", dependencies: [
            "ImageSetStore", "TestSupport", "StoreTestSupport", "PostgresIndex", "ObjectStorage",
            .product(name: "GRDB", package: "GRDB.swift"), .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "PostgresNIO", package: "postgres-nio"), .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "DICOMwebTests", dependencies: [
            "DICOMweb", "ImageSetStore", "TestSupport", "AccessControl", "StoreTestSupport", "Webhooks",
            .product(name: "HummingbirdTesting", package: "hummingbird"),
            .product(name: "JWTKit", package: "jwt-kit"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
    ],
    cxxLanguageStandard: .cxx17
)
