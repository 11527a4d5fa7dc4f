// futex(2) on a 32-bit word of shared memory. syscall(2) is variadic, so Swift cannot call it;
// these two inline wrappers give the calls fixed types. The word may live in a mapping other
// processes share (no FUTEX_PRIVATE_FLAG): the kernel keys the wait on the page, not the address.
#pragma once
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/futex.h>

/// Sleeps while `*word == expected`, at most `timeout_ns`. 0 when woken (or spuriously);
/// otherwise the errno: EAGAIN (the word already differed), ETIMEDOUT, EINTR.
static inline int cfutex_wait(uint32_t *word, uint32_t expected, int64_t timeout_ns) {
  struct timespec t = { (time_t)(timeout_ns / 1000000000), (long)(timeout_ns % 1000000000) };
  long r = syscall(SYS_futex, word, FUTEX_WAIT, expected, &t, NULL, 0);
  return r == 0 ? 0 : errno;
}

/// Wakes every process sleeping on `word`; returns how many woke, or -1.
static inline int cfutex_wake_all(uint32_t *word) {
  return (int)syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}
