/* The one place fastpe touches the OpenMP runtime. Without OpenMP the same
 * source builds serial kernels: these stubs report one thread. */
#ifndef FASTPE_OPENMP_H
#define FASTPE_OPENMP_H

#if defined(_OPENMP)
#include <omp.h>
#define FPE_HAVE_OPENMP 1
static int fpe_omp_max_threads(void) { return omp_get_max_threads(); }
static int fpe_omp_version(void) { return _OPENMP; }
#else
#define FPE_HAVE_OPENMP 0
static int fpe_omp_max_threads(void) { return 1; }
static int fpe_omp_version(void) { return 0; }
#endif

#endif
