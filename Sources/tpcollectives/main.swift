// tpcollectives: checks and times the data collectives of TPComm on real MPI ranks, with both
// algorithms (`mpi`, OpenMPI's own; `ring`, the hand-written one).
//
//   mpirun -np P tpcollectives check      every collective against a sum computed independently
//                                         in double precision; results bitwise identical on all
//                                         ranks; exit 1 on any mismatch
//   mpirun -np P tpcollectives bench      median latency per collective, algorithm and size, as
//                                         BENCH lines (rank 0 prints)

import Foundation
import JobSchema
import TPComm

/// Element i of rank r's input: small integers over 64, so sums of up to 2^18 of them are exact
/// in float and the expected values need no tolerance.
func input(rank r: Int, _ i: Int) -> Float { Float((r &* 7919 &+ i &* 104_729) % 129) / 64 - 1 }

/// FNV-1a over the bits of `n` floats: compared across ranks to show identical results.
func fingerprint(_ p: UnsafePointer<Float>, _ n: Int) -> Int64 {
  var h: UInt64 = 0xcbf2_9ce4_8422_2325
  for i in 0..<n { h = (h ^ UInt64(p[i].bitPattern)) &* 0x100_0000_01b3 }
  return Int64(bitPattern: h)
}

/// Runs every check; returns the number that failed on this rank (each is printed).
func check(_ comm: Communicator) -> Int {
  var failures = 0
  func expect(_ ok: Bool, _ what: @autoclosure () -> String, on comm: Communicator) {
    if !ok {
      failures += 1
      print("rank \(comm.rank): \(what())")
    }
  }
  let p = comm.size, r = comm.rank
  for algorithm in CollectiveAlgorithm.allCases {
    comm.algorithm = algorithm
    for n in [1, 7, 1000, 65_537] {
      let buf = UnsafeMutablePointer<Float>.allocate(capacity: n * p)
      let out = UnsafeMutablePointer<Float>.allocate(capacity: n * p)
      defer { buf.deallocate(); out.deallocate() }
      // all-reduce, sum and max
      for op in [ReduceOp.sum, .max] {
        for i in 0..<n { buf[i] = input(rank: r, i) }
        comm.allReduce(buf, count: n, op)
        var bad = 0
        for i in 0..<n {
          let values = (0..<p).map { Double(input(rank: $0, i)) }
          let want = op == .sum ? values.reduce(0, +) : values.max()!
          if Double(buf[i]) != want { bad += 1 }
        }
        expect(bad == 0, "\(algorithm) all-reduce \(op) of \(n): \(bad) wrong elements", on: comm)
        let prints = comm.allGather(fingerprint(buf, n))
        expect(Set(prints).count == 1, "\(algorithm) all-reduce \(op) of \(n): ranks differ", on: comm)
      }
      // reduce-scatter: block r of the sum lands on rank r
      for i in 0..<(n * p) { buf[i] = input(rank: r, i) }
      comm.reduceScatter(buf, count: n, into: out)
      var bad = 0
      for i in 0..<n {
        let want = (0..<p).map { Double(input(rank: $0, r * n + i)) }.reduce(0, +)
        if Double(out[i]) != want { bad += 1 }
      }
      expect(bad == 0, "\(algorithm) reduce-scatter of \(n) per rank: \(bad) wrong elements", on: comm)
      // all-gather, from a separate chunk and in place
      for inPlace in [false, true] {
        for i in 0..<(n * p) { out[i] = .nan }
        for i in 0..<n { buf[i] = input(rank: r, i) }
        if inPlace { (out + r * n).update(from: buf, count: n) }
        comm.allGather(inPlace ? UnsafePointer(out + r * n) : UnsafePointer(buf), count: n, into: out)
        var bad = 0
        for k in 0..<p { for i in 0..<n where out[k * n + i] != input(rank: k, i) { bad += 1 } }
        expect(bad == 0, "\(algorithm) all-gather\(inPlace ? " in place" : "") of \(n) per rank: \(bad) wrong", on: comm)
      }
      failures += checkRanges(comm, perRank: n)
    }
  }
  return failures
}

/// `RangeReduction` over three uneven ranges of an (n·p)-float buffer, all in flight at once and
/// driven in turn: the all-reduce and reduce-scatter halves against independent sums, and the
/// all-gather, whose rows must be in place as soon as it says they have arrived.
func checkRanges(_ comm: Communicator, perRank n: Int) -> Int {
  var failures = 0
  let p = comm.size, r = comm.rank, total = n * p
  let buf = UnsafeMutablePointer<Float>.allocate(capacity: total)
  defer { buf.deallocate() }
  let cuts = [0, total / 5, total * 3 / 4, total]
  // the reductions' own duplicate of the group, as a subsystem of the engine would run them
  let space = try! comm.duplicate(for: .tensorParallelOverlap)
  func ranges() -> [RangeReduction] {
    (0..<3).map { RangeReduction(comm: space, count: total, range: cuts[$0]..<cuts[$0 + 1]) }
  }
  // a tag reserved before the pieces: they must not be handed it again
  let gatherTag = space.reserveTag()
  func sum(_ i: Int) -> Double { (0..<p).map { Double(input(rank: $0, i)) }.reduce(0, +) }
  for kind in [RangeReductionKind.allReduce, .reduceScatter] {
    for i in 0..<total { buf[i] = input(rank: r, i) }
    let pieces = ranges()
    let tags = pieces.map(\.tag) + [gatherTag]
    if Set(tags).count != tags.count { failures += 1; print("rank \(r): reductions of one space share a tag: \(tags)") }
    for piece in pieces.reversed() { piece.start(buf, kind) }
    while !pieces.allSatisfy({ $0.progress() }) {}
    for piece in pieces { piece.wait() }
    let checked = kind == .allReduce ? 0..<total : (r * n)..<((r + 1) * n)
    let bad = checked.filter { Double(buf[$0]) != sum($0) }.count
    if bad > 0 { failures += 1; print("rank \(r): \(comm.algorithm) range \(kind) of \(total): \(bad) wrong elements") }
  }
  // the all-gather runs over the whole buffer (with `.mpi` it must)
  for i in 0..<total { buf[i] = (r * n..<(r + 1) * n).contains(i) ? input(rank: r, i) : .nan }
  let gather = RangeReduction(comm: space, count: total, range: 0..<total, gatherOnly: true)
  gather.start(buf, .allGather)
  var bad = 0
  for k in 0..<p {
    let block = (r - k + p) % p  // the ring's arrival order
    gather.wait(forChunk: block)
    for i in (block * n)..<((block + 1) * n) where buf[i] != input(rank: block, i) { bad += 1 }
  }
  gather.wait()
  if bad > 0 { failures += 1; print("rank \(r): \(comm.algorithm) range all-gather of \(total): \(bad) wrong when arrived") }
  return failures
}

/// Each subsystem's duplicate of the group (`MessageSpace`) carries its own messages: the group
/// and every duplicate are distinct MPI contexts, and messages with one tag, sent on every space
/// in the reverse of the order their receives were posted, each arrive on their own space. (If
/// two spaces shared a context, a receive would take the other space's message.)
func checkMessageSpaces(_ comm: Communicator) -> Int {
  var failures = 0
  let r = comm.rank, p = comm.size
  let spaces = [comm] + MessageSpace.allCases.dropFirst().map { try! comm.duplicate(for: $0) }
  for (i, a) in spaces.enumerated() {
    if a.space != MessageSpace.allCases[i] { failures += 1; print("rank \(r): space \(i) is \(a.space)") }
    for b in spaces[(i + 1)...] where a.sharesMessages(with: b) {
      failures += 1
      print("rank \(r): \(a.space.rawValue) and \(b.space.rawValue) share one message context")
    }
  }
  let tag: Int32 = 0
  let slots = spaces.map { MessageSlots($0, slots: 2) }
  let inbox = UnsafeMutablePointer<Int64>.allocate(capacity: spaces.count)
  let outbox = UnsafeMutablePointer<Int64>.allocate(capacity: spaces.count)
  defer { inbox.deallocate(); outbox.deallocate() }
  for i in spaces.indices { inbox[i] = -1; outbox[i] = Int64(i * 1000 + r) }
  let (left, right) = ((r + p - 1) % p, (r + 1) % p)
  for i in spaces.indices { slots[i].receive(into: inbox + i, capacity: 8, from: left, tag: tag, slot: 0) }
  for i in spaces.indices.reversed() {
    slots[i].send(UnsafeRawBufferPointer(start: outbox + i, count: 8), to: right, tag: tag, slot: 1)
  }
  for i in spaces.indices {
    let done = slots[i].wait(0, timeoutNs: 10_000_000_000) && slots[i].wait(1, timeoutNs: 10_000_000_000)
    if !done || inbox[i] != Int64(i * 1000 + left) {
      failures += 1
      print("rank \(r): \(spaces[i].space.rawValue) received \(inbox[i]), not its own message \(i * 1000 + left)")
    }
  }
  return failures
}

func bench(_ comm: Communicator) {
  let p = comm.size
  let reps = 30
  for n in [4096, 262_144, 2_097_152] {
    let buf = UnsafeMutablePointer<Float>.allocate(capacity: n * p)
    let out = UnsafeMutablePointer<Float>.allocate(capacity: n * p)
    buf.initialize(repeating: 1, count: n * p)
    out.initialize(repeating: 0, count: n * p)
    comm.reserveScratch(bytes: n * p * 4)
    for algorithm in CollectiveAlgorithm.allCases {
      comm.algorithm = algorithm
      let collectives: [(String, () -> Void)] = [
        ("allreduce", { comm.allReduce(buf, count: n) }),
        ("reducescatter", { comm.reduceScatter(buf, count: n / p, into: out) }),
        ("allgather", { comm.allGather(buf, count: n / p, into: out) }),
      ]
      for (name, run) in collectives {
        var times: [Double] = []
        comm.barrier()
        for _ in 0..<reps {
          let t0 = monotonicNanos()
          run()
          times.append(Double(monotonicNanos() - t0) / 1000)
        }
        // the slowest rank's median is what a step waits for
        var median = [Double](repeating: times.sorted()[reps / 2], count: 1)
        comm.allReduce(&median, count: 1, .max)
        if comm.rank == 0 {
          print("BENCH collective_\(name)_\(algorithm.rawValue)_\(n * 4 / 1024)KiB_np\(p) \(String(format: "%.1f", median[0])) us")
        }
      }
    }
    buf.deallocate()
    out.deallocate()
  }
}

do {
  try MPIRuntime.initialize()
} catch {
  FileHandle.standardError.write("tpcollectives: \(error)\n".data(using: .utf8)!)
  exit(2)
}
let world = Communicator.world()
let mode = CommandLine.arguments.dropFirst().first ?? "check"
switch mode {
case "check":
  var total = [Double(check(world) + checkMessageSpaces(world))]
  world.allReduce(&total, count: 1, .sum)
  if world.rank == 0 {
    print(total[0] == 0 ? "collectives ok on \(world.size) ranks" : "collectives: \(Int(total[0])) failures")
  }
  MPIRuntime.finalize()
  exit(total[0] == 0 ? 0 : 1)
case "bench":
  bench(world)
  MPIRuntime.finalize()
default:
  if world.rank == 0 { FileHandle.standardError.write("usage: tpcollectives check|bench\n".data(using: .utf8)!) }
  MPIRuntime.finalize()
  exit(2)
}
