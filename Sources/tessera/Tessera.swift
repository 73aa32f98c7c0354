import ArgumentParser
import DICOMCore

@main
struct Tessera: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tessera",
        abstract: "Tessera: a DICOM store and DICOMweb server.",
        version: TesseraVersion.string,
        subcommands: [DumpCommand.self, JSONCommand.self, FrameCommand.self, TranscodeCommand.self,
                      ImportCommand.self, ImageSetsCommand.self, ImageSetCommand.self, VerifyCommand.self, PruneCommand.self,
                      ServeCommand.self, KeysCommand.self, SubscriptionsCommand.self, AuditCommand.self, BackupCommand.self, RestoreCommand.self]
    )
}
