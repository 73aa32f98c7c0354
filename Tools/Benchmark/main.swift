// Parsing benchmark (Docs/performance.md). `tessera-bench parse PATH… [--repeat N]` parses every
// file up to Pixel Data N times and prints the median rate; `tessera-bench frames FILE` locates all
// frames of a file and prints the time and peak resident memory; `tessera-bench decode FILE… [--repeat N]
// [--threads T]` decodes every frame and prints megapixels/s; `tessera-bench encode --to UID FILE…`
// encodes every (decoded) frame and prints megapixels/s.
#if canImport(Glibc)
import Glibc
#endif
import DICOMCore
import DICOMParser
import PixelData

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func peakRSSMiB() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage) // Glibc imports RUSAGE_SELF as an enum case
    return Double(usage.ru_maxrss) / 1024
}

func fileSize(_ path: String) -> Int {
    var st = stat()
    return stat(path, &st) == 0 ? Int(st.st_size) : 0
}

/// Regular files under the given paths, recursively, sorted.
func collect(_ paths: [String]) -> [String] {
    var out: [String] = []
    for path in paths {
        var st = stat()
        guard stat(path, &st) == 0 else { continue }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            guard let dir = opendir(path) else { continue }
            var children: [String] = []
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
                if name != "." && name != ".." { children.append(path + "/" + name) }
            }
            closedir(dir)
            out += collect(children.sorted())
        } else if (st.st_mode & S_IFMT) == S_IFREG {
            out.append(path)
        }
    }
    return out
}

var args = Array(CommandLine.arguments.dropFirst())
guard let mode = args.first else {
    print("usage: tessera-bench parse PATH… [--repeat N] | frames FILE")
    exit(2)
}
args.removeFirst()

switch mode {
case "parse":
    var repeats = 5
    if let i = args.firstIndex(of: "--repeat"), i + 1 < args.count, let n = Int(args[i + 1]) {
        repeats = n
        args.removeSubrange(i...(i + 1))
    }
    let files = collect(args)
    let bytes = files.reduce(0) { $0 + fileSize($1) }
    var times: [Double] = []
    var failures = 0
    var elements = 0
    for _ in 0..<repeats {
        failures = 0
        elements = 0
        let start = now()
        for f in files {
            if let file = try? DICOMFile.read(path: f, options: .headerOnly) {
                elements += file.dataSet.count
            } else {
                failures += 1
            }
        }
        times.append(now() - start)
    }
    let median = times.sorted()[times.count / 2]
    let filesPerSecond = Double(files.count) / median
    let mbPerSecond = Double(bytes) / 1e6 / median
    print("files=\(files.count) bytes=\(bytes) unreadable=\(failures) elements=\(elements) median_s=\(median) files_per_s=\(Int(filesPerSecond)) MB_per_s=\(Int(mbPerSecond))")
case "frames":
    guard let path = args.first else { print("frames needs a file"); exit(2) }
    let baseline = peakRSSMiB()
    let start = now()
    do {
        let table = try FrameTable(file: try DICOMFile.read(path: path))
        let elapsed = (now() - start) * 1000
        let total = table.frames.reduce(0) { $0 + $1.length }
        print("file_bytes=\(fileSize(path)) frames=\(table.frames.count) frame_bytes=\(total) elapsed_ms=\(elapsed) peak_rss_MiB=\(peakRSSMiB()) rss_before_MiB=\(baseline)")
    } catch {
        print("error: \(error)")
        exit(1)
    }
case "decode", "encode":
    var repeats = 5, threads = 1
    var target = ""
    while let i = args.firstIndex(where: { $0.hasPrefix("--") }), i + 1 < args.count {
        switch args[i] {
        case "--repeat": repeats = Int(args[i + 1]) ?? repeats
        case "--threads": threads = Int(args[i + 1]) ?? threads
        case "--to": target = args[i + 1]
        default: print("unknown option \(args[i])"); exit(2)
        }
        args.removeSubrange(i...(i + 1))
    }
    var tables: [FrameTable] = []
    for f in collect(args) {
        do { tables.append(try FrameTable(file: try DICOMFile.read(path: f))) } catch { print("skip \(f): \(error)") }
    }
    var pixels = 0
    for t in tables { pixels += t.description.rows * t.description.columns * t.frames.count }
    var work: [() throws -> Void] = []
    if mode == "decode" {
        for t in tables {
            let encoded = t.frames.indices.compactMap { try? t.encodedFrame($0) }
            var decoder: any PixelDecoder = NativeCodec()
            if t.transferSyntax.isEncapsulated, let d = PixelCodecs.decoder(for: t.transferSyntax.uid) { decoder = d }
            if t.transferSyntax.uid.hasPrefix("1.2.840.10008.1.2.4.9") { decoder = OpenJPEGCodec(threads: threads) }
            let d = t.description
            work.append { for e in encoded { _ = try decoder.decode(e, description: d) } }
        }
    } else {
        guard let encoder = PixelCodecs.encoder(for: target) else { print("no encoder for \(target)"); exit(2) }
        for t in tables {
            let decoded = try t.frames.indices.map { try t.decodeFrame($0) }
            work.append { for f in decoded { _ = try encoder.encode(f.bytes, description: f.description) } }
        }
    }
    var times: [Double] = []
    for _ in 0..<repeats {
        let start = now()
        do { for w in work { try w() } } catch { print("error: \(error)"); exit(1) }
        times.append(now() - start)
    }
    let median = times.sorted()[times.count / 2]
    let megapixels = Double(pixels) / 1e6
    let rate = megapixels / median
    print("\(mode) files=\(tables.count) megapixels=\(megapixels) median_s=\(median) MP_per_s=\(Int(rate.rounded())) threads=\(threads)")
case "render":
    // Thumbnail cost: every frame rendered to a viewport from a full decode (what /rendered did
    // before) and with only the resolution levels the viewport needs, in the same run.
    var repeats = 5, side = 128
    while let i = args.firstIndex(where: { $0.hasPrefix("--") }), i + 1 < args.count {
        switch args[i] {
        case "--repeat": repeats = Int(args[i + 1]) ?? repeats
        case "--viewport": side = Int(args[i + 1]) ?? side
        default: print("unknown option \(args[i])"); exit(2)
        }
        args.removeSubrange(i...(i + 1))
    }
    var options = RenderingOptions()
    options.viewport = .init(width: side, height: side)
    var jobs: [(encoded: [UInt8], uid: String, description: PixelDescription, display: DisplayAttributes)] = []
    for f in collect(args) {
        guard let file = try? DICOMFile.read(path: f), let t = try? FrameTable(file: file) else { print("skip \(f)"); continue }
        for i in t.frames.indices {
            if let e = try? t.encodedFrame(i) { jobs.append((e, t.transferSyntax.uid, t.description, DisplayAttributes(dataSet: file.dataSet))) }
        }
    }
    func time(_ body: () throws -> Void) -> Double {
        var times: [Double] = []
        for _ in 0..<repeats {
            let start = now()
            do { try body() } catch { print("error: \(error)"); exit(1) }
            times.append(now() - start)
        }
        return times.sorted()[times.count / 2]
    }
    let full = time { for j in jobs { _ = try Renderer.render(try PixelCodecs.decode(j.encoded, transferSyntax: j.uid, description: j.description), display: j.display, options: options) } }
    let reduced = time { for j in jobs { _ = try Renderer.render(encoded: j.encoded, transferSyntax: j.uid, description: j.description, display: j.display, options: options) } }
    var worst = 0
    for j in jobs {
        let a = try Renderer.render(try PixelCodecs.decode(j.encoded, transferSyntax: j.uid, description: j.description), display: j.display, options: options)
        let b = try Renderer.render(encoded: j.encoded, transferSyntax: j.uid, description: j.description, display: j.display, options: options)
        worst = max(worst, zip(a.pixels, b.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0)
    }
    let reduce = jobs.first.map { Renderer.reduceFactor(options, description: $0.description) } ?? 0
    print("render frames=\(jobs.count) viewport=\(side) reduce=\(reduce) full_ms_per_frame=\(full / Double(max(jobs.count, 1)) * 1000) reduced_ms_per_frame=\(reduced / Double(max(jobs.count, 1)) * 1000) ratio=\(reduced / full) max_abs_diff=\(worst)")
default:
    print("unknown mode \(mode)")
    exit(2)
}
