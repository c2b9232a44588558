# cython: language_level=3, cdivision=True
"""OpenMP kernels of fastpe: sinusoid rows, learned tables, rotary, attention biases.

Nothing here validates: the public functions (fastpe._sinusoid and the
other families) check every argument through fastpe._validation and build
the row offset tables before calling in, so these functions only read and
write memory. Every division in these files is of non-negative counts, so C
division is meant (``cdivision`` is on for this module alone); the one
division of a signed stride (column_step) asks for Python's floor.

The boundary (_kernels.pxd): an array arrives as an ArrayDesc (where its
first element is, its element type, its axes), the rows a kernel walks as
byte offsets, the plan as a Plan, and each kernel's work as a named
structure (Positions, BlockedTable, CosSin). The Python-level entry points
build these from NumPy arrays, with index arrays typed as memoryviews (an
index array of any other dtype is refused); the compiled front doors
(fastpe._frontdoor) build them in C and call the same entry points.

Work is cut into items of consecutive positions; each thread takes a
contiguous run of items (schedule="static"), computes one position's
encoding row at a time in float64 in its own scratch, and applies it to every
batch row that shares the position while the row is hot in cache. The
kernels cut their own work (_work_split) and size their own tiles
(_tile_rows); the team size comes from fastpe._runtime.resolve_threads and is
capped at the number of work items here.

The parts: arrays (descriptions, row offsets), the Plan, the sinusoid
generator, learned tables, rotary, the attention biases, bandwidth probes.
"""

cimport cython
cimport numpy as cnp
from cython.parallel cimport prange, threadid
from libc.stdint cimport uint16_t
from libc.math cimport NAN, fabs, floor, trunc
from libc.math cimport cos as libm_cos, sin as libm_sin
from libc.stdlib cimport free, malloc
from libc.string cimport memset

import numpy as np

cnp.import_array()

from fastpe._simd cimport *

cdef extern from "_openmp.h" nogil:
    int FPE_HAVE_OPENMP
    int fpe_omp_max_threads()
    int fpe_omp_version()
    int fpe_forked_child
    int fpe_watch_forks()

# The fork rule (fastpe._runtime): from here on, every child forked from this
# process is marked, whoever started OpenMP in it.
if fpe_watch_forks() != 0:
    raise ImportError("fastpe could not register its fork handler (pthread_atfork failed)")

# Written by setup.py into its build directory: how this extension was built.
cdef extern from "_fastpe_build_info.h":
    const char *FPE_BUILD_INFO_JSON

ctypedef fused floating:
    float
    double

# How x is stored (a 16-bit storage kind says which format its bits hold).
ctypedef fused storage_t:
    float
    double
    fpe_half

# A learned table's dtype, independent of x's.
ctypedef fused table_t:
    float
    double
    fpe_half    # a 16-bit table of x's own kind, added with scale 1 (_one_block)

cdef enum:
    # Frequencies per pass: the state of 512 frequencies (s, c, cos w, sin w:
    # 16 KiB) stays in L1 while a tile of rows is generated.
    COL_CHUNK = 512
    # Doubles in front of each thread's scratch: where its state stands (a Canonical).
    STATE_HEADER = 8
    # Work items a call is cut into (enough to balance a few threads), and the
    # fewest positions an item covers (each item pays for one seed).
    ITEMS_PER_CALL_ = 8
    MIN_BLOCK_ = 16

# Rows per tile. Written straight into one sequence, a tile of output rows
# stays in L2 across the frequency chunks; shared by several sequences, a tile
# of encoding rows is generated once and swept over groups of sequences'
# contiguous spans, long enough for the prefetcher and still in L2. Half of a
# 2 MiB L2 leaves room for the rows of x streaming through it (512 KiB against
# 1 MiB: docs/performance.rst).
cdef enum:
    TILE_DIRECT_BYTES = 256 * 1024
    TILE_SHARED_BYTES = 512 * 1024
    # A shared tile is swept over this many sequences at once, row by row:
    # each encoding row is read from L2 once per group and then from L1,
    # not once per sequence (docs/performance.rst, shared rows).
    SWEEP_GROUP = 4
    # The prepared 16-bit loops ask for x's elements whole rows of their
    # sequence ahead, at least this many bytes (_rows_ahead).
    PREFETCH_AHEAD_BYTES = 2048

# Positions between libm seeds (the canonical seed points are its multiples).
SEED_GRID = FPE_SEED_GRID
# float64 holds every integer of smaller magnitude exactly (2**53, _modes.h).
EXACT_INTEGERS = int(FPE_EXACT_INTEGERS)
ITEMS_PER_CALL = ITEMS_PER_CALL_
MIN_BLOCK = MIN_BLOCK_
SWEEP_GROUP_SEQUENCES = SWEEP_GROUP


def openmp_enabled():
    """True when the extension was compiled with OpenMP."""
    return bool(FPE_HAVE_OPENMP)


def openmp_version():
    """The _OPENMP date macro the extension was compiled against (0 without OpenMP)."""
    return fpe_omp_version()


def omp_max_threads():
    """OpenMP's default team size for this thread (OMP_NUM_THREADS, threadpoolctl)."""
    return fpe_omp_max_threads()


def forked_child():
    """True in a process forked (at any depth) from one that had imported fastpe."""
    return fpe_forked_child != 0


def teams_allowed():
    """True when a call may start an OpenMP team: built with OpenMP, and not a forked child."""
    return FPE_HAVE_OPENMP != 0 and fpe_forked_child == 0


def build_info():
    """How the extensions were built (setup.py): openmp, compiler, compile_args,
    link_args, native (-march=native), sanitize (ASan and UBSan)."""
    import json

    return json.loads(FPE_BUILD_INFO_JSON.decode("utf-8"))


def simd_level():
    """The vector instruction set the kernels' leaf loops run with on this CPU."""
    return fpe_simd_level().decode("ascii")


# ------------------------------------------------------------ the 16-bit rows
# _simd.h's choice of implementation for the 16-bit rows: one setting, in
# the one module that compiles _simd.h.

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


include "_kernels_arrays.pxi"
include "_kernels_plan.pxi"
include "_kernels_sinusoid.pxi"
include "_kernels_tables.pxi"
include "_kernels_rotate.pxi"
include "_kernels_bias.pxi"
include "_kernels_probe.pxi"
