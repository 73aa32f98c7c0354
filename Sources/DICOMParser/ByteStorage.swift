#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DICOMCore

/// Immutable bytes that a parse reads from and that lazily-read values point back into.
///
/// Files are memory-mapped, so a header parse touches only the pages it reads: Pixel Data pages
/// are never faulted in unless someone asks for them. The storage lives as long as any data set
/// or bulk reference that points into it.
public final class ByteStorage: @unchecked Sendable {
    // Safety: the memory is written once, before `init` returns, and only read afterwards.
    public let bytes: UnsafeRawBufferPointer
    private let release: Release
    /// The mapped file, kept open so that scattered small reads (fragment item headers) can use
    /// `pread` instead of faulting pages in: each fault maps a whole fault-around window, and over
    /// the 1,024 fragments of a 1 GiB file that is tens of megabytes of resident memory.
    private var fileDescriptor: Int32 = -1

    private enum Release {
        case none
        case unmap
        case free
        case keep([UInt8])
    }

    public var count: Int { bytes.count }

    private init(bytes: UnsafeRawBufferPointer, release: Release) {
        self.bytes = bytes
        self.release = release
    }

    deinit {
        guard let base = bytes.baseAddress else { return }
        switch release {
        case .none: break
        case .unmap: munmap(UnsafeMutableRawPointer(mutating: base), bytes.count)
        case .free: base.deallocate()
        case .keep: break
        }
        if fileDescriptor >= 0 { close(fileDescriptor) }
    }

    /// Reads 8 bytes at `offset` without touching the mapping when the storage is a mapped file.
    /// The caller has checked that `offset + 8 <= count`.
    func read8(at offset: Int) -> (UInt32, UInt32) {
        if fileDescriptor >= 0 {
            var buffer: (UInt32, UInt32) = (0, 0)
            let n = withUnsafeMutableBytes(of: &buffer) { pread(fileDescriptor, $0.baseAddress, 8, off_t(offset)) }
            if n == 8 { return buffer }
        }
        return (bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self),
                bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))
    }

    /// A copy of `source` in memory owned by the storage.
    public convenience init(copying source: some Collection<UInt8>) {
        let count = source.count
        guard count > 0 else {
            self.init(bytes: UnsafeRawBufferPointer(start: nil, count: 0), release: .none)
            return
        }
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 16)
        memory.copyBytes(from: source)
        self.init(bytes: UnsafeRawBufferPointer(memory), release: .free)
    }

    /// The bytes of an array, without copying them: the storage keeps the array, unmutated, for as
    /// long as it lives, so its elements stay where they are.
    public convenience init(retaining array: [UInt8]) {
        guard !array.isEmpty else {
            self.init(bytes: UnsafeRawBufferPointer(start: nil, count: 0), release: .none)
            return
        }
        self.init(bytes: array.withUnsafeBytes { $0 }, release: .keep(array))
    }

    /// Takes ownership of memory allocated with `UnsafeMutableRawBufferPointer.allocate`.
    public static func adopting(_ memory: UnsafeMutableRawBufferPointer, count: Int) -> ByteStorage {
        ByteStorage(bytes: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(memory)[0..<count]), release: .free)
    }

    /// Files up to this size are read into memory instead of mapped.
    public static let smallFileSize = 64 * 1024

    /// Maps the file read-only. Files are expected not to shrink while mapped (stored blobs are
    /// immutable; the CLI reads files the user owns).
    public static func map(path: String) throws(DICOMError) -> ByteStorage {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw DICOMError(.io, message: "cannot open: \(String(cString: strerror(errno)))")
        }
        var keepOpen = false
        defer { if !keepOpen { close(fd) } }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw DICOMError(.io, message: "cannot stat: \(String(cString: strerror(errno)))")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw DICOMError(.io, message: "not a regular file")
        }
        let size = Int(info.st_size)
        guard size > 0 else {
            return ByteStorage(bytes: UnsafeRawBufferPointer(start: nil, count: 0), release: .none)
        }
        // Small files are read with one read(2): mapping, faulting in and unmapping them cost more
        // than copying them (a third of a header parse of 39 KB CT files went to mmap and munmap).
        if size <= smallFileSize {
            let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
            var done = 0
            while done < size {
                let n = pread(fd, memory.baseAddress! + done, size - done, off_t(done))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { break }
                done += n
            }
            guard done == size else {
                memory.deallocate()
                throw DICOMError(.io, message: "cannot read: the file changed size while being read")
            }
            return ByteStorage(bytes: UnsafeRawBufferPointer(memory), release: .free)
        }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw DICOMError(.io, message: "cannot map: \(String(cString: strerror(errno)))")
        }
        let storage = ByteStorage(bytes: UnsafeRawBufferPointer(start: base, count: size), release: .unmap)
        storage.fileDescriptor = fd
        keepOpen = true
        return storage
    }

    /// Copies `range` out; nil when the range is not inside the storage.
    public func copy(_ range: Range<Int>) -> [UInt8]? {
        guard range.lowerBound >= 0, range.upperBound <= bytes.count else { return nil }
        return Array(UnsafeRawBufferPointer(rebasing: bytes[range]))
    }
}

/// A value left in place: `length` bytes at `offset` of `storage`.
public struct BulkReference: Sendable {
    public let storage: ByteStorage
    public let offset: Int
    public let length: Int

    public init(storage: ByteStorage, offset: Int, length: Int) {
        self.storage = storage
        self.offset = offset
        self.length = length
    }

    public var range: Range<Int> { offset..<(offset + length) }
    public func load() -> [UInt8] { storage.copy(range) ?? [] }
}
