// Does OpenBLAS compute a product cut into pieces bitwise as the whole one? `--overlap-tp` cuts
// its GEMMs into pieces of rows (and the weight gradient into pieces of output features) and
// promises the plain run's results, which holds only where the kernels give a row the same sums
// wherever it lies in a call.
//
//   cc -O2 scripts/gemm_pieces.c -o /tmp/gemm_pieces -lopenblas
//   OPENBLAS_NUM_THREADS=1 /tmp/gemm_pieces N n K MODE [STEP]
//
// MODE 0: C (N,n) = A (N,K) · B (K,n), pieces of rows (the input gradient)
// MODE 1: C (N,n) = A (N,K) · B (n,K)ᵀ, pieces of rows (the forward)
// MODE 2: C (K,n) = A (N,K)ᵀ · B (N,n), pieces of C's rows (the weight gradient by features)
// Prints the piece sizes (multiples of STEP, default 4) whose result differs from the whole
// product in any bit; nothing after "bad:" means every piece size matched.
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void product(int mode, int N, int n, int K, const float *a, const float *b, float *c, int r0, int rows) {
  if (mode == 0)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, n, K, 1, a + (size_t)r0 * K, K, b, n, 0, c + (size_t)r0 * n, n);
  else if (mode == 1)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n, K, 1, a + (size_t)r0 * K, K, b, K, 0, c + (size_t)r0 * n, n);
  else
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, rows, n, N, 1, a + r0, K, b, n, 0, c + (size_t)r0 * n, n);
}

int main(int argc, char **argv) {
  if (argc < 5) { fprintf(stderr, "usage: gemm_pieces N n K MODE [STEP]\n"); return 2; }
  int N = atoi(argv[1]), n = atoi(argv[2]), K = atoi(argv[3]), mode = atoi(argv[4]);
  int step = argc > 5 ? atoi(argv[5]) : 4;
  int total = mode == 2 ? K : N;
  size_t bcount = (size_t)(mode == 2 ? N : K) * n;
  float *a = malloc(4 * (size_t)N * K), *b = malloc(4 * bcount);
  float *whole = malloc(4 * (size_t)total * n), *cut = malloc(4 * (size_t)total * n);
  srand(1);
  for (size_t i = 0; i < (size_t)N * K; i++) a[i] = rand() / (float)RAND_MAX - 0.5f;
  for (size_t i = 0; i < bcount; i++) b[i] = rand() / (float)RAND_MAX - 0.5f;
  product(mode, N, n, K, a, b, whole, 0, total);
  printf("N=%d n=%d K=%d mode=%d bad:", N, n, K, mode);
  for (int rows = step; rows < total; rows += step) {
    for (int r0 = 0; r0 < total; r0 += rows) product(mode, N, n, K, a, b, cut, r0, r0 + rows > total ? total - r0 : rows);
    if (memcmp(whole, cut, 4 * (size_t)total * n)) printf(" %d", rows);
  }
  printf("\n");
  return 0;
}
