// OpenBLAS's cblas.h (Debian: /usr/include/<triplet>/cblas.h). Own guard: OpenBLAS uses CBLAS_H.
#pragma once
#include <cblas.h>
