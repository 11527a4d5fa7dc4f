// Control requests: what a reader writes into a job's control page (docs/TELEMETRY.md,
// "Control"). The only writes a reader makes: a compare-and-swap on the desired state and an
// atomic increment of the checkpoint counter; the job's rank 0 reads them at its step boundary.

import Atomics
import Glibc
import JobSchema

extension JobReader {
  func controlPage() throws -> UnsafeMutableRawPointer {
    if let c = controlMapping { return c.base }
    let c = try MappedSegment.openWindow(job: name, in: space, offset: geometry.controlOffset, length: SegmentLayout.Control.size,
                                           inode: mapping.inode)
    controlMapping = c
    return c.base
  }

  /// Asks the job to run, pause or stop at its next step boundary, by compare-and-swap on the
  /// desired-state word. `stop` is final: asking a stopped job to run or pause is refused.
  /// - Returns: the previous desired state.
  /// - Throws: `.controlRefused` when the job is finished, failed or stale, or already stopping.
  @discardableResult
  public func request(_ desired: DesiredState) throws -> DesiredState {
    let st = phase()
    if st.isTerminal {
      throw TelemetryError.controlRefused("job '\(name)' is \(st.word.rawValue); it takes no more commands")
    }
    let c = try controlPage()
    let word = atomicWord(c + C.desiredState)
    var current = word.load(ordering: .acquiring)
    while true {
      if current == DesiredState.stop.rawValue && desired != .stop {
        throw TelemetryError.controlRefused("job '\(name)' is stopping; it cannot \(desired == .run ? "resume" : "pause")")
      }
      let (exchanged, original) = word.compareExchange(
        expected: current, desired: desired.rawValue, ordering: .acquiringAndReleasing)
      if exchanged {
        atomicWord(c + C.writes).wrappingIncrement(ordering: .relaxed)
        // The previous value; a damaged word (now overwritten) reads as run, what the job made of it.
        return DesiredState(rawValue: original) ?? .run
      }
      current = original
    }
  }

  /// Asks for one checkpoint (increments the checkpoint-request counter).
  /// - Returns: the counter's new value.
  @discardableResult
  public func requestCheckpoint() throws -> UInt64 {
    let st = phase()
    if st.isTerminal {
      throw TelemetryError.controlRefused("job '\(name)' is \(st.word.rawValue); it takes no more commands")
    }
    let c = try controlPage()
    let v = atomicWord(c + C.checkpointRequests).wrappingIncrementThenLoad(ordering: .acquiringAndReleasing)
    atomicWord(c + C.writes).wrappingIncrement(ordering: .relaxed)
    return v
  }
}
