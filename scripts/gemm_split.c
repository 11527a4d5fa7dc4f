// How to run one GEMM on two threads: OpenBLAS's own threads against the same product cut into
// chunks of C's rows (or columns) that two plain threads claim, each chunk a single-threaded
// OpenBLAS call (what the engine's `pooledSgemm` does). The variants alternate call by call, so
// a busy host slows all of them alike; medians over the rounds.
//
//   cc -O2 -pthread scripts/gemm_split.c -o /tmp/gemm_split -lopenblas
//   /tmp/gemm_split [ROUNDS]          (OPENBLAS_CORETYPE=Haswell for the AVX2 kernels)
//
// Shapes: every GEMM of a `small` (C384, V256) step at B8 T256, TP=1. Prints per shape the
// median ms of each variant and GFLOP/s.
#include <cblas.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern void openblas_set_num_threads(int);

typedef struct { int ta, tb, m, n, k; const char *name; } Shape;
static Shape shapes[] = {
  {0, 1, 2048, 1152, 384, "qkv fwd"}, {0, 1, 2048, 384, 384, "attproj fwd"},
  {0, 1, 2048, 1536, 384, "fc fwd"}, {0, 1, 2048, 384, 1536, "fcproj fwd"}, {0, 1, 2048, 256, 384, "lm head fwd"},
  {0, 0, 2048, 384, 1152, "qkv dinp"}, {0, 0, 2048, 384, 1536, "fc dinp"}, {0, 0, 2048, 1536, 384, "fcproj dinp"},
  {1, 0, 1152, 384, 2048, "qkv dW"}, {1, 0, 384, 384, 2048, "attproj dW"}, {1, 0, 1536, 384, 2048, "fc dW"},
  {1, 0, 384, 1536, 2048, "fcproj dW"}, {1, 0, 256, 384, 2048, "lm head dW"},
};

static float *A, *B, *C;
static Shape cur;
static int chunks, byRows;
static atomic_int cursor, done;
static atomic_int go;
static sem_t wake;
static atomic_int sleeping;

static void piece(int c) {
  int extent = byRows ? cur.m : cur.n, units = (extent + 63) / 64;
  int r0 = units * c / chunks * 64, r1 = units * (c + 1) / chunks * 64;
  if (r1 > extent) r1 = extent;
  if (r0 >= r1) return;
  int lda = cur.ta ? cur.m : cur.k, ldb = cur.tb ? cur.k : cur.n;
  if (byRows)
    cblas_sgemm(CblasRowMajor, cur.ta ? CblasTrans : CblasNoTrans, cur.tb ? CblasTrans : CblasNoTrans, r1 - r0, cur.n, cur.k, 1,
                cur.ta ? A + r0 : A + (size_t)r0 * lda, lda, B, ldb, 0, C + (size_t)r0 * cur.n, cur.n);
  else
    cblas_sgemm(CblasRowMajor, cur.ta ? CblasTrans : CblasNoTrans, cur.tb ? CblasTrans : CblasNoTrans, cur.m, r1 - r0, cur.k, 1,
                A, lda, cur.tb ? B + (size_t)r0 * ldb : B + r0, ldb, 0, C + r0, cur.n);
}

static void claim(void) {
  for (int c; (c = atomic_fetch_add(&cursor, 1)) < chunks;) piece(c);
}

static void *helper(void *arg) {
  (void)arg;
  int seen = 0;
  for (;;) {
    int g, polls = 0;
    // spin a little, then sleep until woken (as the engine's pool does), so the helper does
    // not take a core from OpenBLAS's own threads between jobs
    while ((g = atomic_load(&go)) == seen) {
      if (++polls < 20000) continue;
      atomic_store(&sleeping, 1);
      if (atomic_load(&go) == seen) sem_wait(&wake);
      else if (atomic_exchange(&sleeping, 0) == 0) sem_wait(&wake);  // consume the poster's wake
      polls = 0;
    }
    if (g < 0) return NULL;
    seen = g;
    claim();
    atomic_fetch_add(&done, 1);
  }
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 30;
  size_t big = 2048 * 1536;
  A = malloc(4 * big); B = malloc(4 * big); C = malloc(4 * big);
  for (size_t i = 0; i < big; i++) { A[i] = (i % 7) * 1e-3f; B[i] = (i % 5) * 1e-3f; C[i] = 0; }
  pthread_t h;
  sem_init(&wake, 0, 0);
  pthread_create(&h, NULL, helper, NULL);
  int gen = 0;
  enum { V = 4 };
  const char *names[V] = {"openblas-2thr", "pool-2chunks", "pool-4chunks", "pool-8chunks"};
  int nchunks[V] = {0, 2, 4, 8};
  printf("%-12s %s\n", "shape", "median ms (GFLOP/s): openblas 2 threads | pool 2 | 4 | 8 chunks");
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    cur = shapes[s];
    byRows = cur.n <= cur.m;
    double *t[V];
    for (int v = 0; v < V; v++) t[v] = malloc(sizeof(double) * rounds);
    for (int r = 0; r < rounds + 2; r++) {
      for (int v0 = 0; v0 < V; v0++) {
        int v = (v0 + r) % V;
        double t0 = now();
        if (v == 0) {
          openblas_set_num_threads(2);
          cblas_sgemm(CblasRowMajor, cur.ta ? CblasTrans : CblasNoTrans, cur.tb ? CblasTrans : CblasNoTrans, cur.m, cur.n, cur.k, 1,
                      A, cur.ta ? cur.m : cur.k, B, cur.tb ? cur.k : cur.n, 0, C, cur.n);
          openblas_set_num_threads(1);
        } else {
          chunks = nchunks[v];
          atomic_store(&cursor, 0);
          atomic_store(&done, 0);
          atomic_store(&go, ++gen);
          if (atomic_exchange(&sleeping, 0)) sem_post(&wake);
          claim();
          while (atomic_load(&done) < 1) {}
        }
        if (r >= 2) t[v][r - 2] = now() - t0;
      }
    }
    double flops = 2.0 * cur.m * cur.n * cur.k;
    printf("%-12s", cur.name);
    for (int v = 0; v < V; v++) {
      qsort(t[v], rounds, sizeof(double), cmp);
      double med = t[v][rounds / 2];
      printf(" | %7.3f (%5.1f)", med * 1e3, flops / med / 1e9);
      free(t[v]);
    }
    printf("\n");
    fflush(stdout);
  }
  atomic_store(&go, -1);
  if (atomic_exchange(&sleeping, 0)) sem_post(&wake);
  pthread_join(h, NULL);
  (void)names;
  return 0;
}
