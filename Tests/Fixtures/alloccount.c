// LD_PRELOAD library counting heap allocations, read by tptrain's AllocationProbe. Threads that
// call tptop_track_thread() (the training thread and the engine's worker-pool threads) are
// counted together in tptop_tracked_allocations(); allocations by MPI's progress threads and
// OpenBLAS's threads are not charged to the training step. Neither is what OpenBLAS allocates
// inside cblas_sgemm on the calling thread (its threaded GEMM queues each call's jobs on the
// heap), nor what OpenMPI allocates inside the calls the engine makes on the training thread
// (its collectives build schedules and temporary buffers on the heap): that is the libraries'
// memory, not the engine's.
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

static __thread int inside_library = 0;

static inline void bump(void) {
  if (tracked && !inside_library) atomic_fetch_add_explicit(&tracked_allocations, 1, memory_order_relaxed);
}

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int,
                         float, float *, int);

void cblas_sgemm(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc) {
  static sgemm_fn real = 0;
  if (!real) real = (sgemm_fn)dlsym(RTLD_NEXT, "cblas_sgemm");
  inside_library++;
  real(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  inside_library--;
}

// The MPI calls the engine makes inside a step, forwarded to the library with their own
// allocations uncounted. OpenMPI's handles are pointers, so `void *` stands for each handle type.
#define FORWARD_MPI(name, params, args)                        \
  int name params {                                            \
    static int (*real) params = 0;                             \
    if (!real) real = (int (*) params)dlsym(RTLD_NEXT, #name); \
    inside_library++;                                          \
    int rc = real args;                                        \
    inside_library--;                                          \
    return rc;                                                 \
  }

typedef void *H;
FORWARD_MPI(MPI_Iallreduce, (const void *s, void *r, int n, H t, H op, H c, H *q), (s, r, n, t, op, c, q))
FORWARD_MPI(MPI_Ireduce_scatter_block, (const void *s, void *r, int n, H t, H op, H c, H *q), (s, r, n, t, op, c, q))
FORWARD_MPI(MPI_Ireduce_scatter, (const void *s, void *r, const int *n, H t, H op, H c, H *q), (s, r, n, t, op, c, q))
FORWARD_MPI(MPI_Iallgather, (const void *s, int sn, H st, void *r, int rn, H rt, H c, H *q),
            (s, sn, st, r, rn, rt, c, q))
FORWARD_MPI(MPI_Ibcast, (void *b, int n, H t, int root, H c, H *q), (b, n, t, root, c, q))
FORWARD_MPI(MPI_Ibarrier, (H c, H *q), (c, q))
FORWARD_MPI(MPI_Isend, (const void *b, int n, H t, int to, int tag, H c, H *q), (b, n, t, to, tag, c, q))
FORWARD_MPI(MPI_Irecv, (void *b, int n, H t, int from, int tag, H c, H *q), (b, n, t, from, tag, c, q))
FORWARD_MPI(MPI_Test, (H *q, int *done, void *st), (q, done, st))
FORWARD_MPI(MPI_Testall, (int n, H *q, int *done, void *st), (n, q, done, st))
FORWARD_MPI(MPI_Wait, (H *q, void *st), (q, st))
FORWARD_MPI(MPI_Waitall, (int n, H *q, void *st), (n, q, st))

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
