import Foundation

/// View 4: the layout inspector — every tensor's split and each TP rank's slice, per-rank
/// memory totals, and a drawn grid of the selected matrix divided among ranks.
enum ShardsView {
  static func shapeText(_ s: [Int]) -> String { "[" + s.map(String.init).joined(separator: ",") + "]" }

  static func draw(_ g: inout CellGrid, _ m: DashboardModel, _ body: Rect) {
    let job = m.history.job
    let tensors = job.tensors
    guard !tensors.isEmpty else {
      g.box(body, title: "shards")
      let why = m.history.job.stored ? "this run has no shard layout (event files do not record one)" : "the job has not published its shard layout yet"
      g.put(why, x: body.x + 2, y: body.y + 2, style: .dim, maxWidth: body.width - 4)
      g.markPane("shards", body)
      return
    }
    let sel = min(max(0, m.state.selectedTensor), tensors.count - 1)
    // Top: tensor table. Bottom: selected tensor detail (left) and drawn grid (right).
    let detailH = max(7, min(job.tp + 6, body.height / 2))
    let (tableRect, lower) = body.splitTop(body.height - detailH)
    let (detailRect, gridRect) = lower.splitLeft(lower.width * 3 / 5)
    g.markPanes(("tensor table", tableRect), ("tensor detail", detailRect), ("tensor grid", gridRect))
    drawTable(&g, m, tableRect, sel)
    drawDetail(&g, m, detailRect, sel)
    drawGrid(&g, m, gridRect, sel)
  }

  static func drawTable(_ g: inout CellGrid, _ m: DashboardModel, _ r: Rect, _ sel: Int) {
    let job = m.history.job
    let tensors = job.tensors
    g.box(r, title: "parameter tensors (\(tensors.count)), \(g.glyphs.upDown) select")
    let inner = r.inset(1)
    guard inner.height > 2 else { return }
    let nameW = min(12, max(6, tensors.map { $0.name.count }.max()! + 1))
    let shapeW = min(16, max(8, tensors.map { shapeText($0.shape).count }.max()! + 1))
    let fixed = nameW + shapeW + 11 + 8
    // One slice column per TP rank while they fit.
    // Slice columns as wide as the longest description, within an equal share of the room.
    let longest = tensors.flatMap { $0.rankDescriptions }.map { $0.unicodeScalars.count }.max() ?? 10
    let share = (inner.width - fixed) / max(1, job.tp) - 1
    let sliceW = max(10, min(longest, share))
    let shown = max(0, min(job.tp, (inner.width - fixed) / (sliceW + 1)))
    var x = inner.x
    g.put(Format.fit("tensor", nameW), x: x, y: inner.y, style: .title); x += nameW
    g.put(Format.fit("shape", shapeW), x: x, y: inner.y, style: .title); x += shapeW
    g.put(Format.fit("split", 11), x: x, y: inner.y, style: .title); x += 11
    g.put(Format.fit("bytes/rk", 8, right: true), x: x, y: inner.y, style: .title); x += 9
    for t in 0..<shown {
      g.put(Format.fit("tp\(t) slice", sliceW), x: x, y: inner.y, style: .rank(t), maxWidth: inner.maxX - x)
      x += sliceW + 1
    }
    if shown < job.tp { g.put("+\(job.tp - shown) ranks below", x: x, y: inner.y, style: .dim, maxWidth: inner.maxX - x) }
    let visible = inner.height - 2
    var first = 0
    if tensors.count > visible { first = min(max(0, sel - visible / 2), tensors.count - visible) }
    for (i, ti) in (first..<min(tensors.count, first + visible)).enumerated() {
      let t = tensors[ti]
      let y = inner.y + 1 + i
      let style: Style = ti == sel ? .selection : .normal
      g.fill(Rect(x: inner.x, y: y, width: inner.width, height: 1), Cell(" ", style))
      var x = inner.x
      g.put(Format.fit(t.name, nameW), x: x, y: y, style: style); x += nameW
      g.put(Format.fit(shapeText(t.shape), shapeW), x: x, y: y, style: style); x += shapeW
      g.put(Format.fit(t.split.name, 11), x: x, y: y, style: ti == sel ? .selection : (t.split == .replicated ? .dim : .accent)); x += 11
      g.put(Format.fit(Format.bytes(Double(t.localBytes(tp: 0))), 8, right: true), x: x, y: y, style: style); x += 9
      for tp in 0..<shown {
        let d = t.rankDescriptions[safe: tp] ?? "–"
        g.put(Format.fit(d, sliceW), x: x, y: y, style: ti == sel ? .selection : .rank(tp), maxWidth: inner.maxX - x)
        x += sliceW + 1
      }
    }
    // Per-rank totals on the last row.
    let ty = inner.maxY - 1
    var line = "per rank:"
    for r in 0..<min(job.worldSize, 4) {
      if let s = m.history.samples[r].last {
        line += "  r\(r) params \(Format.bytes(Double(s.paramBytes))) grads \(Format.bytes(Double(s.gradBytes))) opt \(Format.bytes(Double(s.optimizerBytes))) act \(Format.bytes(Double(s.activationBytes)))"
      } else {
        let p = job.tensors.reduce(0) { $0 + $1.localBytes(tp: job.coordinates(ofRank: r).tp) }
        line += "  r\(r) params \(Format.bytes(Double(p)))"
      }
    }
    g.putLine(line, in: inner, row: inner.height - 1, style: .dim)
    _ = ty
  }

  static func drawDetail(_ g: inout CellGrid, _ m: DashboardModel, _ r: Rect, _ sel: Int) {
    let job = m.history.job
    let t = job.tensors[sel]
    g.box(r, title: "\(t.name) \(shapeText(t.shape)) \(t.split.name)")
    let inner = r.inset(1)
    guard inner.height > 0 else { return }
    let hasStats = (0..<job.worldSize).contains { m.history.stats(tensor: sel, rank: $0) != nil }
    // the norm columns (9 cells each) keep their room while the slice text has 12; on a narrow
    // pane they go whole, upd/w first, then |g|, rather than show cut numbers
    let statColumns = hasStats ? min(3, max(0, (inner.width - 5 - 12 - 8) / 9)) : 0
    let sliceW = max(12, min(inner.width - 13 - 9 * statColumns, (t.rankDescriptions.map { $0.unicodeScalars.count }.max() ?? 10) + 2))
    var header = Format.fit("rank", 5) + Format.fit("slice", sliceW) + Format.fit("bytes", 8, right: true)
    for title in ["|w|", "|g|", "upd/w"].prefix(statColumns) { header += Format.fit(title, 9, right: true) }
    g.put(header, x: inner.x, y: inner.y, style: .title, maxWidth: inner.width)
    // World ranks in TP order; DP replicas hold the same slices.
    let rows = inner.height - 1 - (hasStats ? 0 : 1)
    for rank in 0..<min(job.worldSize, max(0, rows)) {
      let (tp, dp) = job.coordinates(ofRank: rank)
      let y = inner.y + 1 + rank
      var line = Format.fit("r\(rank)", 5) + Format.fit(t.rankDescriptions[safe: tp] ?? "–", sliceW)
        + Format.fit(Format.bytes(Double(t.localBytes(tp: tp))), 8, right: true)
      if hasStats, let s = m.history.stats(tensor: sel, rank: rank) {
        let cells = [Format.value(Double(s.norms.weightNorm)), Format.value(Double(s.norms.gradNorm)), String(format: "%.1e", s.norms.updateRatio)]
        for c in cells.prefix(statColumns) { line += Format.fit(c, 9, right: true) }
      }
      if job.dp > 1 { line += "  dp\(dp)" }
      // the distributed optimizer: which elements of this shard's m and v the rank holds
      if let held = job.optimizerSlice(tensor: sel, rank: rank) {
        line += held.isEmpty ? " m,v none" : " m,v \(held.lowerBound)\(g.glyphs.unicode ? "–" : "-")\(held.upperBound - 1)"
      }
      g.put(line, x: inner.x, y: y, style: .rank(tp), maxWidth: inner.width)
    }
    if !hasStats && inner.height >= 2 {
      g.put("per-shard norms: not published by this job", x: inner.x, y: inner.maxY - 1, style: .dim, maxWidth: inner.width)
    }
  }

  /// Draws the selected tensor's last two dimensions as a block divided among TP ranks.
  static func drawGrid(_ g: inout CellGrid, _ m: DashboardModel, _ r: Rect, _ sel: Int) {
    let job = m.history.job
    let t = job.tensors[sel]
    g.box(r, title: "layout")
    let inner = r.inset(1)
    guard inner.width > 4, inner.height > 2 else { return }
    let rowsDim = t.shape.count >= 2 ? t.shape.count - 2 : -1
    let colsDim = t.shape.count - 1
    let rowsN = rowsDim >= 0 ? t.shape[rowsDim] : 1
    let colsN = max(1, t.shape.last ?? 1)
    let caption = rowsDim >= 0 ? "\(rowsN) rows \(g.glyphs.times) \(colsN) cols" : "\(colsN) elements"
    g.put(caption, x: inner.x, y: inner.maxY - 1, style: .dim, maxWidth: inner.width)
    let area = Rect(x: inner.x, y: inner.y, width: inner.width, height: inner.height - 1)
    let glyphs = g.glyphs
    // Owner TP rank of a row/column index along the split dimension, nil when replicated.
    func owner(_ idx: Int) -> Int? {
      for (tp, ranges) in t.ranks.enumerated() where ranges.contains(where: { $0.contains(idx) }) { return tp }
      return nil
    }
    let splitRows = t.splitDim == rowsDim && rowsDim >= 0
    let splitCols = t.splitDim == colsDim
    for cy in 0..<area.height {
      for cx in 0..<area.width {
        var o: Int?
        if splitRows { o = owner(min(rowsN - 1, cy * rowsN / area.height)) }
        else if splitCols { o = owner(min(colsN - 1, cx * colsN / area.width)) }
        let fill = o.map { glyphs.shades[4 - ($0 % 2) * 2] } ?? glyphs.shades[1]
        g[area.x + cx, area.y + cy] = Cell(fill, o.map { .rank($0) } ?? .dim)
      }
    }
    // Label each rank's first region in the middle of it.
    if !(splitRows || splitCols) {
      let l = " all ranks (replicated) "
      g.put(l, x: area.x + max(0, (area.width - l.count) / 2), y: area.y + area.height / 2, style: .title, maxWidth: area.width)
      return
    }
    var labelled = Set<Int>()
    let n = splitRows ? area.height : area.width
    var i = 0
    while i < n {
      let idx = splitRows ? min(rowsN - 1, i * rowsN / area.height) : min(colsN - 1, i * colsN / area.width)
      let o = owner(idx)
      var j = i
      while j < n, owner(splitRows ? min(rowsN - 1, j * rowsN / area.height) : min(colsN - 1, j * colsN / area.width)) == o { j += 1 }
      if let o, !labelled.contains(o) || (j - i) >= 3 {
        labelled.insert(o)
        let label = "tp\(o)"
        if splitRows { g.put(label, x: area.x + max(0, area.width / 2 - 1), y: area.y + (i + j - 1) / 2, style: .title) }
        else if j - i >= label.count { g.put(label, x: area.x + (i + j - label.count) / 2, y: area.y + area.height / 2, style: .title) }
      }
      i = j
    }
  }
}
