/* The codes the kernels share, defined once: _simd.h includes this header
 * and both kernel modules (_kernels.pyx, _bias_kernels.pyx) read it through
 * `cdef extern`. Only the kernels see them: their Python entry points are
 * one per mode and read the storage from the array's dtype. */
#ifndef FASTPE_MODES_H
#define FASTPE_MODES_H

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
