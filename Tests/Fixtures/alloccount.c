// LD_PRELOAD library counting heap allocations, read by tptrain's AllocationProbe. Threads that
// call tptop_track_thread() (the training thread and the engine's worker-pool threads) are
// counted together in tptop_tracked_allocations(); allocations by MPI's progress threads and
// OpenBLAS's threads are not charged to the training step. Neither is what OpenBLAS allocates
// inside cblas_sgemm on the calling thread (its threaded GEMM queues each call's jobs on the
// heap): like MPI's internal buffers, that is the library's memory, not the engine's.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stddef.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static __thread int tracked = 0;
static atomic_long tracked_allocations = 0;

void tptop_track_thread(void) { tracked = 1; }
long tptop_tracked_allocations(void) { return atomic_load(&tracked_allocations); }

static __thread int inside_blas = 0;

static inline void bump(void) {
  if (tracked && !inside_blas) atomic_fetch_add_explicit(&tracked_allocations, 1, memory_order_relaxed);
}

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int,
                         float, float *, int);

void cblas_sgemm(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc) {
  static sgemm_fn real = 0;
  if (!real) real = (sgemm_fn)dlsym(RTLD_NEXT, "cblas_sgemm");
  inside_blas++;
  real(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  inside_blas--;
}

void *malloc(size_t n) { bump(); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { bump(); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { bump(); return __libc_realloc(p, n); }
void *memalign(size_t a, size_t n) { bump(); return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { bump(); return __libc_memalign(a, n); }
int posix_memalign(void **out, size_t a, size_t n) {
  bump();
  void *p = __libc_memalign(a, n);
  if (!p) return 12;
  *out = p;
  return 0;
}
