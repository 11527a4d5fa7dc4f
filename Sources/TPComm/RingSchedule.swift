// The ring's schedule, written once for every ring in TPComm: the blocking collectives
// (`Communicator`) and the non-blocking range reductions (`RangeReduction`). Bitwise equality of
// overlapped and plain runs rests on both walking the same chunks in the same order, so neither
// states the order itself.
//
// p ranks in a ring, rank r sending to r+1 and receiving from r-1. An n-element buffer is cut
// into p chunks, chunk i = [n·i/p, n·(i+1)/p) (the blocking reduce-scatter and all-gather of
// equal blocks cut at count·i, the same points when n = count·p). An all-reduce is 2(p-1) steps:
//
//   reduce-scatter   steps s = 0 ..< p-1     send chunk r-s-1, receive chunk r-s-2 and add it
//                                            (after the last, chunk r is summed on rank r)
//   all-gather       steps s = p-1 ..< 2(p-1), t = s-(p-1):
//                                            send chunk r-t, receive chunk r-t-1 (a copy)
//
// so every element of chunk c is summed in the order c+1, c+2, …, c (mod p): the same on every
// rank, whatever range of the buffer a reduction covers.

/// Which chunks rank `rank` of a `size`-rank ring sends and receives at each step.
struct RingSchedule {
  let rank: Int
  let size: Int

  /// The neighbours: this rank receives from `left` and sends to `right`.
  var right: Int32 { Int32((rank + 1) % size) }
  var left: Int32 { Int32((rank + size - 1) % size) }

  /// Steps of the reduce-scatter half, then of the all-gather half (an all-reduce runs both).
  var reduceScatterSteps: Range<Int> { 0..<(size - 1) }
  var allGatherSteps: Range<Int> { (size - 1)..<(2 * (size - 1)) }

  /// The chunk sent and the chunk received at ring step `step`, and whether the received one is
  /// added (reduce-scatter half) or copied (all-gather half).
  @inline(__always)
  func chunks(atStep step: Int) -> (send: Int, receive: Int, reducing: Bool) {
    let p = size, r = rank
    if step < p - 1 { return ((r - step - 1 + 2 * p) % p, (r - step - 2 + 2 * p) % p, true) }
    let t = step - (p - 1)
    return ((r - t + 2 * p) % p, (r - t - 1 + 2 * p) % p, false)
  }

  /// Whether chunk `chunk` holds its final values on this rank once ring steps before `step`
  /// are complete, in an all-gather (its own chunk at once; another's after the all-gather step
  /// that receives it).
  @inline(__always)
  func arrived(_ chunk: Int, beforeStep step: Int) -> Bool {
    if chunk == rank { return true }
    let p = size
    // all-gather step p-1+t receives chunk r-t-1
    return step - (p - 1) > (rank - chunk - 1 + 2 * p) % p
  }

  /// Start of chunk `i` (0 ... p) of an `n`-element buffer over `ranks` ranks.
  @inline(__always)
  static func chunkStart(_ i: Int, of n: Int, ranks: Int) -> Int { n * i / ranks }
}
