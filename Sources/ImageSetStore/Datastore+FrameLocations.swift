import Synchronization

/// Where a frame request's bytes are: the current instance row (with what the request's audit
/// record notes of it) and the byte ranges of its frames in `instance.framesBlob`.
public struct FrameLocation: Sendable {
    public let instance: InstanceRecord
    public let frames: [FrameRecord]
}

/// What frame requests looked up in the index, so that a viewer's thousands of requests for one
/// series cost a dictionary lookup each instead of two index queries (Docs/store.md, "Frame
/// locations"). Two maps:
/// - (study, series, SOP, scope) → location, kept under the index's `localChangeGeneration` of the
///   moment the lookup started and used only while the generation is still that one. Only an
///   index whose writes are all this process's has a generation (SQLite under the folder lock);
///   any commit touching instance, image set or frame rows moves it, so a deleted or replaced
///   instance is never served from here.
/// - (instance row id, frames blob) → frame ranges, for every index. An instance row is never
///   changed in place (a replacement is a new row; a transcoded copy a new frames blob), and the
///   ranges depend only on the blob's bytes, so this is right whoever wrote the row; which row is
///   current is still asked of the index on each request where there is no generation (replicas).
public final class FrameLocationCache: Sendable {
    struct Key: Hashable {
        let study: String, series: String?, sop: String
        let scope: ImageSetScope
    }
    struct Row: Hashable {
        let id: Int64
        let blob: BlobID
    }
    private struct State {
        var locations: [Key: (generation: UInt64, location: FrameLocation)] = [:]
        var frames: [Row: [FrameRecord]] = [:]
        var frameCount = 0
    }
    private let state = Mutex(State())
    /// Frame records (a few dozen bytes each) and locations (an instance row each, about a
    /// kilobyte) held at most; beyond either the map starts again empty.
    let capacity: Int, locationCapacity: Int

    init(capacity: Int = 2_000_000, locationCapacity: Int = 100_000) {
        self.capacity = capacity
        self.locationCapacity = locationCapacity
    }

    func location(_ key: Key, generation: UInt64) -> FrameLocation? {
        state.withLock { s in
            guard let hit = s.locations[key], hit.generation == generation else { return nil }
            return hit.location
        }
    }

    func frames(_ row: Row) -> [FrameRecord]? { state.withLock { $0.frames[row] } }

    func store(_ location: FrameLocation, row: Row, key: Key?, generation: UInt64?) {
        state.withLock { s in
            if s.frameCount + location.frames.count > capacity {
                s.frames.removeAll()
                s.frameCount = 0
            }
            if s.frames.updateValue(location.frames, forKey: row) == nil { s.frameCount += location.frames.count }
            if let key, let generation {
                if s.locations.count >= locationCapacity { s.locations.removeAll(keepingCapacity: true) }
                s.locations[key] = (generation, location)
            }
        }
    }

    /// Entries held (for tests).
    var count: (locations: Int, frameRows: Int) { state.withLock { ($0.locations.count, $0.frames.count) } }
}

extension Datastore {
    /// Wraps each index call a lookup makes (the server's metrics time them by operation name).
    public typealias IndexCallMeasure = (_ operation: String, _ call: () async throws -> Void) async throws -> Void

    /// What `frameLocation` answers, when it answers from memory: a location looked up earlier under
    /// the index's change generation, which still stands. Nil otherwise (nothing looked up yet,
    /// something committed since, an index without a generation such as PostgreSQL's): then only
    /// `frameLocation` knows. For callers that cannot wait (the stored-frame fast path).
    public func cachedFrameLocation(study: String, series: String?, sop: String, scope: ImageSetScope) -> FrameLocation? {
        guard let generation = index.localChangeGeneration else { return nil }
        return frameLocations.location(FrameLocationCache.Key(study: study, series: series, sop: sop, scope: scope), generation: generation)
    }

    /// The current instance `sop` of the series (as `scope` sees it) and its frames' byte ranges;
    /// nil when there is none. Answers from `frameLocations` while the index says nothing changed;
    /// the index calls it does make go through `measure` ("currentInstances", "frames").
    public func frameLocation(study: String, series: String?, sop: String, scope: ImageSetScope,
                              measure: IndexCallMeasure = { _, call in try await call() }) async throws -> FrameLocation? {
        // Read before the lookup: a commit during it moves the generation past what is stored.
        let generation = index.localChangeGeneration
        let key = FrameLocationCache.Key(study: study, series: series, sop: sop, scope: scope)
        if let generation, let hit = frameLocations.location(key, generation: generation) { return hit }
        var found: [InstanceRecord] = []
        try await measure("currentInstances") { found = try await index.currentInstances(study: study, series: series, sop: sop, scope: scope) }
        guard let instance = found.first else { return nil }
        let row = FrameLocationCache.Row(id: instance.id, blob: instance.framesBlob)
        if let frames = frameLocations.frames(row) {
            let location = FrameLocation(instance: instance, frames: frames)
            if generation != nil { frameLocations.store(location, row: row, key: key, generation: generation) }
            return location
        }
        var frames: [FrameRecord] = []
        try await measure("frames") { frames = try await index.frames(of: instance.id) }
        let location = FrameLocation(instance: instance, frames: frames)
        frameLocations.store(location, row: row, key: key, generation: generation)
        return location
    }
}
