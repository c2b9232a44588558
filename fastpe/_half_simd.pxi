# Included by both kernel modules: each holds its own copy of _simd.h's
# switch between the AVX-512 and the portable 16-bit rows.

fpe_half_simd_init()


def set_half_simd(bint enable):
    """Use the AVX-512 rows for 16-bit storage (when the CPU has them) or the
    portable loops; returns the previous setting. Both give the same bits:
    the switch exists so the tests can check each."""
    global fpe_half_avx512
    cdef int previous = fpe_half_avx512
    fpe_half_avx512 = fpe_half_simd_init() if enable else 0
    return bool(previous)
