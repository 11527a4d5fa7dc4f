// ncursesw with its wide-character API. pkg-config's -D_XOPEN_SOURCE is not passed to the Swift
// importer, so NCURSES_WIDECHAR is defined here before the header.
#pragma once
#define NCURSES_WIDECHAR 1
#include <wchar.h>
#include <locale.h>
#include <langinfo.h>
#include <ncursesw/curses.h>

// A_* attributes, stdscr and wattr_set are macros the importer cannot see: wrap them.
static inline attr_t ccurses_a_normal(void) { return A_NORMAL; }
static inline attr_t ccurses_a_bold(void) { return A_BOLD; }
static inline attr_t ccurses_a_dim(void) { return A_DIM; }
static inline attr_t ccurses_a_reverse(void) { return A_REVERSE; }
static inline attr_t ccurses_a_underline(void) { return A_UNDERLINE; }
static inline WINDOW *ccurses_stdscr(void) { return stdscr; }
static inline int ccurses_colors(void) { return COLORS; }
static inline int ccurses_color_pairs(void) { return COLOR_PAIRS; }
static inline int ccurses_set_style(attr_t attrs, short pair) { return wattr_set(stdscr, attrs, pair, NULL); }
static inline int ccurses_put(int y, int x, const wchar_t *s, int n) { return mvwaddnwstr(stdscr, y, x, s, n); }
static inline int ccurses_put_bytes(int y, int x, const char *s, int n) { return mvwaddnstr(stdscr, y, x, s, n); }
#include <string.h>
// stdin/stdout are mutable C globals Swift 6 will not touch; CODESET is an enum the importer types as Int.
static inline SCREEN *ccurses_newterm(void) { return newterm(NULL, stdout, stdin); }
static inline int ccurses_locale_is_utf8(void) {
  const char *c = nl_langinfo(CODESET);
  return c && (strcmp(c, "UTF-8") == 0 || strcmp(c, "utf8") == 0 || strcmp(c, "UTF8") == 0);
}
