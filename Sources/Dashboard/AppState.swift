// Interaction state and key handling. Pure: `handle` turns a key into state changes and
// requests; the app loop carries the requests out against the job source.

import JobSchema

/// A key press as the dashboard understands it.
public enum Key: Equatable, Sendable {
  case char(Character)
  case left, right, up, down, pageUp, pageDown, home, end
  case tab, backTab, enter, escape
  /// Standard input ended (a pipe or file ran out): nothing more can be typed, so the dashboard
  /// detaches as on `q`.
  case endOfInput
}

/// The five views.
public enum ViewKind: Int, CaseIterable, Sendable {
  case overview = 0, rank, comm, shards, events

  /// Tab label.
  public var title: String {
    switch self {
    case .overview: return "Overview"
    case .rank: return "Rank"
    case .comm: return "Comm"
    case .shards: return "Shards"
    case .events: return "Events"
    }
  }
}

/// Something the app loop must do after a key.
public enum AppRequest: Equatable, Sendable {
  case setDesired(DesiredState)
  case checkpoint
  case cycleTheme
  case quit
}

/// A short message on the status line.
public struct StatusMessage: Equatable, Sendable {
  public var text: String
  public var style: Style
  /// Monotonic time after which it disappears.
  public var expires: Double
}

/// Everything the user can change.
public struct AppState: Equatable, Sendable {
  /// EMA weights cycled with `s` (0 = raw values).
  public static let smoothingWeights: [Double] = [0, 0.6, 0.9, 0.99]

  public var view: ViewKind = .overview
  public var showHelp = false
  public var confirmingStop = false
  /// World rank shown in the Rank view.
  public var selectedRank = 0
  /// Tensor selected in the Shards view.
  public var selectedTensor = 0
  /// Lines scrolled back in the Events view (0 = newest at the bottom).
  public var eventScroll = 0
  /// Index into `smoothingWeights`.
  public var smoothingIndex = 1
  public var logY = false
  /// Per-rank loss lines instead of the median line with a min–max band.
  public var perRankLines = false
  /// The Overview's rank table under one heading per node.
  public var groupByNode = false
  public var readonly = false
  public var message: StatusMessage?
  /// The charts' cursor: a step whose values every chart prints (nil: no cursor, the charts
  /// show the latest values).
  public var cursorStep: Int?
  /// The charts' zoom: they show 1/2^zoomLevel of the steps the history spans, around the
  /// cursor (or the newest step); 0 shows it all.
  public var zoomLevel = 0
  /// The deepest zoom (1/1024 of the history).
  public static let maxZoomLevel = 10

  /// Creates the initial state.
  public init(readonly: Bool = false) { self.readonly = readonly }

  /// The current EMA weight.
  public var smoothing: Double { AppState.smoothingWeights[smoothingIndex % AppState.smoothingWeights.count] }

  /// Applies a key. `worldSize`/`tensorCount` bound selections; `desired` is what the job is
  /// currently asked to do (so `p` toggles); `now` is monotonic seconds for message expiry;
  /// `steps` the steps in the history (the cursor stays inside them).
  /// `heldSteps`, when given, are the steps the history holds samples of (ascending): the
  /// cursor then moves from sample to sample, which over a stored run of many steps per sample
  /// is what a step is live.
  public mutating func handle(_ key: Key, worldSize: Int, tensorCount: Int, desired: DesiredState,
                              now: Double, steps: ClosedRange<Int>? = nil, heldSteps: [Int]? = nil) -> [AppRequest] {
    if key == .endOfInput { return [.quit] }
    if confirmingStop {
      confirmingStop = false
      if key == .char("y") || key == .char("Y") {
        say("stop requested: the job stops at the next step boundary", .warn, now)
        return [.setDesired(.stop)]
      }
      say("stop cancelled", .dim, now)
      return []
    }
    if showHelp {
      // Any key closes help; view keys also act.
      showHelp = false
      if key == .escape || key == .char("?") || key == .char("q") { return [] }
    }
    switch key {
    case .char("q"), .char("Q"):
      return [.quit]
    case .char("?"), .char("h"):
      showHelp = true
    case .char(let c) where ("1"..."5").contains(c):
      view = ViewKind(rawValue: Int(String(c))! - 1)!
    case .tab:
      view = ViewKind(rawValue: (view.rawValue + 1) % ViewKind.allCases.count)!
    case .backTab:
      view = ViewKind(rawValue: (view.rawValue + ViewKind.allCases.count - 1) % ViewKind.allCases.count)!
    case .left:
      selectedRank = (selectedRank + max(1, worldSize) - 1) % max(1, worldSize)
    case .right:
      selectedRank = (selectedRank + 1) % max(1, worldSize)
    case .up:
      if view == .shards { selectedTensor = max(0, selectedTensor - 1) }
      else if view == .events { eventScroll += 1 }
      else { selectedRank = (selectedRank + max(1, worldSize) - 1) % max(1, worldSize) }
    case .down:
      if view == .shards { selectedTensor = min(max(0, tensorCount - 1), selectedTensor + 1) }
      else if view == .events { eventScroll = max(0, eventScroll - 1) }
      else { selectedRank = (selectedRank + 1) % max(1, worldSize) }
    case .pageUp:
      if view == .events { eventScroll += 10 } else if view == .shards { selectedTensor = max(0, selectedTensor - 10) }
    case .pageDown:
      if view == .events { eventScroll = max(0, eventScroll - 10) }
      else if view == .shards { selectedTensor = min(max(0, tensorCount - 1), selectedTensor + 10) }
    case .home:
      if view == .shards { selectedTensor = 0 } else if view == .events { eventScroll = Int.max / 2 }
    case .end:
      if view == .shards { selectedTensor = max(0, tensorCount - 1) } else if view == .events { eventScroll = 0 }
    case .char("s"):
      smoothingIndex = (smoothingIndex + 1) % AppState.smoothingWeights.count
      say(smoothing == 0 ? "smoothing off" : "EMA smoothing \(smoothing)", .dim, now)
    case .char("l"):
      logY.toggle()
      say(logY ? "log-scale y" : "linear y", .dim, now)
    case .char("m"):
      perRankLines.toggle()
      say(perRankLines ? "one loss line per rank" : "median line with min–max band", .dim, now)
    case .char("n"):
      groupByNode.toggle()
      say(groupByNode ? "ranks grouped by node" : "ranks in rank order", .dim, now)
    case .char("t"):
      return [.cycleTheme]
    case .char("p"), .char(" "):
      guard allowControl(now) else { return [] }
      let target: DesiredState = desired == .pause ? .run : .pause
      say(target == .pause ? "pause requested: ranks pause at the next step boundary" : "resume requested", .accent, now)
      return [.setDesired(target)]
    case .char("c"):
      guard allowControl(now) else { return [] }
      say("checkpoint requested", .accent, now)
      return [.checkpoint]
    case .char("S"):
      guard allowControl(now) else { return [] }
      confirmingStop = true
    case .char("["), .char("]"), .char("{"), .char("}"):
      moveCursor(key, steps: steps, held: heldSteps, now: now)
    case .char("+"), .char("="), .char("-"):
      zoom(in: key != .char("-"), steps: steps, now: now)
    case .escape:
      if cursorStep != nil { cursorStep = nil; say("cursor off: charts show the latest values", .dim, now) }
    default:
      break
    }
    return []
  }

  /// `[` / `]` move the cursor one step back / forward, `{` / `}` ten; the first press puts it
  /// on the newest step; moving past the newest step turns it off.
  private mutating func moveCursor(_ key: Key, steps: ClosedRange<Int>?, held: [Int]?, now: Double) {
    guard let steps else { say("no steps yet for the cursor", .dim, now); return }
    let delta: Int
    switch key {
    case .char("["): delta = -1
    case .char("]"): delta = 1
    case .char("{"): delta = -10
    default: delta = 10
    }
    guard let c = cursorStep else {
      cursorStep = delta < 0 ? steps.upperBound : nil
      if cursorStep != nil { say("cursor at step \(steps.upperBound): [ ] move, { } by 10, + - zoom, Esc off", .dim, now) }
      return
    }
    if let held, !held.isEmpty {
      // from sample to sample: the index of the cursor's step (or of the next held step above it)
      var lo = 0, hi = held.count
      while lo < hi { let mid = (lo + hi) / 2; if held[mid] < c { lo = mid + 1 } else { hi = mid } }
      let at = lo < held.count && held[lo] == c ? lo : (delta < 0 ? lo : lo - 1)
      let next = at + delta
      if next >= held.count { cursorStep = nil; say("cursor off: charts show the latest values", .dim, now); return }
      cursorStep = held[max(0, next)]
      return
    }
    let next = c + delta
    if next > steps.upperBound { cursorStep = nil; say("cursor off: charts show the latest values", .dim, now); return }
    cursorStep = max(steps.lowerBound, next)
  }

  /// `+` halves the steps the charts show (around the cursor, else the newest step), `-`
  /// doubles them back up to the whole history.
  private mutating func zoom(in zoomIn: Bool, steps: ClosedRange<Int>?, now: Double) {
    guard let steps else { say("no steps yet to zoom", .dim, now); return }
    zoomLevel = min(AppState.maxZoomLevel, max(0, zoomLevel + (zoomIn ? 1 : -1)))
    let shown = visibleSteps(steps)
    say(zoomLevel == 0 ? "zoom off: the charts show steps \(shown.lowerBound)–\(shown.upperBound), the whole history"
        : "zoom ×\(1 << zoomLevel): steps \(shown.lowerBound)–\(shown.upperBound) (+ - zoom, [ ] move)", .dim, now)
  }

  /// The steps the charts show of `steps` (the history's span) at the current zoom: a window
  /// 1/2^zoomLevel as wide, centred on the cursor (else ending at the newest step), inside it.
  public func visibleSteps(_ steps: ClosedRange<Int>) -> ClosedRange<Int> {
    guard zoomLevel > 0 else { return steps }
    let width = max(2, (steps.count - 1) >> zoomLevel + 1)
    guard width < steps.count else { return steps }
    let centre = cursorStep ?? steps.upperBound
    let start = min(max(steps.lowerBound, centre - width / 2), steps.upperBound - width + 1)
    return start...(start + width - 1)
  }

  private mutating func allowControl(_ now: Double) -> Bool {
    if readonly { say("read-only: p, c and S are disabled (--readonly)", .warn, now) }
    return !readonly
  }

  /// Shows `text` on the status line for a few seconds.
  public mutating func say(_ text: String, _ style: Style, _ now: Double, seconds: Double = 4) {
    message = StatusMessage(text: text, style: style, expires: now + seconds)
  }

  /// Drops an expired message. Returns true when something changed.
  public mutating func expire(now: Double) -> Bool {
    if let m = message, m.expires <= now { message = nil; return true }
    return false
  }
}
