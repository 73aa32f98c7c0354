import ArgumentParser

@main
struct Tessera: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tessera",
        abstract: "Tessera: a DICOM store and DICOMweb server.",
        subcommands: [DumpCommand.self, JSONCommand.self, FrameCommand.self, TranscodeCommand.self]
    )
}
