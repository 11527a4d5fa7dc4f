import Foundation
import JobSchema

/// View 2: one rank in depth — step-time split over time, memory by category, all-reduce
/// latency histogram.
enum RankView {
  static let seriesNames = ["compute", "comm", "optimizer", "data", "other"]

  static func draw(_ g: inout CellGrid, _ m: DashboardModel, _ body: Rect) {
    let job = m.history.job
    let r = min(max(0, m.state.selectedRank), max(0, job.worldSize - 1))
    let row = m.rows[safe: r]
    // Summary line.
    let (info, rest) = body.splitTop(1)
    g.markPane("rank summary", info)
    let (tp, dp) = job.coordinates(ofRank: r)
    var line = " rank \(r) of \(job.worldSize)  (tp \(tp), dp \(dp))  \(g.glyphs.leftRight) change"
    if let row {
      if row.remote {
        // another node's rank reports to that node's segment: nothing of it is here to show
        line += "  remote, \(row.hostPid): its numbers are on that node's screen"
      } else {
        line += "  node \(row.node)  \(row.hostPid)  \(row.lost ? "LOST" : OverviewView.stateWord(row, m))  beat \(Format.age(row.heartbeatAge))"
      }
      if let e = row.exitStatus { line += "  exit \(e)" }
      // a writer that does not report the rate leaves it unknown, not 0
      if let last = m.history.samples[r].last, last.gflops > 0 { line += String(format: "  %.1f GFLOP/s", last.gflops) }
    }
    g.putLine(line, in: info, row: 0, style: row?.state == .failed ? .error : .accent)

    let stackH = max(6, rest.height * 55 / 100)
    let (stackRect, lower) = rest.splitTop(stackH)
    let memW = lower.width / 2
    let (memRect, histRect) = lower.splitLeft(memW)
    g.markPanes(("step split", stackRect), ("memory", memRect), ("latency histogram", histRect))
    drawStack(&g, m, r, stackRect)
    drawMemory(&g, m, r, memRect)
    drawHistogram(&g, m, r, histRect)
  }

  /// Split of one sample into the five stacked series, nanoseconds.
  static func split(_ s: StepSample) -> [Double] {
    let comm = Double(s.commNs)
    let compute = max(0, Double(s.forwardNs) + Double(s.backwardNs) - comm)
    let opt = Double(s.optimizerNs), data = Double(s.dataNs)
    let other = max(0, Double(s.stepNs) - compute - comm - opt - data)
    return [compute, comm, opt, data, other]
  }

  static func drawStack(_ g: inout CellGrid, _ m: DashboardModel, _ r: Int, _ rect: Rect) {
    g.box(rect, title: "step time split (ms), one column per step")
    let inner = rect.inset(1)
    guard inner.height > 2, inner.width > 20 else { return }
    let glyphs = g.glyphs
    // Legend on the last row.
    let legendY = inner.maxY - 1
    let samples = m.history.samples[r].suffix(inner.width - 8)
    let lastSplit = samples.last.map(split) ?? Array(repeating: 0, count: 5)
    // whole entries only: one that does not fit is left out, never cut (nor drawn on the border)
    var x = inner.x
    for (i, name) in seriesNames.enumerated() {
      let text = " \(name) \(Format.ms(lastSplit[i]))"
      guard x + 1 + text.unicodeScalars.count <= inner.maxX else { break }
      g[x, legendY] = Cell(glyphs.stackFills[i], .stack(i))
      x += 1 + g.put(text, x: x + 1, y: legendY, style: .normal) + 2
    }
    let plot = Rect(x: inner.x + 8, y: inner.y, width: inner.width - 8, height: inner.height - 1)
    guard !samples.isEmpty, plot.height > 0 else {
      g.put("waiting for steps\(glyphs.ellipsis)", x: plot.x + 2, y: plot.y + plot.height / 2, style: .dim)
      return
    }
    let top = max(1, samples.map { Double($0.stepNs) }.max()!)
    g.put(Format.fit(Format.ms(top), 7, right: true), x: inner.x, y: plot.y, style: .axis)
    g.put(Format.fit("0", 7, right: true), x: inner.x, y: plot.maxY - 1, style: .axis)
    let x0 = plot.maxX - samples.count
    for (i, s) in samples.enumerated() {
      let parts = split(s)
      var acc = 0.0
      var prevRow = 0
      for (k, v) in parts.enumerated() {
        acc += v
        let rowTop = Int((acc / top * Double(plot.height)).rounded())
        if rowTop > prevRow {
          for h in prevRow..<min(rowTop, plot.height) {
            g[x0 + i, plot.maxY - 1 - h] = Cell(glyphs.stackFills[k], .stack(k))
          }
          prevRow = rowTop
        }
      }
    }
  }

  static func drawMemory(_ g: inout CellGrid, _ m: DashboardModel, _ r: Int, _ rect: Rect) {
    g.box(rect, title: "memory")
    let inner = rect.inset(1)
    guard let s = m.history.samples[r].last, inner.height > 0 else {
      g.put("no data yet", x: inner.x + 1, y: inner.y, style: .dim)
      return
    }
    let known = Double(s.paramBytes + s.gradBytes + s.optimizerBytes + s.activationBytes)
    let rss = Double(s.rssBytes)
    let items: [(String, Double)] = [
      ("params", Double(s.paramBytes)), ("grads", Double(s.gradBytes)),
      ("optimizer", Double(s.optimizerBytes)), ("activations", Double(s.activationBytes)),
      ("other", max(0, rss - known)), ("RSS", rss),
    ]
    let top = max(1, items.map(\.1).max()!)
    for (i, (name, v)) in items.enumerated() where i < inner.height {
      let y = inner.y + i
      g.put(Format.fit(name, 11), x: inner.x, y: y, style: name == "RSS" ? .title : .normal)
      g.put(Format.fit(Format.bytes(v), 6, right: true), x: inner.x + 11, y: y)
      drawBar(&g, x: inner.x + 18, y: y, width: inner.width - 18, fraction: v / top, style: .memory(v / top))
    }
    // the accelerator, labelled as device memory (the rows above are host memory)
    guard let d = m.history.ranks[safe: r]?.device, inner.height > items.count + 1 else { return }
    var y = inner.y + items.count
    g.put("device memory (GPU)" + (d.utilization.map { ", \(Int(($0 * 100).rounded()))% busy" } ?? ""), x: inner.x, y: y, style: .title, maxWidth: inner.width)
    let deviceTop = Double(max(1, max(d.reservedBytes, d.peakBytes)))
    for (name, v) in [("allocated", d.allocatedBytes), ("reserved", d.reservedBytes), ("peak", d.peakBytes)] {
      y += 1
      guard y < inner.maxY else { break }
      g.put(Format.fit(name, 11), x: inner.x, y: y)
      g.put(Format.fit(Format.bytes(Double(v)), 6, right: true), x: inner.x + 11, y: y)
      drawBar(&g, x: inner.x + 18, y: y, width: inner.width - 18, fraction: Double(v) / deviceTop, style: .memory(Double(v) / deviceTop))
    }
  }

  /// Label of histogram bucket i: "<2µs", "2µs", ..., "32ms+" (an ASCII grid writes "us").
  static func bucketLabel(_ i: Int) -> String {
    let us = 1 << i
    let mu = "µs"
    if i == 0 { return "<2\(mu)" }
    let s = us >= 1000 ? "\(us / 1000)ms" : "\(us)\(mu)"
    return i == 15 ? s + "+" : s
  }

  static func drawHistogram(_ g: inout CellGrid, _ m: DashboardModel, _ r: Int, _ rect: Rect) {
    let window = m.history.samples[r].suffix(100)
    g.box(rect, title: "all-reduce latency, last \(window.count) steps")
    let inner = rect.inset(1)
    guard inner.height > 0 else { return }
    var counts = Array(repeating: 0.0, count: LatencyHistogram.bucketCount)
    for s in window { for i in counts.indices { counts[i] += Double(s.allReduceHistogram[i]) } }
    guard let lo = counts.firstIndex(where: { $0 > 0 }), let hi = counts.lastIndex(where: { $0 > 0 }) else {
      g.put("no all-reduces yet", x: inner.x + 1, y: inner.y, style: .dim)
      return
    }
    // Show the occupied range, widened to fit the rows, merging pairs when it does not fit.
    var buckets = Array(lo...hi)
    while buckets.count < inner.height && (buckets.first! > 0 || buckets.last! < 15) {
      if buckets.first! > 0 { buckets.insert(buckets.first! - 1, at: 0) }
      if buckets.count < inner.height && buckets.last! < 15 { buckets.append(buckets.last! + 1) }
    }
    if buckets.count > inner.height { buckets = Array(buckets.suffix(inner.height)) }
    let top = max(1, buckets.map { counts[$0] }.max()!)
    let total = counts.reduce(0, +)
    for (i, b) in buckets.enumerated() {
      let y = inner.y + i
      g.put(Format.fit(bucketLabel(b), 6, right: true), x: inner.x, y: y, style: .axis)
      g.put(Format.fit("\(Int(counts[b] / total * 100))%", 4, right: true), x: inner.x + 6, y: y)
      drawBar(&g, x: inner.x + 11, y: y, width: inner.width - 11, fraction: counts[b] / top, style: .latency(Double(b) / 15))
    }
  }
}
