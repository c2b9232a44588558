/* The codes the kernels share, defined once: _simd.h includes this header
 * and fastpe._kernels reads it through `cdef extern` (_simd.pxd). Only the
 * kernels see the codes: their entry points take the mode as arguments and
 * read the storage from the array's element type. */
#ifndef FASTPE_MODES_H
#define FASTPE_MODES_H

#include <float.h>

/* float64 holds every integer of magnitude up to 2**DBL_MANT_DIG (2**53)
 * exactly: the kernels step integer positions below it without rounding,
 * and fastpe._validation refuses positions from it on (its POSITION_LIMIT
 * is this value, read from fastpe._kernels). */
#define FPE_EXACT_INTEGERS ((double)(1LL << DBL_MANT_DIG))

/* What a kernel does with each row it applies. */
enum {
    FPE_MODE_STORE = 0,       /* dst = pe                 (tables) */
    FPE_MODE_ADD_INPLACE = 1, /* dst = dst * scale + pe */
    FPE_MODE_ADD_TO = 2       /* dst = src * scale + pe   (src, dst disjoint) */
};

/* How x is stored. The 16-bit types take float64 encoding rows: the sum is
 * formed in float64 and rounded once. */
enum {
    FPE_STORAGE_NATIVE = 0, /* float32 or float64 (the element type says which) */
    FPE_STORAGE_F16 = 1,    /* IEEE float16 */
    FPE_STORAGE_BF16 = 2    /* bfloat16 */
};

#endif
