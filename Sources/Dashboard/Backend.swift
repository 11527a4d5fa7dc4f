// Backends put finished grids on a screen. The curses backend is the only code that touches
// curses; the capture backend keeps frames for tests and benchmarks.

/// Something that can show grids and deliver keys.
public protocol ScreenBackend: AnyObject {
  /// Current size in cells.
  var size: (width: Int, height: Int) { get }
  /// True when the locale and terminal can show UTF-8 glyphs.
  var unicode: Bool { get }
  /// Shows `grid`, writing only what differs from the previously shown grid.
  func present(_ grid: CellGrid)
  /// Waits up to `timeout` seconds for a key. Returns nil on timeout; `.resize` events are
  /// reported through `resized`.
  func readKey(timeout: Double) -> Key?
  /// True once since the last call when the terminal changed size.
  func takeResize() -> Bool
  /// Applies a theme (colours or attributes per slot) and forces a full redraw.
  func apply(_ theme: Theme)
  /// Restores the terminal.
  func shutdown()
}

/// Keeps the last frame in memory; keys come from a script.
public final class CaptureBackend: ScreenBackend {
  public var size: (width: Int, height: Int)
  public var unicode: Bool
  /// The last presented frame.
  public private(set) var frame: CellGrid?
  /// Number of frames presented and cells written (after diffing).
  public private(set) var frames = 0
  public private(set) var cellsWritten = 0
  /// Keys to deliver, in order.
  public var script: [Key] = []
  private var resized = false
  public private(set) var theme: Theme?

  /// Creates a capture screen of the given size.
  public init(width: Int, height: Int, unicode: Bool = true) {
    size = (width, height)
    self.unicode = unicode
  }

  /// Changes the size, as a terminal resize would.
  public func resize(width: Int, height: Int) { size = (width, height); resized = true }

  public func present(_ grid: CellGrid) {
    for run in grid.changedRuns(since: frame) { cellsWritten += run.scalars.count }
    frame = grid
    frames += 1
  }

  public func readKey(timeout: Double) -> Key? {
    if script.isEmpty {
      if timeout > 0 { sleepSeconds(timeout) }
      return nil
    }
    return script.removeFirst()
  }

  public func takeResize() -> Bool { defer { resized = false }; return resized }
  public func apply(_ theme: Theme) { self.theme = theme; frame = nil }
  public func shutdown() {}
}
