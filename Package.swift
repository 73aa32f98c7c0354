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
        .package(url: "https://github.com/adam-fowler/compress-nio", from: "1.4.0"),
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
        .executableTarget(
            name: "tessera",
            dependencies: [
                "DICOMParser",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .target(name: "TestSupport", dependencies: ["DICOMParser"], path: "Tests/TestSupport"),
        .testTarget(name: "DICOMCoreTests", dependencies: ["DICOMCore"]),
        .testTarget(name: "DICOMDictionaryTests", dependencies: ["DICOMDictionary", "TestSupport"]),
        .testTarget(name: "DICOMParserTests", dependencies: ["DICOMParser", "TestSupport"]),
    ]
)
