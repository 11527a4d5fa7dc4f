import Foundation
import Telemetry

// The interactive loop. Sampling (reading the rings into history) and drawing run at separate
// rates; a frame is rendered only when the history, the state or the size changed, and the
// backend writes only the cells that differ from the previous frame.

/// Seconds on a monotonic clock.
public func monotonicSeconds() -> Double {
  var ts = timespec()
  clock_gettime(CLOCK_MONOTONIC, &ts)
  return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Sleeps for `s` seconds (no-op for s ≤ 0).
public func sleepSeconds(_ s: Double) {
  guard s > 0 else { return }
  var ts = timespec(tv_sec: Int(s), tv_nsec: Int((s - Double(Int(s))) * 1e9))
  var rest = timespec()
  while nanosleep(&ts, &rest) == -1 && errno == EINTR { ts = rest }
}

/// Options of an interactive session.
public struct DashboardOptions: Sendable {
  /// Seconds between frames (at most; keys redraw at once).
  public var refresh: Double = 1.0
  /// Seconds between reads of the rings.
  public var sampleInterval: Double = 0.25
  /// Disable p, c and S.
  public var readonly = false
  /// Where the remembered settings live (`DashboardSettings.path()`); nil: none kept.
  public var settingsPath: String?

  /// Default options.
  public init(refresh: Double = 1.0, sampleInterval: Double? = nil, readonly: Bool = false, settingsPath: String? = nil) {
    self.refresh = refresh
    self.sampleInterval = sampleInterval ?? min(0.25, refresh)
    self.readonly = readonly
    self.settingsPath = settingsPath
  }
}

/// A dashboard attached to one job, drawing on one backend.
public final class DashboardApp {
  /// What the sampler collected.
  public let history: JobHistory
  /// The user's state.
  public private(set) var state: AppState
  let source: JobSource
  let backend: ScreenBackend
  let options: DashboardOptions
  private var themes: [Theme]
  private var themeIndex: Int
  /// Frames rendered (for tests and the benchmark).
  public private(set) var framesRendered = 0

  /// Creates an app. `theme` is the starting theme; `library` supplies the `t` cycle.
  public init(source: JobSource, backend: ScreenBackend, library: ThemeLibrary, theme: Theme,
              options: DashboardOptions = DashboardOptions(), startupMessage: String? = nil) {
    self.source = source
    self.backend = backend
    self.options = options
    history = JobHistory(job: source.job)
    state = AppState(readonly: options.readonly)
    var list = library.themes
    if let i = list.firstIndex(where: { $0.name == theme.name && $0 == theme }) {
      themeIndex = i
    } else {
      list.insert(theme, at: 0)
      themeIndex = 0
    }
    themes = list
    if let path = options.settingsPath {
      let (saved, problems) = DashboardSettings.load(path: path)
      state = saved.applied(to: state)
      remembered = DashboardSettings(state, theme: themes[themeIndex].name)
      if let p = problems.first { state.say("settings: " + p, .error, monotonicSeconds(), seconds: 10) }
    }
    if let m = startupMessage { state.say(m, .error, monotonicSeconds(), seconds: 10) }
  }

  /// The settings last read or written (nil without a settings file).
  private var remembered: DashboardSettings?

  /// Writes the settings file when a remembered setting changed.
  private func rememberSettings(_ now: Double) {
    guard let path = options.settingsPath else { return }
    let current = DashboardSettings(state, theme: theme.name)
    guard current != remembered else { return }
    remembered = current
    if let problem = current.save(path: path) { state.say(problem, .error, now, seconds: 6) }
  }

  /// The theme in use.
  public var theme: Theme { themes[themeIndex] }

  /// Renders the current frame at the backend's size.
  public func render() -> CellGrid {
    let model = DashboardModel(history: history, state: state, themeName: theme.name, glyphs: .forTerminal(unicode: backend.unicode))
    let (w, h) = backend.size
    return Renderer.render(model, width: w, height: h)
  }

  /// Feeds one key, carrying out any request. Returns false when the user asked to quit.
  @discardableResult
  public func handle(_ key: Key) -> Bool {
    let now = monotonicSeconds()
    let cursorKey = [Key.char("["), .char("]"), .char("{"), .char("}")].contains(key)
    let requests = state.handle(key, worldSize: history.job.worldSize, tensorCount: history.job.tensors.count,
                                desired: history.desired, now: now, steps: history.stepRange,
                                heldSteps: cursorKey ? history.heldSteps : nil)
    for r in requests {
      switch r {
      case .quit:
        return false
      case .cycleTheme:
        themeIndex = (themeIndex + 1) % themes.count
        backend.apply(theme)
        state.say("theme \(theme.name)\(theme.summary.isEmpty ? "" : ": " + theme.summary)", .dim, now)
      case .setDesired(let d):
        do {
          try source.setDesired(d)
          history.requested(d)
          history.note(d == .pause ? .paused : d == .run ? .resumed : .stopped,
                       d == .pause ? "pause requested" : d == .run ? "resume requested" : "stop requested")
        } catch {
          state.say("\(error)", .error, now, seconds: 6)
        }
      case .checkpoint:
        do {
          try source.requestCheckpoint()
          history.note(.info, "checkpoint requested")
        } catch {
          state.say("\(error)", .error, now, seconds: 6)
        }
      }
    }
    rememberSettings(now)
    return true
  }

  /// Samples once now.
  public func sample() {
    history.ingest(source.poll())
    announceArrival(monotonicSeconds())
  }

  /// The phase last seen by `announceArrival`.
  private var lastPhase: JobPhase?

  /// When a pause or resume (from this dashboard or elsewhere) has reached every rank, the
  /// status line says so, in place of "pause requested…".
  private func announceArrival(_ now: Double) {
    let phase = DashboardModel.phase(history)
    defer { lastPhase = phase }
    guard let last = lastPhase, phase != last else { return }
    if phase == .paused {
      state.say("paused at step \(history.latestStep) on every rank", .warn, now)
    } else if phase == .running && (last == .paused || last == .resuming) {
      state.say("resumed on every rank", .accent, now)
    }
  }

  /// Runs until `q` (or for `duration` seconds when given). Restores nothing: the caller owns
  /// the backend's lifetime.
  public func run(duration: Double? = nil) {
    backend.apply(theme)
    let start = monotonicSeconds()
    var nextSample = start
    var nextDraw = start
    var lastGeneration = -1
    var lastState = state
    var lastSize = (-1, -1)
    var lastGlyphsUnicode = backend.unicode
    while true {
      let now = monotonicSeconds()
      if let d = duration, now - start >= d { return }
      if now >= nextSample {
        history.ingest(source.poll())
        nextSample = now + options.sampleInterval
        announceArrival(now)
      }
      if state.expire(now: now) { nextDraw = min(nextDraw, now) }
      var resized = backend.takeResize()
      let size = backend.size
      if size != lastSize { resized = true }
      if resized { nextDraw = now }
      let changed = history.generation != lastGeneration || state != lastState || resized
        || lastGlyphsUnicode != backend.unicode
      if changed && now >= nextDraw {
        backend.present(render())
        framesRendered += 1
        lastGeneration = history.generation
        lastState = state
        lastSize = size
        lastGlyphsUnicode = backend.unicode
        nextDraw = now + options.refresh
      }
      let wake = min(nextSample, max(nextDraw, now))
      var wait = wake - now
      if let d = duration { wait = min(wait, start + d - now) }
      if let key = backend.readKey(timeout: max(0.001, wait)) {
        if !handle(key) { return }
        // Show the effect of a key at once, and read the job's answer soon after.
        nextDraw = 0
        if case .char(let c) = key, "pcS y".contains(c) { nextSample = monotonicSeconds() + 0.05 }
      }
    }
  }
}
