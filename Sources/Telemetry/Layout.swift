// The segment layout, declared once. Every offset is explicit (Swift struct layout is not
// guaranteed), every integer is little-endian in the machine's native width, and every area
// starts on a 4096-byte page. docs/TELEMETRY.md draws the same table.
//
//   [0]                     header page (4096)          magic, version, offsets, job, model, ready
//   [jobDescriptionOffset]  job-description area        shard layout: one entry per tensor
//   [controlOffset]         control page (4096)         desired state, checkpoint counter
//   [rankHeadersOffset]     rank headers (256 each)     pid, host, heartbeat, state, write index, wait
//   [ringsOffset]           rings (slotCount*256 each)  seqlocked step and event records

/// Byte offsets and sizes of the telemetry segment, version 1.
public enum SegmentLayout {
  /// "TPTOPSEG" read as a little-endian UInt64.
  public static let magic: UInt64 = 0x4745_5350_4F54_5054
  /// Readers refuse any other major version.
  public static let versionMajor: UInt32 = 1
  /// Minor versions only append fields; readers accept any. Minor version 3 adds the header's
  /// features word, the step record's peer-wait word and the node and forwarding words of the
  /// rank header.
  public static let versionMinor: UInt32 = 3
  /// Value of the `ready` word once the creator has written everything ("READY!\0\0").
  public static let readyValue: UInt64 = 0x0000_2159_4441_4552

  public static let pageSize = 4096

  /// Header page field offsets.
  public enum Header {
    public static let size = 4096
    public static let magic = 0  // u64
    public static let versionMajor = 8  // u32
    public static let versionMinor = 12  // u32
    public static let totalSize = 16  // u64, bytes of the whole segment
    public static let headerSize = 24  // u64, = 4096
    public static let jobDescriptionOffset = 32  // u64
    public static let jobDescriptionSize = 40  // u64
    public static let controlOffset = 48  // u64
    public static let controlSize = 56  // u64, = 4096
    public static let rankHeadersOffset = 64  // u64
    public static let rankHeaderStride = 72  // u64, = 256 (128 before minor version 2)
    public static let ringsOffset = 80  // u64
    public static let ringStride = 88  // u64, = slotCount * slotSize
    public static let slotCount = 96  // u64, power of two
    public static let slotSize = 104  // u64, = 256
    public static let creationTimeNs = 112  // u64, CLOCK_REALTIME ns since the epoch
    public static let incarnation = 120  // u64, random nonce chosen at creation
    public static let ownerUID = 128  // u32, effective uid of the creator
    public static let worldSize = 132  // u32
    public static let tp = 136  // u32
    public static let dp = 140  // u32
    public static let totalSteps = 144  // u64
    public static let modelLayers = 152  // u32
    public static let modelHeads = 156  // u32
    public static let modelChannels = 160  // u32
    public static let modelVocab = 164  // u32
    public static let modelPaddedVocab = 168  // u32
    public static let modelMaxSeq = 172  // u32
    public static let modelBatch = 176  // u32
    public static let modelSeq = 180  // u32
    public static let shardCount = 184  // u32
    public static let shardEntrySize = 188  // u32, = 128 + 128 * tp
    public static let creatorPid = 192  // u32
    public static let jobName = 200  // 64 bytes UTF-8, NUL padded
    public static let jobNameCapacity = 64
    public static let presetName = 264  // 32 bytes UTF-8, NUL padded
    public static let presetNameCapacity = 32
    /// u64, `RunFeatures` (minor version 3; 0 before: none on).
    public static let features = 296
    /// Written last, with release ordering, once everything above and the job description are
    /// in place. On its own cache line.
    public static let ready = 512  // u64
  }

  /// Job-description area: `shardCount` entries of `shardEntrySize` bytes each.
  /// An entry is a 128-byte tensor header followed by `tp` 128-byte rank parts.
  public enum Shard {
    public static let headerSize = 128
    public static let name = 0  // 48 bytes
    public static let nameCapacity = 48
    public static let dimensionCount = 48  // u32, 1...4
    public static let split = 52  // i32: 0 replicated, 1 column, 2 row, 3 vocab
    public static let splitDim = 56  // i32, -1 when replicated
    public static let rankCount = 60  // u32, = tp
    public static let shape = 64  // 4 x i64
    public static let maxDimensions = 4

    public static let rankPartSize = 128
    public static let rangeCount = 0  // u32, 0...4 (QKV has 3)
    public static let ranges = 8  // 4 x (i64 start, i64 end exclusive)
    public static let maxRanges = 4
    public static let description = 72  // 56 bytes
    public static let descriptionCapacity = 56

    public static func entrySize(tp: Int) -> Int { headerSize + rankPartSize * tp }
  }

  /// Control page: written by readers (tptop), read by world rank 0 of the job.
  public enum Control {
    public static let size = 4096
    /// u64, `DesiredState`; changed only by compare-and-swap.
    public static let desiredState = 0
    /// u64, incremented by readers; every increase asks for one checkpoint.
    public static let checkpointRequests = 64
    /// u64, the desired state world rank 0 last read (and broadcast).
    public static let observedDesiredState = 128
    /// u64, the checkpoint counter world rank 0 last read.
    public static let observedCheckpointRequests = 136
    /// u64, count of successful control writes (diagnostics).
    public static let writes = 192
    /// u32, the job's own (readers leave it alone): the node leader adds one to wake the node's
    /// paused ranks, which sleep on it with futex(2) (`SegmentWriter.sleepWhilePaused`).
    public static let pausedWake = 256
    /// u32, the job's own: the largest stop signal a sleeping paused rank of this node received,
    /// for its node leader to pass on (0 none).
    public static let pausedSignal = 320
  }

  /// Per-rank header, 256 bytes per world rank (128 before minor version 2). Written only by
  /// that rank.
  public enum RankHeader {
    public static let stride = 256
    public static let writeIndex = 0  // u64, records published so far (next index)
    public static let heartbeatNs = 8  // u64, CLOCK_MONOTONIC ns
    public static let state = 16  // u64, `RunState`
    public static let lastStep = 24  // u64
    public static let ackedDesiredState = 32  // u64, desired state this rank applied
    public static let ackedStep = 40  // u64, step at which it applied it
    public static let checkpointsSaved = 48  // u64
    public static let lastCheckpointStep = 56  // u64
    public static let pid = 64  // u32
    public static let worldRank = 68  // u32
    public static let localRank = 72  // u32
    public static let attached = 76  // u32, = attachedValue once the rank opened the segment
    public static let host = 80  // 48 bytes
    public static let hostCapacity = 48
    public static let attachedValue: UInt32 = 0x5254_4141  // "AATR"
    /// u64 (minor version 2), the collective this rank is blocked in, 0 when none:
    /// kind (bits 0–7, `CollectiveWait.Kind`) | ordinal in its step (bits 8–31) | step (bits 32–63).
    /// Stored with release ordering after `waitSinceNs`.
    public static let waitingIn = 128
    /// u64 (minor version 2), CLOCK_MONOTONIC ns when the rank entered that collective.
    public static let waitSinceNs = 136
    /// u32 (minor version 3), index of the rank's node (0 = world rank 0's node).
    public static let nodeIndex = 144
    /// u32 (minor version 3), `forwardedFlag` when this header and ring are kept by a forwarder
    /// (world rank 0's process) from the rank's messages rather than by the rank itself.
    public static let flags = 148
    public static let forwardedFlag: UInt32 = 1
    /// u64 (minor version 3), records the rank published in its own node's ring, as of its
    /// latest forwarded message (0 for a rank that writes here itself: then `writeIndex` counts
    /// them). `sourceRecords - writeIndex` are records never forwarded here.
    public static let sourceRecords = 152
    /// u64 (minor version 3), of `sourceRecords`, those the rank handed to MPI for forwarding;
    /// `sourceRecords - forwardedRecords` were dropped on the rank because its sends lagged.
    public static let forwardedRecords = 160
    /// u32 (minor version 3), pid of the forwarder (for liveness: `pid` is on another node).
    public static let forwarderPid = 168
    /// u64 each, the rank's accelerator as its writer last saw it (0: no device or unknown; the
    /// Python writer fills them from torch.cuda): allocated, reserved and peak allocated bytes.
    public static let deviceMemoryAllocated = 176
    public static let deviceMemoryReserved = 184
    public static let deviceMemoryPeak = 192
    /// u32, device utilisation in percent + 1 (NVML), 0 unknown.
    public static let deviceUtilization = 200
    /// Words a forwarder copies from the rank's own header as they are (state, steps,
    /// acknowledgements, checkpoints, the collective it waits in); `waitSinceNs` is translated
    /// to the forwarder's clock, `heartbeatNs` is the time of receipt.
    public static let mirroredWords = [state, lastStep, ackedDesiredState, ackedStep, checkpointsSaved, lastCheckpointStep, waitingIn]
  }

  /// A ring slot: a seqlock word and a 248-byte payload ending in a checksum.
  public enum Slot {
    public static let size = 256
    /// u64: 2i+1 while record i is being written, 2i+2 once it is complete, 0 never written.
    public static let seq = 0
    /// Start of the payload that is copied as one block.
    public static let payload = 8
    public static let payloadSize = 248
    public static let kind = 8  // u32: 1 step, 2 event
    public static let eventKind = 12  // u32, `EventKind` for events
    public static let step = 16  // i64
    public static let timestampNs = 24  // u64, CLOCK_MONOTONIC ns
    public static let checksum = 248  // u64 over bytes 8..<248

    public enum Kind {
      public static let step: UInt32 = 1
      public static let event: UInt32 = 2
      public static let tensorStats: UInt32 = 3
    }

    // Step record fields.
    /// u32 (minor version 3), of `commNs` the µs spent waiting for a slower peer (the event
    /// kind's word, unused by step records before; 0 in older segments). `commNs` is the
    /// exposed communication and `allReduceTotalNs` the time collectives were in flight.
    public static let commPeerWaitMicros = 12
    public static let tokens = 32  // i64
    public static let loss = 40  // f32
    public static let lr = 44  // f32
    public static let gradNorm = 48  // f32
    public static let computeBusy = 52  // f32
    public static let gflops = 56  // f32
    public static let rank = 60  // u32, world rank of the writer
    public static let stepNs = 64  // u64
    public static let forwardNs = 72
    public static let backwardNs = 80
    public static let optimizerNs = 88
    public static let commNs = 96
    public static let dataNs = 104
    public static let allReduceCount = 112  // i64
    public static let allReduceBytes = 120
    public static let allReduceTotalNs = 128
    public static let allReduceMaxNs = 136
    public static let rssBytes = 144
    public static let paramBytes = 152
    public static let gradBytes = 160
    public static let optimizerBytes = 168
    public static let activationBytes = 176
    public static let histogram = 184  // 16 x u32 = 64 bytes, ends at 248

    // Event record fields (kind 2).
    public static let textLength = 32  // u32
    public static let eventRank = 36  // u32, world rank of the writer
    public static let text = 40  // UTF-8, up to 208 bytes
    public static let textCapacity = 208

    // Tensor-statistics record fields (kind 3, minor version 1): `eventKind` holds the entry
    // count; entries are (weight norm, gradient norm, update/weight ratio) as 3 x f32 each, for
    // tensors firstTensor ..< firstTensor + count of the writer's local shards.
    public static let statsRank = 32  // u32
    public static let statsFirstTensor = 36  // u32
    public static let statsEntries = 40  // 3 x f32 per entry
    public static let statsCapacity = 17  // entries that fit before the checksum
  }

  /// Default ring length per rank.
  public static let defaultSlotCount = 4096
}
