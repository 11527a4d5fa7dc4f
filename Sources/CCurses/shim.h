// ncursesw with its wide-character API. pkg-config's -D_XOPEN_SOURCE is not passed to the Swift
// importer, so NCURSES_WIDECHAR is defined here before the header.
#pragma once
#define NCURSES_WIDECHAR 1
#include <wchar.h>
#include <locale.h>
#include <ncursesw/curses.h>
