# cython: language_level=3
"""OpenMP kernels of fastpe.

Nothing here validates: fastpe._api checks every argument and builds the row
offset tables before calling in, so these functions only read and write
memory. Arrays are passed as raw pointers plus byte offsets so that any
strided layout (negative strides, transposed batch axes) is written in place.

Work is cut into items of consecutive positions; each thread takes a
contiguous run of items (schedule="static"), computes one position's
encoding row at a time in float64 in its own scratch, and applies it to every
batch row that shares the position while the row is hot in cache.
"""

cimport numpy as cnp
from cython.parallel cimport prange, threadid
from libc.stdint cimport int32_t, uint8_t
from libc.string cimport memset

cnp.import_array()

ctypedef Py_ssize_t fpe_idx

cdef extern from "_openmp.h" nogil:
    int FPE_HAVE_OPENMP
    int fpe_omp_max_threads()
    int fpe_omp_version()

cdef extern from "_simd.h" nogil:
    int FPE_DISPATCH_ENABLED
    const char *fpe_simd_level()
    void fpe_seed(double *s, double *c, double p, const double *freq, fpe_idx n_freq,
                  const int32_t *col_freq, const uint8_t *col_cos, fpe_idx n_cols,
                  double *sin_buf, double *cos_buf)
    void fpe_advance(double *s, double *c, const double *step_cos, const double *step_sin, fpe_idx n)
    void fpe_store_f32(float *dst, fpe_idx stride, const double *pe, fpe_idx n)
    void fpe_store_f64(double *dst, fpe_idx stride, const double *pe, fpe_idx n)
    void fpe_add_inplace_f32(float *x, fpe_idx stride, const double *pe, double scale, fpe_idx n)
    void fpe_add_inplace_f64(double *x, fpe_idx stride, const double *pe, double scale, fpe_idx n)
    void fpe_add_to_f32(float *dst, fpe_idx dst_stride, const float *src, fpe_idx src_stride,
                        const double *pe, double scale, fpe_idx n)
    void fpe_add_to_f64(double *dst, fpe_idx dst_stride, const double *src, fpe_idx src_stride,
                        const double *pe, double scale, fpe_idx n)
    void fpe_step_store_f32(float *dst, fpe_idx stride, double *s, double *c,
                            const double *step_cos, const double *step_sin, fpe_idx n)
    void fpe_step_store_f64(double *dst, fpe_idx stride, double *s, double *c,
                            const double *step_cos, const double *step_sin, fpe_idx n)
    void fpe_step_add_inplace_f32(float *x, fpe_idx stride, double scale, double *s, double *c,
                                  const double *step_cos, const double *step_sin, fpe_idx n)
    void fpe_step_add_inplace_f64(double *x, fpe_idx stride, double scale, double *s, double *c,
                                  const double *step_cos, const double *step_sin, fpe_idx n)
    void fpe_step_add_to_f32(float *dst, fpe_idx dst_stride, const float *src, fpe_idx src_stride,
                             double scale, double *s, double *c,
                             const double *step_cos, const double *step_sin, fpe_idx n)
    void fpe_step_add_to_f64(double *dst, fpe_idx dst_stride, const double *src, fpe_idx src_stride,
                             double scale, double *s, double *c,
                             const double *step_cos, const double *step_sin, fpe_idx n)
    void fpe_probe_add_f32(float *x, float value, fpe_idx n)
    void fpe_probe_add_f64(double *x, double value, fpe_idx n)
    void fpe_probe_fill_f32(float *x, float value, fpe_idx n)
    void fpe_probe_fill_f64(double *x, double value, fpe_idx n)

ctypedef fused floating:
    float
    double

# What a kernel does with each generated row.
MODE_STORE = 0          # dst = pe                       (tables)
MODE_ADD_INPLACE = 1    # dst = dst * scale + pe         (src is dst)
MODE_ADD_TO = 2         # dst = src * scale + pe         (src, dst disjoint)
cdef enum:
    _STORE = 0
    _ADD_INPLACE = 1
    _ADD_TO = 2
    # Columns per pass: the state of 256 columns (s, c, cos w, sin w: 8 KiB)
    # stays in L1 while a tile of rows is generated.
    COL_CHUNK = 256


def openmp_enabled():
    """True when the extension was compiled with OpenMP."""
    return bool(FPE_HAVE_OPENMP)


def openmp_version():
    """The _OPENMP date macro the extension was compiled against (0 without OpenMP)."""
    return fpe_omp_version()


def omp_max_threads():
    """OpenMP's default team size for this thread (OMP_NUM_THREADS, threadpoolctl)."""
    return fpe_omp_max_threads()


def simd_level():
    """The vector instruction set the kernels' leaf loops run with on this CPU."""
    return fpe_simd_level().decode("ascii")


cdef struct Plan:
    const double *freq        # the pair frequencies w_k
    fpe_idx n_freq
    const int32_t *col_freq   # per output column: index into freq, or -1 for a zero column
    const uint8_t *col_cos    # per output column: 1 for a cosine column
    const double *step_cos    # per output column: cos(w), sin(w) of its frequency
    const double *step_sin
    fpe_idx n_cols
    double zero_pos           # a position whose encoding is all zeros (NaN: none)
    const double *zeros       # n_cols zeros, applied at zero_pos


cdef struct Target:
    char *dst
    const char *src
    const fpe_idx *dst_rows   # byte offsets of the rows that receive the encoding
    const fpe_idx *src_rows
    fpe_idx dst_cs            # column strides, in elements
    fpe_idx src_cs
    double scale
    int mode


cdef inline void _apply_row(floating *dst, const floating *src, const double *pe,
                            fpe_idx n, const Target *tg) noexcept nogil:
    if floating is float:
        if tg.mode == _STORE:
            fpe_store_f32(dst, tg.dst_cs, pe, n)
        elif tg.mode == _ADD_INPLACE:
            fpe_add_inplace_f32(dst, tg.dst_cs, pe, tg.scale, n)
        else:
            fpe_add_to_f32(dst, tg.dst_cs, src, tg.src_cs, pe, tg.scale, n)
    else:
        if tg.mode == _STORE:
            fpe_store_f64(dst, tg.dst_cs, pe, n)
        elif tg.mode == _ADD_INPLACE:
            fpe_add_inplace_f64(dst, tg.dst_cs, pe, tg.scale, n)
        else:
            fpe_add_to_f64(dst, tg.dst_cs, src, tg.src_cs, pe, tg.scale, n)


cdef inline void _apply_to_rows(floating *dummy, const Target *tg, fpe_idx r0, fpe_idx r1,
                                fpe_idx dst_shift, fpe_idx src_shift, const double *pe,
                                fpe_idx n) noexcept nogil:
    """Apply one encoding row to target rows r0..r1, each shifted by a byte offset."""
    cdef fpe_idx r
    for r in range(r0, r1):
        _apply_row(<floating *>(tg.dst + tg.dst_rows[r] + dst_shift),
                   <const floating *>(tg.src + tg.src_rows[r] + src_shift), pe, n, tg)


cdef inline void _step_row(floating *dst, const floating *src, double *s, double *c,
                           const double *step_cos, const double *step_sin, fpe_idx n,
                           const Target *tg) noexcept nogil:
    """Emit the state into one row (per tg.mode), then advance it one position."""
    if floating is float:
        if tg.mode == _STORE:
            fpe_step_store_f32(dst, tg.dst_cs, s, c, step_cos, step_sin, n)
        elif tg.mode == _ADD_INPLACE:
            fpe_step_add_inplace_f32(dst, tg.dst_cs, tg.scale, s, c, step_cos, step_sin, n)
        else:
            fpe_step_add_to_f32(dst, tg.dst_cs, src, tg.src_cs, tg.scale, s, c, step_cos, step_sin, n)
    else:
        if tg.mode == _STORE:
            fpe_step_store_f64(dst, tg.dst_cs, s, c, step_cos, step_sin, n)
        elif tg.mode == _ADD_INPLACE:
            fpe_step_add_inplace_f64(dst, tg.dst_cs, tg.scale, s, c, step_cos, step_sin, n)
        else:
            fpe_step_add_to_f64(dst, tg.dst_cs, src, tg.src_cs, tg.scale, s, c, step_cos, step_sin, n)


# ---------------------------------------------------------------- grid kernel
# Positions p0[seq] + t for t in [0, T). Sequence seq's batch rows are the
# targets seq_ptr[seq] .. seq_ptr[seq+1]; row t of a target lies t * row stride
# bytes further. Item i covers sequence i // n_blocks, positions of block
# i % n_blocks, seeded once at the block's first position.
#
# Rows are produced a tile at a time, column chunk by column chunk, so the
# recurrence state stays in L1. A sequence with one target row gets the rows
# written straight into it; with several, the tile is generated once into
# scratch and then swept over each target's contiguous span.

cdef void _grid_item(floating *dummy, const Plan *plan, const Target *tg,
                     const double *p0, const fpe_idx *seq_ptr, fpe_idx T, fpe_idx block,
                     fpe_idx tile, fpe_idx dst_rs, fpe_idx src_rs, fpe_idx item,
                     double *scratch) noexcept nogil:
    cdef fpe_idx n_blocks = (T + block - 1) // block
    cdef fpe_idx seq = item // n_blocks
    cdef fpe_idx t0 = (item % n_blocks) * block
    cdef fpe_idx t1 = min(t0 + block, T)
    cdef fpe_idx n = plan.n_cols, nf = plan.n_freq
    cdef double *s = scratch
    cdef double *c = scratch + n
    cdef double *tile_buf = scratch + 2 * n + 2 * nf
    cdef fpe_idx r0 = seq_ptr[seq], r1 = seq_ptr[seq + 1]
    cdef double start = p0[seq]
    cdef fpe_idx a, b, t, r, col0, m, chunk = COL_CHUNK
    cdef char *dst_row
    cdef const char *src_row
    cdef floating *d
    cdef const floating *sr
    cdef double *row
    fpe_seed(s, c, start + <double>t0, plan.freq, nf, plan.col_freq, plan.col_cos, n,
             scratch + 2 * n, scratch + 2 * n + nf)
    a = t0
    while a < t1:
        b = min(a + tile, t1)
        if r1 - r0 == 1:
            dst_row = tg.dst + tg.dst_rows[r0]
            src_row = tg.src + tg.src_rows[r0]
            col0 = 0
            while col0 < n:
                m = min(chunk, n - col0)
                for t in range(a, b):
                    d = <floating *>(dst_row + t * dst_rs) + col0 * tg.dst_cs
                    sr = <const floating *>(src_row + t * src_rs) + col0 * tg.src_cs
                    if start + <double>t == plan.zero_pos:
                        _apply_row(d, sr, plan.zeros, m, tg)
                        fpe_advance(s + col0, c + col0, plan.step_cos + col0, plan.step_sin + col0, m)
                    else:
                        _step_row(d, sr, s + col0, c + col0, plan.step_cos + col0,
                                  plan.step_sin + col0, m, tg)
                col0 += chunk
        else:
            col0 = 0
            while col0 < n:
                m = min(chunk, n - col0)
                for t in range(a, b):
                    row = tile_buf + (t - a) * n + col0
                    if start + <double>t == plan.zero_pos:
                        memset(row, 0, m * sizeof(double))
                        fpe_advance(s + col0, c + col0, plan.step_cos + col0, plan.step_sin + col0, m)
                    else:
                        fpe_step_store_f64(row, 1, s + col0, c + col0, plan.step_cos + col0,
                                           plan.step_sin + col0, m)
                col0 += chunk
            for r in range(r0, r1):
                for t in range(a, b):
                    _apply_row(<floating *>(tg.dst + tg.dst_rows[r] + t * dst_rs),
                               <const floating *>(tg.src + tg.src_rows[r] + t * src_rs),
                               tile_buf + (t - a) * n, n, tg)
        a = b


cdef void _grid_run(floating *dummy, const Plan *plan, const Target *tg, const double *p0,
                    const fpe_idx *seq_ptr, fpe_idx n_seq, fpe_idx T, fpe_idx block, fpe_idx tile,
                    fpe_idx dst_rs, fpe_idx src_rs, double *scratch, fpe_idx per_thread,
                    int n_threads) noexcept nogil:
    cdef fpe_idx n_items = n_seq * ((T + block - 1) // block)
    cdef fpe_idx item
    if n_threads == 1:
        for item in range(n_items):
            _grid_item(dummy, plan, tg, p0, seq_ptr, T, block, tile, dst_rs, src_rs, item, scratch)
    else:
        for item in prange(n_items, schedule="static", num_threads=n_threads):
            _grid_item(dummy, plan, tg, p0, seq_ptr, T, block, tile, dst_rs, src_rs, item,
                       scratch + threadid() * per_thread)


# ------------------------------------------------------------- grouped kernel
# Distinct positions sorted ascending; group g's targets are rows
# group_ptr[g] .. group_ptr[g+1]. A position one above its predecessor is
# reached by the recurrence, any other one is seeded. Item i covers groups
# chunk_ptr[i] .. chunk_ptr[i+1].

cdef void _grouped_item(floating *dummy, const Plan *plan, const Target *tg,
                        const double *positions, const fpe_idx *group_ptr,
                        const fpe_idx *chunk_ptr, fpe_idx block, fpe_idx item,
                        double *scratch) noexcept nogil:
    cdef fpe_idx n = plan.n_cols, g, seeded_at = -1
    cdef double *s = scratch
    cdef double *c = scratch + n
    cdef double *sin_buf = scratch + 2 * n
    cdef double *cos_buf = sin_buf + plan.n_freq
    cdef const double *pe
    cdef double p
    for g in range(chunk_ptr[item], chunk_ptr[item + 1]):
        p = positions[g]
        if seeded_at < 0 or g - seeded_at >= block or p != positions[g - 1] + 1.0:
            fpe_seed(s, c, p, plan.freq, plan.n_freq, plan.col_freq, plan.col_cos, n,
                     sin_buf, cos_buf)
            seeded_at = g
        else:
            fpe_advance(s, c, plan.step_cos, plan.step_sin, n)
        pe = plan.zeros if p == plan.zero_pos else s
        _apply_to_rows(dummy, tg, group_ptr[g], group_ptr[g + 1], 0, 0, pe, n)


cdef void _grouped_run(floating *dummy, const Plan *plan, const Target *tg,
                       const double *positions, const fpe_idx *group_ptr,
                       const fpe_idx *chunk_ptr, fpe_idx n_chunks, fpe_idx block,
                       double *scratch, fpe_idx per_thread, int n_threads) noexcept nogil:
    cdef fpe_idx item
    if n_threads == 1:
        for item in range(n_chunks):
            _grouped_item(dummy, plan, tg, positions, group_ptr, chunk_ptr, block, item, scratch)
    else:
        for item in prange(n_chunks, schedule="static", num_threads=n_threads):
            _grouped_item(dummy, plan, tg, positions, group_ptr, chunk_ptr, block, item,
                          scratch + threadid() * per_thread)


# --------------------------------------------------------------- entry points

cdef inline void *_data(cnp.ndarray a):
    return cnp.PyArray_DATA(a)


cdef Plan _make_plan(object plan, cnp.ndarray zeros, double zero_pos):
    cdef Plan p
    p.freq = <const double *>_data(plan.freq)
    p.n_freq = plan.freq.shape[0]
    p.col_freq = <const int32_t *>_data(plan.col_freq)
    p.col_cos = <const uint8_t *>_data(plan.col_cos)
    p.step_cos = <const double *>_data(plan.step_cos)
    p.step_sin = <const double *>_data(plan.step_sin)
    p.n_cols = plan.col_freq.shape[0]
    p.zero_pos = zero_pos
    p.zeros = <const double *>_data(zeros)
    return p


cdef Target _make_target(cnp.ndarray dst, cnp.ndarray src, cnp.ndarray dst_rows,
                         cnp.ndarray src_rows, fpe_idx dst_cs, fpe_idx src_cs,
                         double scale, int mode):
    cdef Target t
    t.dst = <char *>_data(dst)
    t.src = <const char *>_data(src)
    t.dst_rows = <const fpe_idx *>_data(dst_rows)
    t.src_rows = <const fpe_idx *>_data(src_rows)
    t.dst_cs = dst_cs
    t.src_cs = src_cs
    t.scale = scale
    t.mode = mode
    return t


cdef cnp.ndarray _scratch(object plan, int n_threads, fpe_idx tile, fpe_idx *per_thread):
    # s, c (one per column), the seed's sin/cos buffers (one per frequency) and
    # a tile of rows, padded to a cache line so threads never share one.
    cdef fpe_idx n = plan.col_freq.shape[0]
    per_thread[0] = ((2 * n + 2 * plan.freq.shape[0] + tile * n) + 7) // 8 * 8 + 8
    return cnp.PyArray_ZEROS(1, [per_thread[0] * n_threads], cnp.NPY_FLOAT64, 0)


def sinusoid_grid(cnp.ndarray dst, cnp.ndarray src, object plan,
                  cnp.ndarray p0, cnp.ndarray seq_ptr,
                  cnp.ndarray dst_rows, cnp.ndarray src_rows,
                  fpe_idx T, fpe_idx block, fpe_idx tile,
                  fpe_idx dst_rs, fpe_idx dst_cs, fpe_idx src_rs, fpe_idx src_cs,
                  double scale, int mode, double zero_pos, int n_threads):
    """Sinusoid rows at positions p0[seq] + t, applied to each sequence's rows."""
    cdef fpe_idx per_thread
    cdef cnp.ndarray scratch = _scratch(plan, n_threads, tile, &per_thread)
    cdef cnp.ndarray zeros = cnp.PyArray_ZEROS(1, [max(plan.col_freq.shape[0], 1)], cnp.NPY_FLOAT64, 0)
    cdef Plan pl = _make_plan(plan, zeros, zero_pos)
    cdef Target tg = _make_target(dst, src, dst_rows, src_rows, dst_cs, src_cs, scale, mode)
    cdef const double *p0_ = <const double *>_data(p0)
    cdef const fpe_idx *seq_ptr_ = <const fpe_idx *>_data(seq_ptr)
    cdef fpe_idx n_seq = p0.shape[0]
    cdef double *scratch_ = <double *>_data(scratch)
    if cnp.PyArray_TYPE(dst) == cnp.NPY_FLOAT32:
        with nogil:
            _grid_run(<float *>NULL, &pl, &tg, p0_, seq_ptr_, n_seq, T, block, tile, dst_rs, src_rs,
                      scratch_, per_thread, n_threads)
    else:
        with nogil:
            _grid_run(<double *>NULL, &pl, &tg, p0_, seq_ptr_, n_seq, T, block, tile, dst_rs, src_rs,
                      scratch_, per_thread, n_threads)


def sinusoid_grouped(cnp.ndarray dst, cnp.ndarray src, object plan,
                     cnp.ndarray positions, cnp.ndarray group_ptr,
                     cnp.ndarray dst_rows, cnp.ndarray src_rows, cnp.ndarray chunk_ptr,
                     fpe_idx block, fpe_idx dst_cs, fpe_idx src_cs,
                     double scale, int mode, double zero_pos, int n_threads):
    """Sinusoid rows at sorted distinct positions, each applied to its group of rows."""
    cdef fpe_idx per_thread
    cdef cnp.ndarray scratch = _scratch(plan, n_threads, 0, &per_thread)
    cdef cnp.ndarray zeros = cnp.PyArray_ZEROS(1, [max(plan.col_freq.shape[0], 1)], cnp.NPY_FLOAT64, 0)
    cdef Plan pl = _make_plan(plan, zeros, zero_pos)
    cdef Target tg = _make_target(dst, src, dst_rows, src_rows, dst_cs, src_cs, scale, mode)
    cdef const double *pos_ = <const double *>_data(positions)
    cdef const fpe_idx *group_ptr_ = <const fpe_idx *>_data(group_ptr)
    cdef const fpe_idx *chunk_ptr_ = <const fpe_idx *>_data(chunk_ptr)
    cdef fpe_idx n_chunks = chunk_ptr.shape[0] - 1
    cdef double *scratch_ = <double *>_data(scratch)
    if cnp.PyArray_TYPE(dst) == cnp.NPY_FLOAT32:
        with nogil:
            _grouped_run(<float *>NULL, &pl, &tg, pos_, group_ptr_, chunk_ptr_, n_chunks, block,
                         scratch_, per_thread, n_threads)
    else:
        with nogil:
            _grouped_run(<double *>NULL, &pl, &tg, pos_, group_ptr_, chunk_ptr_, n_chunks, block,
                         scratch_, per_thread, n_threads)


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


def probe(cnp.ndarray x, double value, bint fill, int n_threads):
    """The machine's ceiling: x += value (fill=False) or x[:] = value over a
    C-contiguous array, split into one contiguous piece per thread."""
    cdef fpe_idx n = cnp.PyArray_SIZE(x)
    cdef void *data = _data(x)
    if cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32:
        with nogil:
            _probe_run(<float *>data, <float>value, n, fill, n_threads)
    else:
        with nogil:
            _probe_run(<double *>data, value, n, fill, n_threads)
