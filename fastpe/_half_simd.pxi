# Included by both kernel modules: each holds its own copy of _simd.h's
# choice of implementation for the 16-bit rows.

# Indexed by _simd.h's FPE_HALF_* levels.
HALF_SIMD_LEVELS = ("portable", "avx2", "avx512", "avx512bf16")

fpe_half_simd_init()


def half_simd():
    """The implementation of the 16-bit rows in use: "avx512bf16", "avx512", "avx2" or "portable"."""
    return HALF_SIMD_LEVELS[fpe_half_level]


def set_half_simd(name):
    """Use another implementation of the 16-bit rows ("avx512bf16" (AVX-512
    with AVX512-BF16), "avx512", "avx2" (AVX2 with F16C) or
    "portable"); returns the previous one. All give the same
    bits: the switch exists so the tests can check each. A level this CPU
    (or build) lacks is a ValueError."""
    global fpe_half_level
    if name not in HALF_SIMD_LEVELS:
        raise ValueError(f"name must be one of {HALF_SIMD_LEVELS}, got {name!r}")
    level = HALF_SIMD_LEVELS.index(name)
    if level > fpe_half_best():
        raise ValueError(f"the {name} 16-bit rows are not available on this CPU or build")
    previous = HALF_SIMD_LEVELS[fpe_half_level]
    fpe_half_level = level
    return previous
