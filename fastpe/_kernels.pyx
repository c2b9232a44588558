# cython: language_level=3
"""OpenMP kernels of fastpe.

Nothing here validates: the public functions (fastpe._sinusoid and the
other families) check every argument through fastpe._validation and build
the row offset tables before calling in, so these functions only read and
write memory. Arrays are passed as raw pointers plus byte offsets so that any
strided layout (negative strides, transposed batch axes) is written in place.

The entry points are one per mode (store a table, add in place, add to a
separate source; see "entry points" below) and read the element type from
the arrays' dtypes. Inside, each fused function is specialised by the type
of a real argument it uses: the encoding rows of the scratch (sinusoids),
the table, or the destination (x's storage type).

Work is cut into items of consecutive positions; each thread takes a
contiguous run of items (schedule="static"), computes one position's
encoding row at a time in float64 in its own scratch, and applies it to every
batch row that shares the position while the row is hot in cache.
"""

cimport numpy as cnp
from cython.parallel cimport prange, threadid
from libc.stdint cimport int32_t, uint8_t, uint16_t
from libc.math cimport fabs, floor, trunc
from libc.string cimport memset

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

cdef enum:
    # Frequencies per pass: the state of 512 frequencies (s, c, cos w, sin w:
    # 16 KiB) stays in L1 while a tile of rows is generated.
    COL_CHUNK = 512
    # Doubles in front of each thread's scratch: where its state stands (a Canonical).
    STATE_HEADER = 8
    _SEED_GRID = 256

# Positions between libm seeds (the canonical seed points are its multiples).
SEED_GRID = _SEED_GRID


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


include "_half_simd.pxi"


cdef struct Plan:
    const double *freq        # the pair frequencies w_k = freq[k] + freq_lo[k] (a double-double)
    const double *freq_lo
    const double *step_cos    # cos(w_k), sin(w_k): one position's rotation
    const double *step_sin
    fpe_idx n_freq
    fpe_idx n_sin             # frequencies 0..n_sin-1 have a sine column,
    fpe_idx n_cos             # 0..n_cos-1 a cosine column
    fpe_idx sin_col           # column of frequency k's sine: sin_col + k * col_step
    fpe_idx cos_col           # column of its cosine:        cos_col + k * col_step
    fpe_idx col_step
    const fpe_idx *zero_cols  # columns no frequency writes: they hold 0
    fpe_idx n_zero
    fpe_idx n_cols
    double zero_pos           # a position whose encoding is all zeros (NaN: none)
    const void *zeros         # n_cols zeros (of any storage type), applied at zero_pos


cdef struct Target:
    char *dst
    const char *src
    const fpe_idx *dst_rows   # byte offsets of the rows that receive the encoding
    const fpe_idx *src_rows
    fpe_idx dst_cs            # column strides, in elements
    fpe_idx src_cs
    double scale
    int mode
    int kind                  # FPE_STORAGE_*


cdef inline void _emit1(floating *dst, const floating *src, fpe_idx col, double v,
                        const Target *tg) noexcept nogil:
    """Emit one value into column col of a row, with the bits the whole-row
    paths give it."""
    if floating is float:
        fpe_emit_column_f32(dst + col * tg.dst_cs, src + col * tg.src_cs, tg.scale, v, tg.mode)
    else:
        fpe_emit_column_f64(dst + col * tg.dst_cs, src + col * tg.src_cs, tg.scale, v, tg.mode)


cdef inline void _emit_zero_cols(floating *dst, const floating *src, const Plan *pl,
                                 const Target *tg) noexcept nogil:
    cdef fpe_idx i
    for i in range(pl.n_zero):
        _emit1(dst, src, pl.zero_cols[i], 0.0, tg)


cdef inline fpe_cols _cols(const Plan *pl, fpe_idx cs) noexcept nogil:
    """Where the sine and cosine columns of a row with column stride cs lie."""
    cdef fpe_cols cols
    cols.sin_off = pl.sin_col * cs
    cols.cos_off = pl.cos_col * cs
    cols.ks = pl.col_step * cs
    return cols


cdef inline void _step_odd(floating *dst, const floating *src, const Plan *pl,
                           const Target *tg, double *s, double *c,
                           fpe_idx k0, fpe_idx k1) noexcept nogil:
    """The frequencies of k0..k1-1 with only a sine or only a cosine column
    (odd widths): emit them into one row and advance them."""
    cdef fpe_idx k
    for k in range(max(k0, min(pl.n_sin, pl.n_cos)), k1):
        if k < pl.n_sin:
            _emit1(dst, src, pl.sin_col + k * pl.col_step, s[k], tg)
        if k < pl.n_cos:
            _emit1(dst, src, pl.cos_col + k * pl.col_step, c[k], tg)
        fpe_advance(s + k, c + k, pl.step_cos + k, pl.step_sin + k, 1)


cdef inline void _step_chunk(floating *dst, const floating *src, const Plan *pl,
                             const Target *tg, double *s, double *c,
                             fpe_idx k0, fpe_idx k1) noexcept nogil:
    """Emit frequencies k0..k1-1 of the current position into a row (per
    tg.mode) and advance their state one position."""
    cdef fpe_cols d = _cols(pl, tg.dst_cs), r = _cols(pl, tg.src_cs)
    cdef fpe_idx kb = min(k1, min(pl.n_sin, pl.n_cos)), n = kb - k0
    cdef floating *dk = dst + k0 * d.ks
    cdef const floating *sk = src + k0 * r.ks
    if n > 0:
        if floating is float:
            fpe_step_f32(dk, d, sk, r, tg.scale, tg.mode, s + k0, c + k0, pl.step_cos + k0, pl.step_sin + k0, n)
        else:
            fpe_step_f64(dk, d, sk, r, tg.scale, tg.mode, s + k0, c + k0, pl.step_cos + k0, pl.step_sin + k0, n)
    _step_odd(dst, src, pl, tg, s, c, k0, k1)


cdef inline void _step_rows(floating *dst, const floating *src, fpe_idx dst_rs, fpe_idx src_rs,
                            fpe_idx rows, const Plan *pl, const Target *tg, double *s, double *c,
                            fpe_idx k0, fpe_idx k1) noexcept nogil:
    """_step_chunk over `rows` consecutive positions, into rows dst_rs (src_rs)
    bytes apart: the state of a few frequencies stays in registers across a
    block of rows (see fpe_rows_* in _simd.h), with the same bits."""
    cdef fpe_cols d = _cols(pl, tg.dst_cs), r = _cols(pl, tg.src_cs)
    cdef fpe_idx kb = min(k1, min(pl.n_sin, pl.n_cos)), n = kb - k0, t
    cdef floating *dk = dst + k0 * d.ks
    cdef const floating *sk = src + k0 * r.ks
    if n > 0:
        if floating is float:
            fpe_rows_f32(dk, dst_rs, d, sk, src_rs, r, tg.scale, tg.mode, rows, s + k0, c + k0,
                         pl.step_cos + k0, pl.step_sin + k0, n)
        else:
            fpe_rows_f64(dk, dst_rs, d, sk, src_rs, r, tg.scale, tg.mode, rows, s + k0, c + k0,
                         pl.step_cos + k0, pl.step_sin + k0, n)
    if k1 > max(k0, kb):
        for t in range(rows):
            _step_odd(<floating *>(<char *>dst + t * dst_rs),
                      <const floating *>(<const char *>src + t * src_rs), pl, tg, s, c, k0, k1)


cdef inline fpe_idx _zero_row(double start, fpe_idx a, fpe_idx b, double zero_pos) noexcept nogil:
    """The first row t of a..b-1 at the all-zero position, or b."""
    cdef fpe_idx t
    for t in range(a, b):
        if start + <double>t == zero_pos:
            return t
    return b


cdef inline void _apply_half_row(fpe_half *dst, const fpe_half *src, const table_t *pe,
                                 fpe_idx n, const Target *tg) noexcept nogil:
    """Apply a whole float32/float64 row pe to a 16-bit row per tg.mode."""
    if tg.kind == FPE_STORAGE_F16:
        if table_t is double:
            fpe_apply_f16_f64(dst, tg.dst_cs, src, tg.src_cs, pe, tg.scale, n, tg.mode)
        else:
            fpe_apply_f16_f32(dst, tg.dst_cs, src, tg.src_cs, pe, tg.scale, n, tg.mode)
    elif table_t is double:
        fpe_apply_bf16_f64(dst, tg.dst_cs, src, tg.src_cs, pe, tg.scale, n, tg.mode)
    else:
        fpe_apply_bf16_f32(dst, tg.dst_cs, src, tg.src_cs, pe, tg.scale, n, tg.mode)


cdef inline void _apply_row(floating *dst, const floating *src, const floating *pe,
                            fpe_idx n, const Target *tg) noexcept nogil:
    """Apply a whole encoding row pe (column order, storage type; float64 for
    the 16-bit types) per tg.mode."""
    if tg.kind != FPE_STORAGE_NATIVE:
        _apply_half_row(<fpe_half *>dst, <const fpe_half *>src, pe, n, tg)
    elif floating is float:
        fpe_apply_f32(dst, tg.dst_cs, src, tg.src_cs, pe, tg.scale, n, tg.mode)
    else:
        fpe_apply_f64(dst, tg.dst_cs, src, tg.src_cs, pe, tg.scale, n, tg.mode)

cdef inline void _row_into_buffer(floating *row, const Plan *pl, double *s, double *c,
                                  bint zero) noexcept nogil:
    """Write the current position's row, rounded to the storage type, into a
    buffer (column order; zero columns are never written, the buffer starts
    zeroed) and advance."""
    cdef Target buf
    buf.mode = FPE_MODE_STORE
    buf.dst_cs = 1
    buf.src_cs = 1
    buf.scale = 1.0
    if zero:
        memset(row, 0, pl.n_cols * sizeof(floating))
        fpe_advance(s, c, pl.step_cos, pl.step_sin, pl.n_freq)
    else:
        _step_chunk(row, row, pl, &buf, s, c, 0, pl.n_freq)


cdef inline void _rows_into_buffer(floating *rows, const Plan *pl, double *s, double *c,
                                   double start, fpe_idx a, fpe_idx b) noexcept nogil:
    """_row_into_buffer for the consecutive positions start + a .. start + b - 1,
    into consecutive rows of the buffer."""
    cdef Target buf
    cdef fpe_idx n = pl.n_cols, rs = n * sizeof(floating), u = a, z
    buf.mode = FPE_MODE_STORE
    buf.dst_cs = 1
    buf.src_cs = 1
    buf.scale = 1.0
    while u < b:
        z = _zero_row(start, u, b, pl.zero_pos)
        if z > u:
            _step_rows(rows + (u - a) * n, rows + (u - a) * n, rs, rs, z - u, pl, &buf, s, c,
                       0, pl.n_freq)
        if z < b:
            _row_into_buffer(rows + (z - a) * n, pl, s, c, True)
            z += 1
        u = z


# ------------------------------------------------------- one position, one set of bits
# The row of position p is a pure function of p: with n its integer part
# (toward zero) and k = n mod SEED_GRID (0 <= k < SEED_GRID), the state is
# seeded (fpe_seed: the exact angles) at the canonical point (n - k) + (p - n)
# and rotated k times; the row is that state, rounded once to the storage
# type. For an integer p the canonical point is the multiple of SEED_GRID at
# or below it; a fractional p keeps its fraction (300.25 is seeded at 256.25,
# -300.5 at -512.5, and every |p| < 1 at p itself, so a position near 0 is
# never 255 rotations from its seed). The point is a float64 except for
# fractional p in (-2**52, -2**52 + 256), which are seeded at p itself. Every path (tables,
# encode, adds, explicit positions, any offset, batch, thread count or work
# split) reaches p by this path; it only chooses to continue a state it
# already has at the same canonical point instead of seeding again, which
# gives the same bits.

cdef struct Canonical:
    double at                 # the canonical seed point
    fpe_idx steps             # rotations from it (-1: no state yet)


cdef inline Canonical _canonical(double p) noexcept nogil:
    cdef double n = trunc(p)
    # Exact: n / SEED_GRID is a power-of-two division, so k is an integer in [0, SEED_GRID).
    cdef double k = n - _SEED_GRID * floor(n / _SEED_GRID)
    cdef Canonical to
    to.at = (n - k) + (p - n)
    to.steps = <fpe_idx>k
    if to.at - (n - k) != p - n:
        # Not a float64 (a fractional p just above -2**52: n - k passes -2**52,
        # where halves no longer exist): seed at p itself.
        to.at = p
        to.steps = 0
    return to


cdef inline void _move_state(double *s, double *c, const Plan *pl, Canonical *state,
                             Canonical to) noexcept nogil:
    """Bring the state to the canonical path of `to`: continue it when it sits
    at the same seed point and not past `to`, else seed there; then rotate."""
    if state.steps < 0 or to.at != state.at or to.steps < state.steps:
        fpe_seed(s, c, to.at, pl.freq, pl.freq_lo, pl.n_freq)
        state.at = to.at
        state.steps = 0
    if to.steps > state.steps:
        fpe_skip(s, c, pl.step_cos, pl.step_sin, pl.n_freq, to.steps - state.steps)
    state.steps = to.steps


cdef inline fpe_idx _run_end(double start, fpe_idx a, fpe_idx t1, Canonical first) noexcept nogil:
    """The end of the run of rows a.. (positions start + t) that one state
    reaches by consecutive rotations from first: the next canonical point, t1,
    or (fractional positions only) a row whose rounded position leaves the run."""
    cdef fpe_idx t, lim = min(t1, a + (_SEED_GRID - first.steps))
    cdef Canonical here
    if start == floor(start) and fabs(start) + <double>t1 <= 9007199254740992.0:
        return lim  # integer positions, all exact
    for t in range(a + 1, lim):
        here = _canonical(start + <double>t)
        if here.at != first.at or here.steps != first.steps + (t - a):
            return t
    return lim


cdef inline void _forget_states(double *scratch, fpe_idx per_thread, int n_threads) noexcept nogil:
    cdef int i
    for i in range(n_threads):
        (<Canonical *>(scratch + i * per_thread)).steps = -1


cdef inline floating *_own(floating *first, fpe_idx per_thread, int thread) noexcept nogil:
    """A thread's part of the scratch, given thread 0's: the parts are
    per_thread doubles apart, whatever the type of the part."""
    return <floating *>(<char *>first + thread * per_thread * <fpe_idx>sizeof(double))


cdef inline fpe_idx _unaliased(fpe_idx n) noexcept nogil:
    """Distance in doubles between scratch arrays: >= n and 2 KiB off a
    multiple of 4 KiB, so a store to one never stalls a load from the other."""
    return (n + 511) // 512 * 512 + 256


# ---------------------------------------------------------------- grid kernel
# Positions p0[seq] + t for t in [0, T). Sequence seq's batch rows are the
# targets seq_ptr[seq] .. seq_ptr[seq+1]; row t of a target lies t * row stride
# bytes further. Item i covers sequence i // n_blocks, positions of block
# i % n_blocks. Where an item starts, the state its thread left is continued
# when it sits at the same canonical point (static schedule: a thread's items
# are consecutive); otherwise the item seeds at the canonical point and
# rotates to its first row (at most SEED_GRID - 1 rotations, once per thread
# and sequence). Items need not start on canonical points: rows do not depend
# on the split, and equal items keep the threads balanced.
#
# Rows are produced a tile at a time, frequency chunk by frequency chunk, so
# the recurrence state stays in L1. A sequence with one target row gets the
# rows written straight into it; with several, each row is generated once
# into scratch and then applied to every target.

cdef void _grid_item(floating *tile_buf, double *scratch, const Plan *pl, const Target *tg,
                     const double *p0, const fpe_idx *seq_ptr, fpe_idx T, fpe_idx block,
                     fpe_idx tile_direct, fpe_idx tile_shared, fpe_idx dst_rs, fpe_idx src_rs,
                     fpe_idx item) noexcept nogil:
    """One item, with the thread's tile of encoding rows and its state scratch."""
    cdef fpe_idx n_blocks = (T + block - 1) // block
    cdef fpe_idx seq = item // n_blocks
    cdef double start = p0[seq]
    cdef fpe_idx t0 = (item % n_blocks) * block
    cdef fpe_idx t1 = min(t0 + block, T)
    cdef fpe_idx nf = pl.n_freq, n = pl.n_cols, gap = _unaliased(nf)
    cdef Canonical *state = <Canonical *>scratch
    cdef double *s = scratch + STATE_HEADER
    cdef double *c = s + gap
    cdef fpe_idx r0 = seq_ptr[seq], r1 = seq_ptr[seq + 1]
    cdef bint direct = r1 - r0 == 1 and tg.kind == FPE_STORAGE_NATIVE
    cdef fpe_idx tile = tile_direct if direct else tile_shared
    cdef fpe_idx a, b, t, r, k0, u, z, chunk = COL_CHUNK
    cdef Canonical here
    cdef char *dst_row
    cdef const char *src_row
    cdef floating *d
    cdef const floating *sr
    a = t0
    while a < t1:
        here = _canonical(start + <double>a)
        _move_state(s, c, pl, state, here)
        # A tile is one run of consecutive rotations, so every chunk's state
        # moves through the same rows.
        b = _run_end(start, a, min(a + tile, t1), here)
        if direct:
            dst_row = tg.dst + tg.dst_rows[r0]
            src_row = tg.src + tg.src_rows[r0]
            k0 = 0
            while k0 < nf:
                u = a
                while u < b:
                    z = _zero_row(start, u, b, pl.zero_pos)
                    if z > u:
                        _step_rows(<floating *>(dst_row + u * dst_rs),
                                   <const floating *>(src_row + u * src_rs), dst_rs, src_rs, z - u,
                                   pl, tg, s, c, k0, min(k0 + chunk, nf))
                    if z < b:
                        # The zero row is written once, below; keep its state moving.
                        fpe_advance(s + k0, c + k0, pl.step_cos + k0, pl.step_sin + k0,
                                    min(chunk, nf - k0))
                        z += 1
                    u = z
                k0 += chunk
            # Once per row, whatever the number of frequency chunks (even none):
            # the zero row whole, and the columns no frequency writes.
            for t in range(a, b):
                d = <floating *>(dst_row + t * dst_rs)
                sr = <const floating *>(src_row + t * src_rs)
                if start + <double>t == pl.zero_pos:
                    _apply_row(d, sr, <const floating *>pl.zeros, n, tg)
                elif pl.n_zero:
                    _emit_zero_cols(d, sr, pl, tg)
        else:
            _rows_into_buffer(tile_buf, pl, s, c, start, a, b)
            for r in range(r0, r1):
                for t in range(a, b):
                    _apply_row(<floating *>(tg.dst + tg.dst_rows[r] + t * dst_rs),
                               <const floating *>(tg.src + tg.src_rows[r] + t * src_rs),
                               tile_buf + (t - a) * n, n, tg)
        state.steps += b - a
        a = b


cdef void _grid_run(floating *tile_bufs, double *scratch, fpe_idx per_thread, const Plan *pl,
                    const Target *tg, const double *p0, const fpe_idx *seq_ptr, fpe_idx n_seq,
                    fpe_idx T, fpe_idx block, fpe_idx tile_direct, fpe_idx tile_shared,
                    fpe_idx dst_rs, fpe_idx src_rs, int n_threads) noexcept nogil:
    """tile_bufs: thread 0's tile of encoding rows in the scratch (the type
    they are rounded to: x's for float32 and float64, float64 for 16-bit x)."""
    cdef fpe_idx n_items = n_seq * ((T + block - 1) // block)
    cdef fpe_idx item
    _forget_states(scratch, per_thread, n_threads)
    if n_threads == 1:
        for item in range(n_items):
            _grid_item(tile_bufs, scratch, pl, tg, p0, seq_ptr, T, block, tile_direct, tile_shared,
                       dst_rs, src_rs, item)
    else:
        for item in prange(n_items, schedule="static", num_threads=n_threads):
            _grid_item(_own(tile_bufs, per_thread, threadid()), _own(scratch, per_thread, threadid()),
                       pl, tg, p0, seq_ptr, T, block, tile_direct, tile_shared, dst_rs, src_rs, item)


# ------------------------------------------------------------- grouped kernel
# Distinct positions sorted ascending; group g's targets are rows
# group_ptr[g] .. group_ptr[g+1]. Each position is reached by its canonical
# path (a state at the same canonical point is continued, never seeded
# again). Item i covers groups chunk_ptr[i] .. chunk_ptr[i+1].

cdef void _grouped_item(floating *row, double *scratch, const Plan *pl, const Target *tg,
                        const double *positions, const fpe_idx *group_ptr,
                        const fpe_idx *chunk_ptr, fpe_idx item) noexcept nogil:
    """One item, with the thread's encoding row and its state scratch."""
    cdef fpe_idx nf = pl.n_freq, n = pl.n_cols, gap = _unaliased(nf), g, r
    cdef Canonical *state = <Canonical *>scratch
    cdef double *s = scratch + STATE_HEADER
    cdef double *c = s + gap
    cdef double p
    for g in range(chunk_ptr[item], chunk_ptr[item + 1]):
        p = positions[g]
        _move_state(s, c, pl, state, _canonical(p))
        _row_into_buffer(row, pl, s, c, p == pl.zero_pos)
        state.steps += 1
        for r in range(group_ptr[g], group_ptr[g + 1]):
            _apply_row(<floating *>(tg.dst + tg.dst_rows[r]),
                       <const floating *>(tg.src + tg.src_rows[r]), row, n, tg)


cdef void _grouped_run(floating *rows, double *scratch, fpe_idx per_thread, const Plan *pl,
                       const Target *tg, const double *positions, const fpe_idx *group_ptr,
                       const fpe_idx *chunk_ptr, fpe_idx n_chunks, int n_threads) noexcept nogil:
    """rows: thread 0's encoding row in the scratch (typed as in _grid_run)."""
    cdef fpe_idx item
    _forget_states(scratch, per_thread, n_threads)
    if n_threads == 1:
        for item in range(n_chunks):
            _grouped_item(rows, scratch, pl, tg, positions, group_ptr, chunk_ptr, item)
    else:
        for item in prange(n_chunks, schedule="static", num_threads=n_threads):
            _grouped_item(_own(rows, per_thread, threadid()), _own(scratch, per_thread, threadid()),
                          pl, tg, positions, group_ptr, chunk_ptr, item)


# --------------------------------------------------------------- entry points
# One per mode, each taking only the arguments its mode reads: the rows it
# writes (dst), the rows it reads where they differ (src), the scale of an
# add. The element type comes from the arrays' dtypes.

cdef inline void *_data(cnp.ndarray a):
    return cnp.PyArray_DATA(a)


cdef Plan _make_plan(object plan, cnp.ndarray zeros, double zero_pos):
    cdef Plan p
    p.freq = <const double *>_data(plan.freq)
    p.freq_lo = <const double *>_data(plan.freq_lo)
    p.step_cos = <const double *>_data(plan.step_cos)
    p.step_sin = <const double *>_data(plan.step_sin)
    p.n_freq = plan.freq.shape[0]
    p.n_sin = plan.n_sin
    p.n_cos = plan.n_cos
    p.sin_col = plan.sin_col
    p.cos_col = plan.cos_col
    p.col_step = plan.col_step
    p.zero_cols = <const fpe_idx *>_data(plan.zero_cols)
    p.n_zero = plan.zero_cols.shape[0]
    p.n_cols = plan.n_cols
    p.zero_pos = zero_pos
    p.zeros = <const void *>_data(zeros)
    return p


cdef Target _target(int mode, cnp.ndarray dst, cnp.ndarray dst_rows, fpe_idx dst_cs, double scale):
    """A target of a mode that reads no other array (store, add in place): the
    rows it reads are its own."""
    cdef Target t
    t.dst = <char *>_data(dst)
    t.src = t.dst
    t.dst_rows = <const fpe_idx *>_data(dst_rows)
    t.src_rows = t.dst_rows
    t.dst_cs = dst_cs
    t.src_cs = dst_cs
    t.scale = scale
    t.mode = mode
    t.kind = fpe_storage_of(dst)
    return t


cdef Target _target_to(cnp.ndarray dst, cnp.ndarray dst_rows, fpe_idx dst_cs,
                       cnp.ndarray src, cnp.ndarray src_rows, fpe_idx src_cs, double scale):
    """A target of the add to src (dst and src disjoint, of one dtype)."""
    cdef Target t = _target(FPE_MODE_ADD_TO, dst, dst_rows, dst_cs, scale)
    t.src = <const char *>_data(src)
    t.src_rows = <const fpe_idx *>_data(src_rows)
    t.src_cs = src_cs
    return t


cdef inline bint _float32_rows(cnp.ndarray dst):
    """Whether the encoding rows of dst are float32 (x float32); else float64."""
    return fpe_storage_of(dst) == FPE_STORAGE_NATIVE and cnp.PyArray_TYPE(dst) == cnp.NPY_FLOAT32


cdef inline double *_aligned64(double *p) noexcept nogil:
    """Round a scratch pointer up to a cache line (the allocation has spare
    room): 512-bit loads and stores must not straddle two lines."""
    return <double *>((<size_t>p + 63) & ~(<size_t>63))


cdef cnp.ndarray _scratch(object plan, int n_threads, fpe_idx rows, fpe_idx *per_thread):
    # Per thread: where its state stands (a Canonical), the state s, c (one
    # per frequency, spaced apart) and `rows` rows of encodings (sized as
    # float64, enough for either storage type), rounded to whole cache lines.
    # Zeroed where the plan has zero columns, which the row buffers never
    # write; every other part is written before it is read.
    cdef fpe_idx n_rows = max(rows, 1)
    per_thread[0] = (STATE_HEADER + 2 * _unaliased(plan.freq.shape[0]) + n_rows * plan.n_cols + 7) // 8 * 8
    cdef cnp.npy_intp size = per_thread[0] * n_threads + 8
    if plan.zero_cols.shape[0]:
        return cnp.PyArray_ZEROS(1, &size, cnp.NPY_FLOAT64, 0)
    return cnp.PyArray_EMPTY(1, &size, cnp.NPY_FLOAT64, 0)


cdef bint _shares_rows(const Target *tg, cnp.ndarray seq_ptr):
    """Whether the grid kernel takes the shared path anywhere (a sequence
    with several target rows, or 16-bit storage), which needs the tile of
    encoding rows in the scratch."""
    cdef const fpe_idx *ptr = <const fpe_idx *>_data(seq_ptr)
    cdef fpe_idx i
    if tg.kind != FPE_STORAGE_NATIVE:
        return True
    for i in range(seq_ptr.shape[0] - 1):
        if ptr[i + 1] - ptr[i] != 1:
            return True
    return False


cdef inline double *_scratch_rows(double *scratch, object plan) noexcept:
    """Thread 0's encoding rows in the scratch, behind its state."""
    return scratch + STATE_HEADER + 2 * _unaliased(plan.freq.shape[0])


cdef void _sinusoid_grid(cnp.ndarray dst, const Target *tg, fpe_idx dst_rs, fpe_idx src_rs,
                         object plan, cnp.ndarray p0, cnp.ndarray seq_ptr, fpe_idx T, fpe_idx block,
                         fpe_idx tile_direct, fpe_idx tile_shared, double zero_pos, int n_threads):
    cdef fpe_idx per_thread
    cdef cnp.ndarray scratch = _scratch(plan, n_threads, tile_shared if _shares_rows(tg, seq_ptr) else 0,
                                        &per_thread)
    cdef cnp.ndarray zeros = cnp.PyArray_ZEROS(1, [max(plan.n_cols, 1)], cnp.NPY_FLOAT64, 0)
    cdef Plan pl = _make_plan(plan, zeros, zero_pos)
    cdef const double *p0_ = <const double *>_data(p0)
    cdef const fpe_idx *seq_ptr_ = <const fpe_idx *>_data(seq_ptr)
    cdef fpe_idx n_seq = p0.shape[0]
    cdef double *scratch_ = _aligned64(<double *>_data(scratch))
    cdef double *rows = _scratch_rows(scratch_, plan)
    if _float32_rows(dst):
        with nogil:
            _grid_run(<float *>rows, scratch_, per_thread, &pl, tg, p0_, seq_ptr_, n_seq, T, block,
                      tile_direct, tile_shared, dst_rs, src_rs, n_threads)
    else:
        with nogil:
            _grid_run(rows, scratch_, per_thread, &pl, tg, p0_, seq_ptr_, n_seq, T, block,
                      tile_direct, tile_shared, dst_rs, src_rs, n_threads)


def sinusoid_grid_store(cnp.ndarray dst, cnp.ndarray dst_rows, fpe_idx dst_rs, fpe_idx dst_cs,
                        object plan, cnp.ndarray p0, cnp.ndarray seq_ptr, fpe_idx T, fpe_idx block,
                        fpe_idx tile_direct, fpe_idx tile_shared, double zero_pos, int n_threads):
    """dst = the sinusoid rows at positions p0[seq] + t, into each sequence's
    rows dst_rows[seq_ptr[seq]:seq_ptr[seq + 1]] (byte offsets; row t lies
    t * dst_rs bytes further, columns dst_cs elements apart)."""
    cdef Target tg = _target(FPE_MODE_STORE, dst, dst_rows, dst_cs, 1.0)
    _sinusoid_grid(dst, &tg, dst_rs, dst_rs, plan, p0, seq_ptr, T, block, tile_direct, tile_shared,
                   zero_pos, n_threads)


def sinusoid_grid_add_inplace(cnp.ndarray dst, cnp.ndarray dst_rows, fpe_idx dst_rs, fpe_idx dst_cs,
                              double scale, object plan, cnp.ndarray p0, cnp.ndarray seq_ptr, fpe_idx T,
                              fpe_idx block, fpe_idx tile_direct, fpe_idx tile_shared, double zero_pos,
                              int n_threads):
    """dst = dst * scale + the sinusoid rows (positions as sinusoid_grid_store)."""
    cdef Target tg = _target(FPE_MODE_ADD_INPLACE, dst, dst_rows, dst_cs, scale)
    _sinusoid_grid(dst, &tg, dst_rs, dst_rs, plan, p0, seq_ptr, T, block, tile_direct, tile_shared,
                   zero_pos, n_threads)


def sinusoid_grid_add_to(cnp.ndarray dst, cnp.ndarray dst_rows, fpe_idx dst_rs, fpe_idx dst_cs,
                         cnp.ndarray src, cnp.ndarray src_rows, fpe_idx src_rs, fpe_idx src_cs,
                         double scale, object plan, cnp.ndarray p0, cnp.ndarray seq_ptr, fpe_idx T,
                         fpe_idx block, fpe_idx tile_direct, fpe_idx tile_shared, double zero_pos,
                         int n_threads):
    """dst = src * scale + the sinusoid rows (positions as sinusoid_grid_store;
    src's rows laid out like dst's, the arrays disjoint)."""
    cdef Target tg = _target_to(dst, dst_rows, dst_cs, src, src_rows, src_cs, scale)
    _sinusoid_grid(dst, &tg, dst_rs, src_rs, plan, p0, seq_ptr, T, block, tile_direct, tile_shared,
                   zero_pos, n_threads)


cdef void _sinusoid_grouped(cnp.ndarray dst, const Target *tg, object plan, cnp.ndarray positions,
                            cnp.ndarray group_ptr, cnp.ndarray chunk_ptr, double zero_pos, int n_threads):
    cdef fpe_idx per_thread
    cdef cnp.ndarray scratch = _scratch(plan, n_threads, 1, &per_thread)
    cdef cnp.ndarray zeros = cnp.PyArray_ZEROS(1, [max(plan.n_cols, 1)], cnp.NPY_FLOAT64, 0)
    cdef Plan pl = _make_plan(plan, zeros, zero_pos)
    cdef const double *pos_ = <const double *>_data(positions)
    cdef const fpe_idx *group_ptr_ = <const fpe_idx *>_data(group_ptr)
    cdef const fpe_idx *chunk_ptr_ = <const fpe_idx *>_data(chunk_ptr)
    cdef fpe_idx n_chunks = chunk_ptr.shape[0] - 1
    cdef double *scratch_ = _aligned64(<double *>_data(scratch))
    cdef double *rows = _scratch_rows(scratch_, plan)
    if _float32_rows(dst):
        with nogil:
            _grouped_run(<float *>rows, scratch_, per_thread, &pl, tg, pos_, group_ptr_, chunk_ptr_,
                         n_chunks, n_threads)
    else:
        with nogil:
            _grouped_run(rows, scratch_, per_thread, &pl, tg, pos_, group_ptr_, chunk_ptr_,
                         n_chunks, n_threads)


def sinusoid_grouped_store(cnp.ndarray dst, cnp.ndarray dst_rows, fpe_idx dst_cs, object plan,
                           cnp.ndarray positions, cnp.ndarray group_ptr, cnp.ndarray chunk_ptr,
                           double zero_pos, int n_threads):
    """dst = the sinusoid row of each sorted distinct position g, into its
    group of rows dst_rows[group_ptr[g]:group_ptr[g + 1]]; work item i covers
    groups chunk_ptr[i]:chunk_ptr[i + 1]."""
    cdef Target tg = _target(FPE_MODE_STORE, dst, dst_rows, dst_cs, 1.0)
    _sinusoid_grouped(dst, &tg, plan, positions, group_ptr, chunk_ptr, zero_pos, n_threads)


def sinusoid_grouped_add_inplace(cnp.ndarray dst, cnp.ndarray dst_rows, fpe_idx dst_cs, double scale,
                                 object plan, cnp.ndarray positions, cnp.ndarray group_ptr,
                                 cnp.ndarray chunk_ptr, double zero_pos, int n_threads):
    """dst = dst * scale + the sinusoid rows (positions as sinusoid_grouped_store)."""
    cdef Target tg = _target(FPE_MODE_ADD_INPLACE, dst, dst_rows, dst_cs, scale)
    _sinusoid_grouped(dst, &tg, plan, positions, group_ptr, chunk_ptr, zero_pos, n_threads)


def sinusoid_grouped_add_to(cnp.ndarray dst, cnp.ndarray dst_rows, fpe_idx dst_cs,
                            cnp.ndarray src, cnp.ndarray src_rows, fpe_idx src_cs, double scale,
                            object plan, cnp.ndarray positions, cnp.ndarray group_ptr,
                            cnp.ndarray chunk_ptr, double zero_pos, int n_threads):
    """dst = src * scale + the sinusoid rows (positions as sinusoid_grouped_store)."""
    cdef Target tg = _target_to(dst, dst_rows, dst_cs, src, src_rows, src_cs, scale)
    _sinusoid_grouped(dst, &tg, plan, positions, group_ptr, chunk_ptr, zero_pos, n_threads)


# ------------------------------------------------------- learned tables
# x * scale + table[position], the table's rows read in place. Implicit
# positions (p0[seq] + t) go through tiles of consecutive table rows swept
# over each target's contiguous span; explicit ones through sorted distinct
# positions, each table row applied to its group of rows.

cdef inline void _apply_table_row(storage_t *dst, const storage_t *src, const table_t *row, fpe_idx n,
                                  const Target *tg) noexcept nogil:
    if storage_t is fpe_half:
        _apply_half_row(dst, src, row, n, tg)
    elif storage_t is float and table_t is double:
        fpe_apply_f32_f64(dst, tg.dst_cs, src, tg.src_cs, row, tg.scale, n, tg.mode)
    elif storage_t is double and table_t is float:
        fpe_apply_f64_f32(dst, tg.dst_cs, src, tg.src_cs, row, tg.scale, n, tg.mode)
    elif storage_t is float and table_t is float:
        _apply_row(dst, src, row, n, tg)
    elif storage_t is double and table_t is double:
        _apply_row(dst, src, row, n, tg)

cdef inline storage_t *_at(storage_t *base, fpe_idx offset) noexcept nogil:
    """The element offset bytes past base."""
    return <storage_t *>(<char *>base + offset)


cdef inline const storage_t *_read_at(const storage_t *base, fpe_idx offset) noexcept nogil:
    """The element offset bytes past base, read only."""
    return <const storage_t *>(<const char *>base + offset)


cdef struct TableGrid:
    # Positions p0[seq] + t, t < T, for sequence seq's rows seq_ptr[seq]:seq_ptr[seq + 1].
    const fpe_idx *p0
    const fpe_idx *seq_ptr
    fpe_idx n_seq, T, block, tile, dst_rs, src_rs


cdef struct TableGroups:
    # Sorted distinct positions, each with its group of rows; item i covers
    # groups chunk_ptr[i]:chunk_ptr[i + 1].
    const double *positions
    const fpe_idx *group_ptr
    const fpe_idx *chunk_ptr
    fpe_idx n_chunks


# The two ways a table's rows are chosen.
ctypedef fused table_work:
    TableGrid
    TableGroups


cdef void _table_grid_item(storage_t *dst, const table_t *table, fpe_idx table_rs, fpe_idx n,
                           const Target *tg, const TableGrid *w, fpe_idx item) noexcept nogil:
    cdef fpe_idx n_blocks = (w.T + w.block - 1) // w.block
    cdef fpe_idx seq = item // n_blocks
    cdef fpe_idx t0 = (item % n_blocks) * w.block
    cdef fpe_idx t1 = min(t0 + w.block, w.T)
    cdef fpe_idx a = t0, b, r, t
    cdef const storage_t *src = <const storage_t *>tg.src
    cdef const char *rows = <const char *>table + w.p0[seq] * table_rs
    while a < t1:
        b = min(a + w.tile, t1)
        for r in range(w.seq_ptr[seq], w.seq_ptr[seq + 1]):
            for t in range(a, b):
                _apply_table_row(_at(dst, tg.dst_rows[r] + t * w.dst_rs), _read_at(src, tg.src_rows[r] + t * w.src_rs),
                                 <const table_t *>(rows + t * table_rs), n, tg)
        a = b


cdef void _table_grouped_item(storage_t *dst, const table_t *table, fpe_idx table_rs, fpe_idx n,
                              const Target *tg, const TableGroups *w, fpe_idx item) noexcept nogil:
    cdef fpe_idx g, r
    cdef const storage_t *src = <const storage_t *>tg.src
    cdef const table_t *row
    for g in range(w.chunk_ptr[item], w.chunk_ptr[item + 1]):
        row = <const table_t *>(<const char *>table + (<fpe_idx>w.positions[g]) * table_rs)
        for r in range(w.group_ptr[g], w.group_ptr[g + 1]):
            _apply_table_row(_at(dst, tg.dst_rows[r]), _read_at(src, tg.src_rows[r]), row, n, tg)


cdef inline void _table_item(storage_t *dst, const table_t *table, fpe_idx table_rs, fpe_idx n,
                             const Target *tg, const table_work *w, fpe_idx item) noexcept nogil:
    if table_work is TableGrid:
        _table_grid_item(dst, table, table_rs, n, tg, w, item)
    else:
        _table_grouped_item(dst, table, table_rs, n, tg, w, item)


cdef void _table_run(storage_t *dst, const table_t *table, fpe_idx table_rs, fpe_idx n,
                     const Target *tg, const table_work *w, int n_threads) noexcept nogil:
    cdef fpe_idx item, n_items
    if table_work is TableGrid:
        n_items = w.n_seq * ((w.T + w.block - 1) // w.block)
    else:
        n_items = w.n_chunks
    if n_threads == 1:
        for item in range(n_items):
            _table_item(dst, table, table_rs, n, tg, w, item)
    else:
        for item in prange(n_items, schedule="static", num_threads=n_threads):
            _table_item(dst, table, table_rs, n, tg, w, item)


cdef void _table_with(storage_t *dst, cnp.ndarray table, const Target *tg, const table_work *w, int n_threads):
    """Run with the table's element type."""
    cdef const void *tab = _data(table)
    cdef fpe_idx table_rs = table.strides[0], n = table.shape[1]
    with nogil:
        if cnp.PyArray_TYPE(table) == cnp.NPY_FLOAT32:
            _table_run(dst, <const float *>tab, table_rs, n, tg, w, n_threads)
        else:
            _table_run(dst, <const double *>tab, table_rs, n, tg, w, n_threads)


cdef void _table_add(const Target *tg, cnp.ndarray dst, cnp.ndarray table, const table_work *w, int n_threads):
    """Run with x's storage type."""
    if tg.kind != FPE_STORAGE_NATIVE:
        _table_with(<fpe_half *>tg.dst, table, tg, w, n_threads)
    elif cnp.PyArray_TYPE(dst) == cnp.NPY_FLOAT32:
        _table_with(<float *>tg.dst, table, tg, w, n_threads)
    else:
        _table_with(<double *>tg.dst, table, tg, w, n_threads)


cdef void _table_add_grid(const Target *tg, cnp.ndarray dst, cnp.ndarray table, fpe_idx dst_rs, fpe_idx src_rs,
                          cnp.ndarray p0, cnp.ndarray seq_ptr, fpe_idx T, fpe_idx block, fpe_idx tile,
                          int n_threads):
    cdef TableGrid w
    w.p0 = <const fpe_idx *>_data(p0)
    w.seq_ptr = <const fpe_idx *>_data(seq_ptr)
    w.n_seq, w.T, w.block, w.tile, w.dst_rs, w.src_rs = p0.shape[0], T, block, tile, dst_rs, src_rs
    _table_add(tg, dst, table, &w, n_threads)


cdef void _table_add_grouped(const Target *tg, cnp.ndarray dst, cnp.ndarray table, cnp.ndarray positions,
                             cnp.ndarray group_ptr, cnp.ndarray chunk_ptr, int n_threads):
    cdef TableGroups w
    w.positions = <const double *>_data(positions)
    w.group_ptr = <const fpe_idx *>_data(group_ptr)
    w.chunk_ptr = <const fpe_idx *>_data(chunk_ptr)
    w.n_chunks = chunk_ptr.shape[0] - 1
    _table_add(tg, dst, table, &w, n_threads)


def table_add_grid_inplace(cnp.ndarray dst, cnp.ndarray dst_rows, fpe_idx dst_rs, fpe_idx dst_cs,
                           double scale, cnp.ndarray table, cnp.ndarray p0, cnp.ndarray seq_ptr,
                           fpe_idx T, fpe_idx block, fpe_idx tile, int n_threads):
    """dst = dst * scale + table[p0[seq] + t] into each sequence's rows
    dst_rows[seq_ptr[seq]:seq_ptr[seq + 1]] (rows and columns as
    sinusoid_grid_store), a tile of `tile` table rows at a time. The table's
    rows are contiguous, float32 or float64 (a 16-bit x takes either)."""
    cdef Target tg = _target(FPE_MODE_ADD_INPLACE, dst, dst_rows, dst_cs, scale)
    _table_add_grid(&tg, dst, table, dst_rs, dst_rs, p0, seq_ptr, T, block, tile, n_threads)


def table_add_grid_to(cnp.ndarray dst, cnp.ndarray dst_rows, fpe_idx dst_rs, fpe_idx dst_cs,
                      cnp.ndarray src, cnp.ndarray src_rows, fpe_idx src_rs, fpe_idx src_cs,
                      double scale, cnp.ndarray table, cnp.ndarray p0, cnp.ndarray seq_ptr,
                      fpe_idx T, fpe_idx block, fpe_idx tile, int n_threads):
    """dst = src * scale + table[p0[seq] + t] (as table_add_grid_inplace)."""
    cdef Target tg = _target_to(dst, dst_rows, dst_cs, src, src_rows, src_cs, scale)
    _table_add_grid(&tg, dst, table, dst_rs, src_rs, p0, seq_ptr, T, block, tile, n_threads)


def table_add_grouped_inplace(cnp.ndarray dst, cnp.ndarray dst_rows, fpe_idx dst_cs, double scale,
                              cnp.ndarray table, cnp.ndarray positions, cnp.ndarray group_ptr,
                              cnp.ndarray chunk_ptr, int n_threads):
    """dst = dst * scale + table[position] for each sorted distinct position
    (integers held as float64) and its group of rows (as sinusoid_grouped_store)."""
    cdef Target tg = _target(FPE_MODE_ADD_INPLACE, dst, dst_rows, dst_cs, scale)
    _table_add_grouped(&tg, dst, table, positions, group_ptr, chunk_ptr, n_threads)


def table_add_grouped_to(cnp.ndarray dst, cnp.ndarray dst_rows, fpe_idx dst_cs,
                         cnp.ndarray src, cnp.ndarray src_rows, fpe_idx src_cs, double scale,
                         cnp.ndarray table, cnp.ndarray positions, cnp.ndarray group_ptr,
                         cnp.ndarray chunk_ptr, int n_threads):
    """dst = src * scale + table[position] (as table_add_grouped_inplace)."""
    cdef Target tg = _target_to(dst, dst_rows, dst_cs, src, src_rows, src_cs, scale)
    _table_add_grouped(&tg, dst, table, positions, group_ptr, chunk_ptr, n_threads)


# ------------------------------------------------------------ rotary
# Every vector row of an array is rotated by the angles of its position:
# row i's cosines and sines are row table_idx[i] of the cos and sin tables
# (float64, computed once per call for all the arrays being rotated).

cdef struct Rotation:
    const char *src           # the add to src only (in place: dst)
    const fpe_idx *dst_rows
    const fpe_idx *src_rows
    const fpe_idx *table_idx
    fpe_idx n_rows
    const char *cos_table
    const char *sin_table
    fpe_idx table_rs
    fpe_cols d, r
    fpe_idx n_pairs
    int mode                  # FPE_MODE_ADD_INPLACE or FPE_MODE_ADD_TO
    int kind                  # FPE_STORAGE_*
    fpe_idx dst_span          # bytes from a row's start to the end of its last pair (0: no prefetch)
    fpe_idx src_span


# Rows ahead of the one being rotated whose memory is requested early: the
# rows come through a table of offsets (in blocks of positions across heads),
# where the hardware prefetchers lose the stream.
DEF ROTATE_PREFETCH_ROWS = 4
# At most this many bytes of a row are requested (a wider row streams itself).
DEF ROTATE_PREFETCH_BYTES = 2048


cdef inline void _rotate_row(storage_t *dst, const storage_t *src, const Rotation *rot,
                             const double *cos_row, const double *sin_row) noexcept nogil:
    cdef bint inplace = rot.mode == FPE_MODE_ADD_INPLACE
    if storage_t is fpe_half:
        if rot.kind == FPE_STORAGE_F16:
            if inplace:
                fpe_rotate_inplace_f16(dst, rot.d, cos_row, sin_row, rot.n_pairs)
            else:
                fpe_rotate_to_f16(dst, rot.d, src, rot.r, cos_row, sin_row, rot.n_pairs)
        elif inplace:
            fpe_rotate_inplace_bf16(dst, rot.d, cos_row, sin_row, rot.n_pairs)
        else:
            fpe_rotate_to_bf16(dst, rot.d, src, rot.r, cos_row, sin_row, rot.n_pairs)
    elif storage_t is float:
        if inplace:
            fpe_rotate_inplace_f32(dst, rot.d, cos_row, sin_row, rot.n_pairs)
        else:
            fpe_rotate_to_f32(dst, rot.d, src, rot.r, cos_row, sin_row, rot.n_pairs)
    else:
        if inplace:
            fpe_rotate_inplace_f64(dst, rot.d, cos_row, sin_row, rot.n_pairs)
        else:
            fpe_rotate_to_f64(dst, rot.d, src, rot.r, cos_row, sin_row, rot.n_pairs)


cdef inline void _rotate_item(storage_t *dst, const Rotation *rot, fpe_idx i) noexcept nogil:
    cdef fpe_idx at = rot.table_idx[i] * rot.table_rs
    _rotate_row(_at(dst, rot.dst_rows[i]), _read_at(<const storage_t *>rot.src, rot.src_rows[i]), rot,
                <const double *>(rot.cos_table + at), <const double *>(rot.sin_table + at))


cdef inline void _prefetch_rotation(storage_t *dst, const Rotation *rot, fpe_idx i) noexcept nogil:
    cdef fpe_idx ahead = i + ROTATE_PREFETCH_ROWS, j
    if ahead < rot.n_rows:
        for j in range(0, rot.dst_span, 64):
            fpe_prefetch_write(<const char *>dst + rot.dst_rows[ahead] + j)
        if rot.mode == FPE_MODE_ADD_TO:
            for j in range(0, rot.src_span, 64):
                fpe_prefetch_write(rot.src + rot.src_rows[ahead] + j)


cdef void _rotate_run(storage_t *dst, const Rotation *rot, int n_threads) noexcept nogil:
    """Rotate every row of dst (its elements of type storage_t)."""
    cdef fpe_idx i
    if n_threads == 1:
        for i in range(rot.n_rows):
            _prefetch_rotation(dst, rot, i)
            _rotate_item(dst, rot, i)
    else:
        for i in prange(rot.n_rows, schedule="static", num_threads=n_threads):
            _prefetch_rotation(dst, rot, i)
            _rotate_item(dst, rot, i)


cdef inline fpe_idx _row_span(fpe_cols c, fpe_idx n_pairs, fpe_idx itemsize) noexcept:
    """Bytes from a row's first element to the end of its last pair, when its
    pairs lie at non-negative offsets (0 otherwise: no prefetch)."""
    if n_pairs <= 0 or c.sin_off < 0 or c.cos_off < 0 or c.ks < 0:
        return 0
    return min((max(c.sin_off, c.cos_off) + (n_pairs - 1) * c.ks + 1) * itemsize, ROTATE_PREFETCH_BYTES)


cdef inline fpe_cols _pair_cols(fpe_idx first_col, fpe_idx second_col, fpe_idx col_step, fpe_idx cs) noexcept:
    cdef fpe_cols p
    p.sin_off = first_col * cs
    p.cos_off = second_col * cs
    p.ks = col_step * cs
    return p


cdef void _rotate(cnp.ndarray dst, cnp.ndarray dst_rows, fpe_idx dst_cs, cnp.ndarray src, cnp.ndarray src_rows,
                  fpe_idx src_cs, int mode, cnp.ndarray table_idx, cnp.ndarray cos_table, cnp.ndarray sin_table,
                  fpe_idx n_pairs, fpe_idx first_col, fpe_idx second_col, fpe_idx col_step, int n_threads):
    cdef Rotation rot
    rot.src = <const char *>_data(src)
    rot.dst_rows = <const fpe_idx *>_data(dst_rows)
    rot.src_rows = <const fpe_idx *>_data(src_rows)
    rot.table_idx = <const fpe_idx *>_data(table_idx)
    rot.n_rows = dst_rows.shape[0]
    rot.cos_table = <const char *>_data(cos_table)
    rot.sin_table = <const char *>_data(sin_table)
    rot.table_rs = cos_table.strides[0]
    rot.d = _pair_cols(first_col, second_col, col_step, dst_cs)
    rot.r = _pair_cols(first_col, second_col, col_step, src_cs)
    rot.n_pairs = n_pairs
    rot.mode = mode
    rot.kind = fpe_storage_of(dst)
    rot.dst_span = _row_span(rot.d, n_pairs, dst.itemsize)
    rot.src_span = _row_span(rot.r, n_pairs, src.itemsize)
    cdef void *d = _data(dst)
    with nogil:
        if rot.kind != FPE_STORAGE_NATIVE:
            _rotate_run(<fpe_half *>d, &rot, n_threads)
        elif cnp.PyArray_TYPE(dst) == cnp.NPY_FLOAT32:
            _rotate_run(<float *>d, &rot, n_threads)
        else:
            _rotate_run(<double *>d, &rot, n_threads)


def rotate_rows_inplace(cnp.ndarray dst, cnp.ndarray dst_rows, fpe_idx dst_cs, cnp.ndarray table_idx,
                        cnp.ndarray cos_table, cnp.ndarray sin_table, fpe_idx n_pairs, fpe_idx first_col,
                        fpe_idx second_col, fpe_idx col_step, int n_threads):
    """Rotate channel pairs (first_col + k*col_step, second_col + k*col_step),
    k < n_pairs, of the rows at byte offsets dst_rows by the angles of table
    row table_idx[i]. cos_table and sin_table (float64) share one row stride."""
    _rotate(dst, dst_rows, dst_cs, dst, dst_rows, dst_cs, FPE_MODE_ADD_INPLACE, table_idx, cos_table, sin_table,
            n_pairs, first_col, second_col, col_step, n_threads)


def rotate_rows_to(cnp.ndarray dst, cnp.ndarray dst_rows, fpe_idx dst_cs,
                   cnp.ndarray src, cnp.ndarray src_rows, fpe_idx src_cs, cnp.ndarray table_idx,
                   cnp.ndarray cos_table, cnp.ndarray sin_table, fpe_idx n_pairs, fpe_idx first_col,
                   fpe_idx second_col, fpe_idx col_step, int n_threads):
    """dst's channel pairs = src's rotated (as rotate_rows_inplace; dst and
    src disjoint, of one dtype)."""
    _rotate(dst, dst_rows, dst_cs, src, src_rows, src_cs, FPE_MODE_ADD_TO, table_idx, cos_table, sin_table,
            n_pairs, first_col, second_col, col_step, n_threads)


# -------------------------------------------------------- bandwidth probes

cdef void _probe_run(floating *x, floating value, fpe_idx n, int fill, int n_threads) noexcept nogil:
    cdef fpe_idx i, lo, hi, chunk = (n + n_threads - 1) // n_threads
    for i in prange(n_threads, schedule="static", num_threads=n_threads):
        lo = i * chunk
        hi = min(lo + chunk, n)
        if hi > lo:
            if floating is float:
                if fill:
                    fpe_probe_fill_f32(x + lo, value, hi - lo)
                else:
                    fpe_probe_add_f32(x + lo, value, hi - lo)
            else:
                if fill:
                    fpe_probe_fill_f64(x + lo, value, hi - lo)
                else:
                    fpe_probe_add_f64(x + lo, value, hi - lo)


cdef void _probe_run16(uint16_t *x, fpe_idx n, int fill, int n_threads) noexcept nogil:
    cdef fpe_idx i, lo, hi, chunk = (n + n_threads - 1) // n_threads
    for i in prange(n_threads, schedule="static", num_threads=n_threads):
        lo = i * chunk
        hi = min(lo + chunk, n)
        if hi > lo:
            if fill:
                fpe_probe_fill_u16(x + lo, 0, hi - lo)
            else:
                fpe_probe_add_u16(x + lo, 1, hi - lo)


def probe(cnp.ndarray x, double value, bint fill, int n_threads):
    """The machine's ceiling: x += value (fill=False) or x[:] = value over a
    C-contiguous array, split into one contiguous piece per thread. A 16-bit
    array gets the same traffic as integers (its bits change, not its meaning)."""
    cdef fpe_idx n = cnp.PyArray_SIZE(x)
    cdef void *data = _data(x)
    if x.itemsize == 2:
        with nogil:
            _probe_run16(<uint16_t *>data, n, fill, n_threads)
    elif cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32:
        with nogil:
            _probe_run(<float *>data, <float>value, n, fill, n_threads)
    else:
        with nogil:
            _probe_run(<double *>data, value, n, fill, n_threads)
