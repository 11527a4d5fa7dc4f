import Foundation
import CSched
import Glibc
import Telemetry

/// Beats a rank's heartbeat from a helper thread while the rank writes a checkpoint.
///
/// A checkpoint write makes no step progress and, on a slow disk, may block in one `write` or
/// `fsync` for minutes; the process lives all the while. A process stopped by SIGSTOP, a
/// debugger or the scheduler runs no thread at all, this one included. So a rank that reports
/// checkpointing with a fresh heartbeat is writing, and one whose heartbeat has gone stale is
/// stopped: the supervisor's hang watch gives the first the checkpoint floor and the second the
/// ordinary hang timeout (`HangWatch`). The thread is made at the first write and then sleeps
/// on a condition between writes; it never runs inside a step.
final class WriteHeartbeat: @unchecked Sendable {
  /// Beat interval while writing, seconds (as a waiting rank's forwarded beat).
  static let intervalSeconds = 0.1
  private let writer: RankWriter
  private let condition = NSCondition()
  /// Guarded by `condition`.
  private var writing = false
  private var started = false

  init(writer: RankWriter) { self.writer = writer }

  /// The rank began a write: beat until `end()`.
  func begin() {
    condition.lock()
    writing = true
    if !started {
      started = true
      let thread = Thread { [self] in
        _ = csched_setname(UInt(pthread_self()), "tptrain-ckpt-hb")  // 15 characters at most
        run()
      }
      thread.name = "tptrain-ckpt-hb"
      thread.start()
    }
    condition.signal()
    condition.unlock()
  }

  /// The write ended (saved, failed, or the rank left the state): stop beating.
  func end() {
    condition.lock()
    writing = false
    condition.unlock()
  }

  private func run() {
    condition.lock()
    while true {
      while !writing { condition.wait() }
      condition.unlock()
      writer.heartbeat()
      condition.lock()
      if writing { _ = condition.wait(until: Date(timeIntervalSinceNow: Self.intervalSeconds)) }
    }
  }
}
