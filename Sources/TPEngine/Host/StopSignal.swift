// Stop signals of a training run: tptrain installs the handler, the trainer reads the recorded
// signal at each step boundary.

import Glibc

/// Signal number received (0 = none). Written only by the signal handler; a plain word read at
/// step boundaries. Initialised statically, so the handler never runs lazy initialisation.
nonisolated(unsafe) private var pendingStopSignal: Int32 = 0

/// SIGTERM/SIGINT handling: the handler only records the signal; the trainer combines the flag
/// of every rank at the next step boundary, checkpoints, and stops.
public enum StopSignal {
  /// Installs the recording handler for `signals` (default SIGTERM and SIGINT).
  public static func install(_ signals: [Int32] = [SIGTERM, SIGINT]) {
    pendingStopSignal = 0
    for s in signals {
      var action = sigaction()
      action.__sigaction_handler.sa_handler = { sig in pendingStopSignal = sig }
      sigemptyset(&action.sa_mask)
      action.sa_flags = SA_RESTART
      sigaction(s, &action, nil)
    }
  }

  /// The signal received since `install`, or 0.
  public static var received: Int32 { pendingStopSignal }

  /// Conventional name of `signal`, e.g. "SIGTERM".
  public static func name(_ signal: Int32) -> String {
    switch signal {
    case SIGTERM: return "SIGTERM"
    case SIGINT: return "SIGINT"
    case SIGHUP: return "SIGHUP"
    case SIGUSR1: return "SIGUSR1"
    default: return "signal \(signal)"
    }
  }
}
