# Part of fastpe/_kernels.pyx: the sinusoid generator (tables, encodings, fused adds).

cdef inline void _emit1(floating *dst, const floating *src, fpe_idx col, double v,
                        const Target *tg) noexcept nogil:
    """Emit one value into column col of a row, with the bits the whole-row
    paths give it."""
    if floating is float:
        fpe_emit_column_f32(dst + col * tg.dst_cs, src + col * tg.src_cs, tg.scale, v, tg.mode)
    else:
        fpe_emit_column_f64(dst + col * tg.dst_cs, src + col * tg.src_cs, tg.scale, v, tg.mode)


cdef inline void _emit_zero_cols(floating *dst, const floating *src, const PlanView *pl,
                                 const Target *tg) noexcept nogil:
    cdef fpe_idx i
    for i in range(pl.n_zero):
        _emit1(dst, src, pl.zero_cols[i], 0.0, tg)


cdef inline fpe_cols _cols(const PlanView *pl, fpe_idx cs) noexcept nogil:
    """Where the sine and cosine columns of a row with column stride cs lie."""
    cdef fpe_cols cols
    cols.sin_off = pl.sin_col * cs
    cols.cos_off = pl.cos_col * cs
    cols.ks = pl.col_step * cs
    return cols


cdef inline void _step_odd(floating *dst, const floating *src, const PlanView *pl,
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


cdef inline void _step_chunk(floating *dst, const floating *src, const PlanView *pl,
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
                            fpe_idx rows, const PlanView *pl, const Target *tg, double *s, double *c,
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
    """Apply a whole float32/float64 row pe (or one of x's own 16-bit kind,
    with scale 1) to a 16-bit row per tg.mode."""
    if table_t is fpe_half:
        fpe_apply_half_same(tg.kind, dst, tg.dst_cs, src, tg.src_cs, pe, n, tg.mode, 0, 0)
    elif tg.kind == FPE_STORAGE_F16:
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

cdef inline void _row_into_buffer(floating *row, const PlanView *pl, double *s, double *c,
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


cdef inline void _rows_into_buffer(floating *rows, const PlanView *pl, double *s, double *c,
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
    cdef double k = n - FPE_SEED_GRID * floor(n / FPE_SEED_GRID)
    cdef Canonical to
    to.at = (n - k) + (p - n)
    to.steps = <fpe_idx>k
    if to.at - (n - k) != p - n:
        # Not a float64 (a fractional p just above -2**52: n - k passes -2**52,
        # where halves no longer exist): seed at p itself.
        to.at = p
        to.steps = 0
    return to


cdef inline void _move_state(double *s, double *c, const PlanView *pl, Canonical *state,
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
    cdef fpe_idx t, lim = min(t1, a + (FPE_SEED_GRID - first.steps))
    cdef Canonical here
    if start == floor(start) and fabs(start) + <double>t1 <= FPE_EXACT_INTEGERS:
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

cdef void _apply_prepared_tile(const double *rows, float *prepared, fpe_idx n, const Target *tg, fpe_idx a,
                               fpe_idx b, fpe_idx r0, fpe_idx r1, fpe_idx dst_rs, fpe_idx src_rs) noexcept nogil:
    """The shared path's tile of float64 rows a..b-1 for 16-bit x: each row
    prepared once (fpe_half_prepare, 2 * n float32 a row), then applied to
    the rows r0..r1-1 of every sequence that shares it."""
    cdef fpe_idx t, r, g, dst_ahead = _rows_ahead(dst_rs), src_ahead = _rows_ahead(src_rs)
    for t in range(a, b):
        fpe_half_prepare(prepared + (t - a) * 2 * n, rows + (t - a) * n, n, tg.kind)
    g = r0
    while g < r1:
        for t in range(a, b):
            for r in range(g, min(g + SWEEP_GROUP, r1)):
                fpe_apply_half_prepared(tg.kind, <fpe_half *>(tg.dst + tg.dst_rows[r] + t * dst_rs), tg.dst_cs,
                                        <const fpe_half *>(tg.src + tg.src_rows[r] + t * src_rs), tg.src_cs,
                                        rows + (t - a) * n, prepared + (t - a) * 2 * n, tg.scale, n, tg.mode,
                                        dst_ahead, src_ahead)
        g += SWEEP_GROUP


cdef void _grid_item(floating *tile_buf, double *scratch, const PlanView *pl, const Target *tg,
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
    # 16-bit x whose rows several targets share takes them prepared where it
    # may (_kind_prepared): half the tile's rows, the other half holding them
    # prepared.
    cdef bint prepared = (floating is double and tile_shared >= 2 and r1 - r0 >= 2
                          and _kind_prepared(tg.kind, tg.scale))
    cdef fpe_idx tile = tile_direct if direct else (tile_shared // 2 if prepared else tile_shared)
    cdef fpe_idx a, b, t, r, g, k0, u, z, chunk = COL_CHUNK
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
        elif prepared:
            _rows_into_buffer(tile_buf, pl, s, c, start, a, b)
            _apply_prepared_tile(<const double *>tile_buf, <float *>(tile_buf + tile * n), n, tg, a, b, r0, r1,
                                 dst_rs, src_rs)
        else:
            _rows_into_buffer(tile_buf, pl, s, c, start, a, b)
            g = r0
            while g < r1:
                for t in range(a, b):
                    for r in range(g, min(g + SWEEP_GROUP, r1)):
                        _apply_row(<floating *>(tg.dst + tg.dst_rows[r] + t * dst_rs),
                                   <const floating *>(tg.src + tg.src_rows[r] + t * src_rs),
                                   tile_buf + (t - a) * n, n, tg)
                g += SWEEP_GROUP
        state.steps += b - a
        a = b


cdef void _grid_run(floating *tile_bufs, double *scratch, fpe_idx per_thread, const PlanView *pl,
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

cdef void _grouped_item(floating *row, double *scratch, const PlanView *pl, const Target *tg,
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


cdef void _grouped_run(floating *rows, double *scratch, fpe_idx per_thread, const PlanView *pl,
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

cdef inline void _work_split(fpe_idx T, fpe_idx n_seq, fpe_idx max_block, fpe_idx *block,
                             fpe_idx *n_items) noexcept nogil:
    """Positions per work item (at most max_block, about ITEMS_PER_CALL items
    per sequence) and the number of items. It depends on the input only: for
    the sinusoid grid the split does not change the bits (every row follows
    its canonical path); it only balances the threads."""
    cdef fpe_idx b = max(<fpe_idx>MIN_BLOCK_, (T + ITEMS_PER_CALL_ - 1) // ITEMS_PER_CALL_)
    b = min(b, max_block, max(T, 1))
    block[0] = b
    n_items[0] = n_seq * ((T + b - 1) // b)


cdef inline fpe_idx _tile_rows(fpe_idx nbytes, fpe_idx n_cols, int element, fpe_idx block) noexcept nogil:
    """Rows of a tile of `nbytes`. Tile rows are encoding rows in the type the
    sum is formed in: x's for float32 and float64, float64 for the 16-bit types."""
    cdef fpe_idx row_itemsize = 4 if element == FPE_FLOAT32 else 8
    return max(1, min(block, nbytes // max(n_cols * row_itemsize, 1)))


cdef inline int _team(int n_threads, fpe_idx n_items) noexcept nogil:
    """The team a call starts: no more threads than work items (at least one)."""
    return max(1, <int>min(<fpe_idx>n_threads, n_items))


cdef inline double *_aligned64(double *p) noexcept nogil:
    """Round a scratch pointer up to a cache line (the allocation has spare
    room): 512-bit loads and stores must not straddle two lines."""
    return <double *>((<size_t>p + 63) & ~(<size_t>63))


cdef cnp.ndarray _scratch(const PlanView *pl, int n_threads, fpe_idx rows, fpe_idx *per_thread):
    # Per thread: where its state stands (a Canonical), the state s, c (one
    # per frequency, spaced apart) and `rows` rows of encodings (sized as
    # float64, enough for either storage type), rounded to whole cache lines.
    # Zeroed where the plan has zero columns, which the row buffers never
    # write; every other part is written before it is read.
    cdef fpe_idx n_rows = max(rows, 1)
    per_thread[0] = (STATE_HEADER + 2 * _unaliased(pl.n_freq) + n_rows * pl.n_cols + 7) // 8 * 8
    cdef cnp.npy_intp size = per_thread[0] * n_threads + 8
    if pl.n_zero:
        return cnp.PyArray_ZEROS(1, &size, cnp.NPY_FLOAT64, 0)
    return cnp.PyArray_EMPTY(1, &size, cnp.NPY_FLOAT64, 0)


cdef inline double *_scratch_rows(double *scratch, const PlanView *pl) noexcept:
    """Thread 0's encoding rows in the scratch, behind its state."""
    return scratch + STATE_HEADER + 2 * _unaliased(pl.n_freq)


cdef bint _shares_rows(const Target *tg, const fpe_idx *seq_ptr, fpe_idx n_seq) noexcept:
    """Whether the grid kernel takes the shared path anywhere (a sequence
    with several target rows, or 16-bit storage), which needs the tile of
    encoding rows in the scratch."""
    cdef fpe_idx i
    if tg.kind != FPE_STORAGE_NATIVE:
        return True
    for i in range(n_seq):
        if seq_ptr[i + 1] - seq_ptr[i] != 1:
            return True
    return False


cdef cnp.ndarray _with_zeros(Plan plan, double zero_pos, PlanView *pl):
    """plan's view for one call (zero_pos and its zeros set); the zeros, kept alive by the caller."""
    cdef cnp.npy_intp n = max(plan.view.n_cols, 1)
    cdef cnp.ndarray zeros = cnp.PyArray_ZEROS(1, &n, cnp.NPY_FLOAT64, 0)
    pl[0] = plan.view
    pl.zero_pos = zero_pos
    pl.zeros = cnp.PyArray_DATA(zeros)
    return zeros


cdef int sinusoid_grid(const ArrayDesc *dst, const fpe_idx *dst_rows, const ArrayDesc *src,
                       const fpe_idx *src_rows, Plan plan, const Positions *at, bint store, double scale,
                       double zero_pos, int n_threads) except -1:
    """The sinusoid rows of positions at.p0[seq] + t, stored into (store), added
    to (src NULL) or added from src into each sequence's rows
    dst_rows[seq_ptr[seq]:seq_ptr[seq + 1]] (byte offsets; row t lies one
    row stride, dst's axis -2, further): dst = [src or dst] * scale + row."""
    cdef int mode = _mode(store, src)
    cdef Target tg = _target(mode, dst, dst_rows, src, src_rows, scale)
    cdef fpe_idx dst_rs = dst.strides[dst.ndim - 2]
    cdef fpe_idx src_rs = src.strides[src.ndim - 2] if mode == FPE_MODE_ADD_TO else dst_rs
    cdef fpe_idx block, n_items, per_thread
    _work_split(at.T, at.n_seq, FPE_SEED_GRID, &block, &n_items)
    cdef fpe_idx tile_direct = _tile_rows(TILE_DIRECT_BYTES, plan.view.n_cols, dst.element, block)
    cdef fpe_idx tile_shared = _tile_rows(TILE_SHARED_BYTES, plan.view.n_cols, dst.element, block)
    n_threads = _team(n_threads, n_items)
    cdef PlanView pl
    cdef cnp.ndarray zeros = _with_zeros(plan, zero_pos, &pl)
    cdef cnp.ndarray scratch = _scratch(&pl, n_threads,
                                        tile_shared if _shares_rows(&tg, at.seq_ptr, at.n_seq) else 0, &per_thread)
    cdef double *scratch_ = _aligned64(<double *>cnp.PyArray_DATA(scratch))
    cdef double *rows = _scratch_rows(scratch_, &pl)
    if dst.element == FPE_FLOAT32:
        with nogil:
            _grid_run(<float *>rows, scratch_, per_thread, &pl, &tg, at.p0, at.seq_ptr, at.n_seq, at.T, block,
                      tile_direct, tile_shared, dst_rs, src_rs, n_threads)
    else:
        with nogil:
            _grid_run(rows, scratch_, per_thread, &pl, &tg, at.p0, at.seq_ptr, at.n_seq, at.T, block,
                      tile_direct, tile_shared, dst_rs, src_rs, n_threads)
    return 0


def sinusoid_grid_rows(cnp.ndarray dst, const fpe_idx[::1] dst_rows, Plan plan, const double[::1] p0,
                       const fpe_idx[::1] seq_ptr, fpe_idx T, *, cnp.ndarray src=None,
                       const fpe_idx[::1] src_rows=None, bint store=False, double scale=1.0,
                       double zero_position=NAN, int n_threads=1):
    """sinusoid_grid: dst's rows at consecutive positions p0[seq] + t (t < T)
    for each sequence's rows dst_rows[seq_ptr[seq]:seq_ptr[seq + 1]] are
    stored (store=True), added in place (src None) or added from src (laid
    out like dst, the two disjoint): dst = [src or dst] * scale + row. The
    row of zero_position (NaN: none) is zero."""
    cdef ArrayDesc d, s
    cdef Positions at
    describe_ndarray(dst, &d)
    at.p0, at.seq_ptr, at.n_seq, at.T = &p0[0], &seq_ptr[0], p0.shape[0], T
    sinusoid_grid(&d, &dst_rows[0], _source(src, &s), _indices(src_rows), plan, &at, store, scale,
                  zero_position, n_threads)


def sinusoid_grouped_rows(cnp.ndarray dst, const fpe_idx[::1] dst_rows, Plan plan, const double[::1] positions,
                          const fpe_idx[::1] group_ptr, const fpe_idx[::1] chunk_ptr, *, cnp.ndarray src=None,
                          const fpe_idx[::1] src_rows=None, bint store=False, double scale=1.0,
                          double zero_position=NAN, int n_threads=1):
    """The sinusoid row of each sorted distinct position g, stored into, added
    to or added from src into its group of rows dst_rows[group_ptr[g]:group_ptr[g + 1]]
    (byte offsets; modes as sinusoid_grid_rows); work item i covers groups
    chunk_ptr[i]:chunk_ptr[i + 1]."""
    cdef ArrayDesc d, s
    describe_ndarray(dst, &d)
    cdef const ArrayDesc *src_ = _source(src, &s)
    cdef Target tg = _target(_mode(store, src_), &d, &dst_rows[0], src_, _indices(src_rows), scale)
    cdef fpe_idx n_chunks = chunk_ptr.shape[0] - 1, per_thread
    n_threads = _team(n_threads, n_chunks)
    cdef PlanView pl
    cdef cnp.ndarray zeros = _with_zeros(plan, zero_position, &pl)
    cdef cnp.ndarray scratch = _scratch(&pl, n_threads, 1, &per_thread)
    cdef double *scratch_ = _aligned64(<double *>cnp.PyArray_DATA(scratch))
    cdef double *rows = _scratch_rows(scratch_, &pl)
    cdef const double *pos_ = &positions[0]
    cdef const fpe_idx *group_ptr_ = &group_ptr[0]
    cdef const fpe_idx *chunk_ptr_ = &chunk_ptr[0]
    if d.element == FPE_FLOAT32:
        with nogil:
            _grouped_run(<float *>rows, scratch_, per_thread, &pl, &tg, pos_, group_ptr_, chunk_ptr_, n_chunks,
                         n_threads)
    else:
        with nogil:
            _grouped_run(rows, scratch_, per_thread, &pl, &tg, pos_, group_ptr_, chunk_ptr_, n_chunks, n_threads)
