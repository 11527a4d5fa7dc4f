import Foundation

/// View 5: events (checkpoints, pauses, NaN/Inf, rank failures) and the job's log tail.
enum EventsView {
  static func draw(_ g: inout CellGrid, _ m: DashboardModel, _ body: Rect) {
    let hasLog = m.history.log != nil
    let (evRect, logRect) = hasLog ? body.splitTop(body.height / 2) : (body, Rect(x: 0, y: 0, width: 0, height: 0))
    g.markPane("events", evRect)
    if hasLog { g.markPane("log", logRect) }
    let events = m.history.events
    g.box(evRect, title: "events (\(events.count))")
    let inner = evRect.inset(1)
    if events.count == 0 {
      g.put(m.history.job.stored ? "no events" : "no events yet", x: inner.x + 1, y: inner.y, style: .dim)
    } else if inner.height > 0 {
      let scroll = min(m.state.eventScroll, max(0, events.count - inner.height))
      let end = events.count - scroll
      let start = max(0, end - inner.height)
      for (i, idx) in (start..<end).enumerated() {
        let e = events[idx]
        let who = e.reporters(world: m.history.job.worldSize, stored: m.history.job.stored)
        let line = "\(Format.clock(e.wallTime))  step \(Format.fit(String(e.step), 6, right: true))  \(Format.fit(who, 7))  \(e.text)"
        g.put(line, x: inner.x, y: inner.y + i, style: style(e.kind), maxWidth: inner.width)
      }
    }
    guard hasLog, let log = m.history.log else { return }
    g.box(logRect, title: "log: \(log.path)")
    let li = logRect.inset(1)
    let lines = log.lines.suffix(max(0, li.height))
    if lines.isEmpty { g.put("(empty)", x: li.x + 1, y: li.y, style: .dim) }
    for (i, l) in lines.enumerated() {
      let lower = l.lowercased()
      let st: Style = lower.contains("error") || lower.contains("nan") || lower.contains("abort") ? .error
        : lower.contains("warn") ? .warn : .normal
      g.put(l, x: li.x, y: li.y + i, style: st, maxWidth: li.width)
    }
  }

  static func style(_ k: JobEvent.Kind) -> Style {
    switch k {
    case .error, .rankFailed, .nonFinite: return .error
    case .paused, .stopped: return .warn
    case .resumed, .checkpointSaved: return .ok
    case .info: return .normal
    }
  }
}
