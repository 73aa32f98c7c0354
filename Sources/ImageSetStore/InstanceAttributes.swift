import DICOMCore
import DICOMParser

/// The attributes the index keeps in typed columns: what QIDO-RS matches and returns
/// (PS3.18 Tables 10.6.1-5 to -7, plus the descriptive ones admins search by), and the
/// patient- and study-level ones that decide which image set an instance joins.
public struct InstanceAttributes: Sendable, Hashable, Codable {
    // Patient and study level.
    public var patientID = "", patientName = "", patientBirthDate = "", patientSex = ""
    public var studyDate = "", studyTime = "", accessionNumber = "", studyID = "", studyDescription = ""
    public var referringPhysicianName = "", institutionName = ""
    // Series level.
    public var modality = "", seriesNumber: Int?, seriesDescription = "", bodyPartExamined = ""
    public var performedProcedureStepStartDate = "", performedProcedureStepStartTime = ""
    // Instance level.
    public var instanceNumber: Int?, rows: Int?, columns: Int?, bitsAllocated: Int?, numberOfFrames: Int?

    public init() {}

    public init(_ ds: DataSet) {
        func s(_ tag: UInt32) -> String { (ds.strings(Tag(tag))?.joined(separator: "\\") ?? "").trimmed(of: " \0") }
        func i(_ tag: UInt32) -> Int? { ds.integer(Tag(tag)).map { Int(clamping: $0) } }
        patientID = s(0x0010_0020); patientName = s(0x0010_0010); patientBirthDate = s(0x0010_0030); patientSex = s(0x0010_0040)
        studyDate = s(0x0008_0020); studyTime = s(0x0008_0030); accessionNumber = s(0x0008_0050); studyID = s(0x0020_0010)
        studyDescription = s(0x0008_1030); referringPhysicianName = s(0x0008_0090); institutionName = s(0x0008_0080)
        modality = s(0x0008_0060); seriesNumber = i(0x0020_0011); seriesDescription = s(0x0008_103E)
        bodyPartExamined = s(0x0018_0015)
        performedProcedureStepStartDate = s(0x0040_0244); performedProcedureStepStartTime = s(0x0040_0245)
        instanceNumber = i(0x0020_0013); rows = i(0x0028_0010); columns = i(0x0028_0011)
        bitsAllocated = i(0x0028_0100); numberOfFrames = i(0x0028_0008)
    }

    /// The attributes that must agree for an instance to join a study's primary image set
    /// (after AWS HealthImaging), with their DICOM keywords.
    public static var groupingKeys: [(keyword: String, value: KeyPath<InstanceAttributes, String>)] { [
        ("PatientID", \.patientID), ("PatientName", \.patientName), ("PatientBirthDate", \.patientBirthDate),
        ("PatientSex", \.patientSex), ("StudyDate", \.studyDate), ("AccessionNumber", \.accessionNumber), ("StudyID", \.studyID),
    ] }

    /// Where `self` (an arriving instance) disagrees with `reference` (an image set) on grouping attributes.
    public func conflicts(with reference: InstanceAttributes) -> [AttributeConflict] {
        Self.groupingKeys.compactMap { key, path in
            self[keyPath: path] == reference[keyPath: path] ? nil
                : AttributeConflict(keyword: key, imageSetValue: reference[keyPath: path], instanceValue: self[keyPath: path])
        }
    }
}

public struct AttributeConflict: Sendable, Hashable, Codable {
    public var keyword: String
    /// The primary image set's value.
    public var imageSetValue: String
    /// The value in the instances of the non-primary image set.
    public var instanceValue: String
}

extension String {
    func trimmed(of set: String) -> String {
        let chars = Set(set.unicodeScalars)
        var s = Substring(self)
        while let f = s.unicodeScalars.first, chars.contains(f) { s = s.dropFirst() }
        while let l = s.unicodeScalars.last, chars.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
