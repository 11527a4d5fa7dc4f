// glibc's CPU-affinity calls are GNU extensions: <sched.h> declares them only under _GNU_SOURCE,
// which would change glibc's structs against the ones Swift's Glibc module already imported, and
// CPU_SET/CPU_ISSET are macros. So the two calls are declared here under their own names, bound
// to the glibc symbols, taking a cpu_set_t as its raw bit array (CPU c = bit c%64 of word c/64).
#pragma once
#include <stddef.h>

/// sched_getaffinity(2): the CPUs `pid` (0 = the calling thread) may run on. 0, or -1 on error.
extern int csched_getaffinity(int pid, size_t bytes, unsigned long long *mask) __asm__("sched_getaffinity");
/// sched_setaffinity(2): binds `pid` (0 = the calling thread) to the CPUs in `mask`. 0, or -1.
extern int csched_setaffinity(int pid, size_t bytes, const unsigned long long *mask) __asm__("sched_setaffinity");
/// pthread_setname_np(3), also a GNU extension: names thread `thread` (pthread_self() for the
/// caller) as top -H and /proc/PID/task/TID/comm show it; 15 bytes at most. 0, or an errno.
extern int csched_setname(unsigned long thread, const char *name) __asm__("pthread_setname_np");
