import CCurses
import Foundation

// The only code that touches curses. It draws grids (only the runs of cells that changed since
// the last frame), reads keys, maps theme slots to colour pairs, and restores the terminal on
// every way out: normal exit, Ctrl-C, SIGTERM/SIGHUP, and crash signals.

/// True while curses owns the terminal; read by the signal handlers.
nonisolated(unsafe) private var cursesActive = false

/// Restores the terminal if curses owns it. Safe to call more than once.
private func restoreTerminal() {
  if cursesActive {
    cursesActive = false
    curs_set(1)
    endwin()
  }
}

/// A curses screen on the process's terminal.
public final class CursesBackend: ScreenBackend {
  private var previous: CellGrid?
  private var pairsForSlots: [(attr_t, Int16)] = []
  private var resized = false
  private var wbuf: [wchar_t] = []
  private var bbuf: [CChar] = []
  /// Colours available (0 when colours are off).
  public private(set) var colors = 0
  public let unicode: Bool
  private let colorAllowed: Bool

  /// Takes over the terminal. Returns nil (with the reason) when it cannot.
  public init?(environment: [String: String] = ProcessInfo.processInfo.environment, reason: inout String) {
    setlocale(LC_ALL, "")
    let term = environment["TERM"] ?? ""
    unicode = ccurses_locale_is_utf8() != 0 && term != "dumb"
    colorAllowed = environment["NO_COLOR"].map { $0.isEmpty } ?? true && term != "dumb"
    guard isatty(1) != 0, isatty(0) != 0 else { reason = "stdin/stdout is not a terminal"; return nil }
    // newterm, unlike initscr, returns instead of exiting when the terminal is unusable.
    guard ccurses_newterm() != nil else { reason = "cannot initialise terminal type `\(term)`"; return nil }
    cursesActive = true
    CursesBackend.installSignalHandlers()
    cbreak()
    noecho()
    nonl()
    keypad(ccurses_stdscr(), true)
    curs_set(0)
    set_escdelay(25)
    if colorAllowed && has_colors() {
      start_color()
      _ = use_default_colors()
      colors = Int(ccurses_colors())
    }
  }

  deinit { restoreTerminal() }

  static func installSignalHandlers() {
    // Quit signals: restore, then leave with the conventional status. The job keeps running.
    for sig in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] {
      signal(sig) { s in
        restoreTerminal()
        _exit(128 + s)
      }
    }
    // Crash signals: restore, then let the default action produce the usual report/core.
    for sig in [SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP] {
      signal(sig) { s in
        restoreTerminal()
        signal(s, SIG_DFL)
        raise(s)
      }
    }
    atexit { restoreTerminal() }
  }

  public var size: (width: Int, height: Int) {
    (Int(getmaxx(ccurses_stdscr())), Int(getmaxy(ccurses_stdscr())))
  }

  public func apply(_ theme: Theme) {
    pairsForSlots = []
    let useColour = colors >= 8 && !theme.monochrome
    for (i, s) in Style.allCases.enumerated() {
      let look = theme.look(s)
      var attrs = ccurses_a_normal()
      var a = look.attributes
      if !useColour { a.formUnion(Theme.monoFallback(s)) }
      if a.contains(.bold) { attrs |= ccurses_a_bold() }
      if a.contains(.dim) { attrs |= ccurses_a_dim() }
      if a.contains(.reverse) { attrs |= ccurses_a_reverse() }
      if a.contains(.underline) { attrs |= ccurses_a_underline() }
      var pair: Int16 = 0
      if useColour && i + 1 < Int(ccurses_color_pairs()) {
        pair = Int16(i + 1)
        init_pair(pair, Int16(look.foreground.resolved(colors: colors)), Int16(look.background.resolved(colors: colors)))
      }
      pairsForSlots.append((attrs, pair))
    }
    let (na, np) = pairsForSlots[0]
    wbkgdset(ccurses_stdscr(), chtype(na) | chtype(COLOR_PAIR(Int32(np))) | chtype(32))
    previous = nil
    clearok(ccurses_stdscr(), true)
  }

  public func present(_ grid: CellGrid) {
    if pairsForSlots.isEmpty { apply(Theme.builtIn) }
    for run in grid.changedRuns(since: previous) {
      let (attrs, pair) = pairsForSlots[Int(run.style.rawValue)]
      ccurses_set_style(attrs, pair)
      // Every cell is written, the bottom-right one too: with scrolling off, curses places that
      // character and reports ERR only because the cursor cannot move on (ncurses' addch(3x)),
      // and paints it with insert-character where the terminal wraps at the margin. A skipped
      // corner kept whatever an earlier frame or the terminal had left there.
      let n = run.scalars.count
      guard n > 0 else { continue }
      if unicode {
        wbuf.removeAll(keepingCapacity: true)
        for s in run.scalars.prefix(n) { wbuf.append(wchar_t(bitPattern: s.value)) }
        _ = wbuf.withUnsafeBufferPointer { ccurses_put(Int32(run.y), Int32(run.x), $0.baseAddress, Int32(n)) }
      } else {
        bbuf.removeAll(keepingCapacity: true)
        for s in run.scalars.prefix(n) { bbuf.append(CChar(bitPattern: UInt8(s.value < 0x7F ? s.value : 0x3F))) }
        _ = bbuf.withUnsafeBufferPointer { ccurses_put_bytes(Int32(run.y), Int32(run.x), $0.baseAddress, Int32(n)) }
      }
    }
    previous = grid
    refresh()
  }

  public func readKey(timeout: Double) -> Key? {
    wtimeout(ccurses_stdscr(), Int32(max(0, min(timeout, 60)) * 1000))
    var ch: wint_t = 0
    let rc = wget_wch(ccurses_stdscr(), &ch)
    if rc == ERR { return nil }
    if rc == KEY_CODE_YES {
      switch Int32(ch) {
      case KEY_RESIZE:
        resized = true
        previous = nil
        return nil
      case KEY_LEFT: return .left
      case KEY_RIGHT: return .right
      case KEY_UP: return .up
      case KEY_DOWN: return .down
      case KEY_PPAGE: return .pageUp
      case KEY_NPAGE: return .pageDown
      case KEY_HOME: return .home
      case KEY_END: return .end
      case KEY_BTAB: return .backTab
      case KEY_ENTER: return .enter
      default: return nil
      }
    }
    switch ch {
    case 9: return .tab
    case 10, 13: return .enter
    case 27: return .escape
    default:
      guard let s = Unicode.Scalar(UInt32(ch)) else { return nil }
      return .char(Character(s))
    }
  }

  public func takeResize() -> Bool {
    defer { resized = false }
    return resized
  }

  public func shutdown() { restoreTerminal() }
}
