import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Random bits for multipart boundaries, read from the kernel's generator 4 KiB at a time: one
/// `getrandom` system call per boundary (two, for two words) was 1 % of a stored frame's CPU
/// (perf, Docs/performance.md). The bits are the kernel's own, as unpredictable as before; only
/// the system calls are fewer. Falls back to the standard generator when /dev/urandom cannot be read.
final class BoundaryRandomness: Sendable {
    static let shared = BoundaryRandomness()
    private static let words = 512
    private let pool = Mutex<(words: [UInt64], next: Int)>(([], 0))

    func next() -> (UInt64, UInt64) {
        pool.withLock { pool in
            if pool.next + 2 > pool.words.count {
                pool.words = Self.refill() ?? []
                pool.next = 0
                if pool.words.count < 2 {
                    var g = SystemRandomNumberGenerator()
                    return (g.next(), g.next())
                }
            }
            defer { pool.next += 2 }
            return (pool.words[pool.next], pool.words[pool.next + 1])
        }
    }

    private static func refill() -> [UInt64]? {
        let fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var words = [UInt64](repeating: 0, count: Self.words)
        let wanted = Self.words * MemoryLayout<UInt64>.size
        let got = words.withUnsafeMutableBytes { raw -> Int in
            var done = 0
            while done < wanted {
                let n = read(fd, raw.baseAddress! + done, wanted - done)
                if n > 0 { done += n } else if n < 0 && errno == EINTR { continue } else { break }
            }
            return done
        }
        return got == wanted ? words : nil
    }
}
