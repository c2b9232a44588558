# Part of fastpe/_kernels.pyx: learned tables (and any table of rows: the
# front doors' cached blocks of encoding rows).
# x * scale + table[position], the table's rows read in place. Implicit
# positions (p0[seq] + t) go through tiles of consecutive table rows swept
# over groups of targets' contiguous spans (SWEEP_GROUP); explicit ones
# through sorted distinct positions, each table row applied to its group of
# rows.

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
    # How far ahead the 16-bit loops ask for x's rows (_rows_ahead of dst_rs, src_rs)
    fpe_idx dst_ahead, src_ahead
    # 16-bit x and a float32 or float64 table: thread i's tile of prepared
    # rows at prepared + i * prepared_stride (fpe_half_prepare; a float32
    # table's rows widened to float64 after them), or NULL
    float *prepared
    fpe_idx prepared_stride


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


cdef inline const table_t *_table_row(const table_t *first, const BlockedTable *bt, fpe_idx j) noexcept nogil:
    """Row j of a blocked table (first: its first block, typed)."""
    if bt.n_blocks == 1:
        return <const table_t *>(<const char *>first + j * bt.row_stride)
    return <const table_t *>(bt.blocks[j // bt.rows_per_block] + (j % bt.rows_per_block) * bt.row_stride)


cdef inline void _widen_row(double *wide, const float *row, fpe_idx n) noexcept nogil:
    cdef fpe_idx j
    for j in range(n):
        wide[j] = row[j]


cdef void _table_grid_item(storage_t *dst, const table_t *first, const BlockedTable *bt, const Target *tg,
                           const TableGrid *w, fpe_idx item, int thread) noexcept nogil:
    cdef fpe_idx n_blocks = (w.T + w.block - 1) // w.block
    cdef fpe_idx seq = item // n_blocks
    cdef fpe_idx t0 = (item % n_blocks) * w.block
    cdef fpe_idx t1 = min(t0 + w.block, w.T)
    cdef fpe_idx a = t0, b, r, t, g
    cdef const storage_t *src = <const storage_t *>tg.src
    cdef fpe_idx p0 = w.p0[seq], n = bt.n_cols
    cdef fpe_idx r0 = w.seq_ptr[seq], r1 = w.seq_ptr[seq + 1]
    cdef const table_t *row
    cdef const double *row64
    cdef float *prepared
    cdef double *wide
    while a < t1:
        b = min(a + w.tile, t1)
        if storage_t is fpe_half and (table_t is double or table_t is float):
            # Prepared only where several targets share the rows (_kind_prepared);
            # a float32 table's rows widened (exactly) to float64 first, the rows the redo reads.
            if w.prepared != NULL and r1 - r0 >= 2:
                prepared = w.prepared + thread * w.prepared_stride
                wide = <double *>(prepared + w.tile * 2 * n)
                for t in range(a, b):
                    if table_t is float:
                        _widen_row(wide + (t - a) * n, _table_row(first, bt, p0 + t), n)
                        fpe_half_prepare(prepared + (t - a) * 2 * n, wide + (t - a) * n, n, tg.kind)
                    else:
                        fpe_half_prepare(prepared + (t - a) * 2 * n, _table_row(first, bt, p0 + t), n, tg.kind)
                g = r0
                while g < r1:
                    for t in range(a, b):
                        if table_t is float:
                            row64 = wide + (t - a) * n
                        else:
                            row64 = _table_row(first, bt, p0 + t)
                        for r in range(g, min(g + SWEEP_GROUP, r1)):
                            fpe_apply_half_prepared(tg.kind, _at(dst, tg.dst_rows[r] + t * w.dst_rs), tg.dst_cs,
                                                    _read_at(src, tg.src_rows[r] + t * w.src_rs), tg.src_cs,
                                                    row64, prepared + (t - a) * 2 * n, tg.scale, n, tg.mode,
                                                    w.dst_ahead, w.src_ahead)
                    g += SWEEP_GROUP
                a = b
                continue
        g = r0
        while g < r1:
            for t in range(a, b):
                row = _table_row(first, bt, p0 + t)
                for r in range(g, min(g + SWEEP_GROUP, r1)):
                    if storage_t is fpe_half and table_t is fpe_half:
                        # With the prepared loops' prefetch (FPE_PREPARED_PREFETCH).
                        fpe_apply_half_same(tg.kind, _at(dst, tg.dst_rows[r] + t * w.dst_rs), tg.dst_cs,
                                            _read_at(src, tg.src_rows[r] + t * w.src_rs), tg.src_cs, row, n,
                                            tg.mode, w.dst_ahead, w.src_ahead)
                    else:
                        _apply_table_row(_at(dst, tg.dst_rows[r] + t * w.dst_rs),
                                         _read_at(src, tg.src_rows[r] + t * w.src_rs), row, bt.n_cols, tg)
            g += SWEEP_GROUP
        a = b


cdef void _table_grouped_item(storage_t *dst, const table_t *first, const BlockedTable *bt, const Target *tg,
                              const TableGroups *w, fpe_idx item) noexcept nogil:
    cdef fpe_idx g, r
    cdef const storage_t *src = <const storage_t *>tg.src
    cdef const table_t *row
    for g in range(w.chunk_ptr[item], w.chunk_ptr[item + 1]):
        row = _table_row(first, bt, <fpe_idx>w.positions[g])
        for r in range(w.group_ptr[g], w.group_ptr[g + 1]):
            _apply_table_row(_at(dst, tg.dst_rows[r]), _read_at(src, tg.src_rows[r]), row, bt.n_cols, tg)


cdef inline void _table_item(storage_t *dst, const table_t *first, const BlockedTable *bt, const Target *tg,
                             const table_work *w, fpe_idx item, int thread) noexcept nogil:
    if table_work is TableGrid:
        _table_grid_item(dst, first, bt, tg, w, item, thread)
    else:
        _table_grouped_item(dst, first, bt, tg, w, item)


cdef void _table_run(storage_t *dst, const table_t *first, const BlockedTable *bt, const Target *tg,
                     const table_work *w, fpe_idx n_items, int n_threads) noexcept nogil:
    cdef fpe_idx item
    if n_threads == 1:
        for item in range(n_items):
            _table_item(dst, first, bt, tg, w, item, 0)
    else:
        for item in prange(n_items, schedule="static", num_threads=n_threads):
            _table_item(dst, first, bt, tg, w, item, threadid())


cdef void _table_with(storage_t *dst, const BlockedTable *bt, const Target *tg, const table_work *w,
                      fpe_idx n_items, int n_threads) noexcept nogil:
    """Run with the table's element type."""
    if bt.element == FPE_FLOAT32:
        _table_run(dst, <const float *>bt.blocks[0], bt, tg, w, n_items, n_threads)
    elif bt.element == FPE_FLOAT64:
        _table_run(dst, <const double *>bt.blocks[0], bt, tg, w, n_items, n_threads)
    elif storage_t is fpe_half:
        _table_run(dst, <const fpe_half *>bt.blocks[0], bt, tg, w, n_items, n_threads)


cdef void _table_add(const Target *tg, int element, const BlockedTable *bt, const table_work *w, fpe_idx n_items,
                     int n_threads) noexcept nogil:
    """Run with x's storage type."""
    if tg.kind != FPE_STORAGE_NATIVE:
        _table_with(<fpe_half *>tg.dst, bt, tg, w, n_items, n_threads)
    elif element == FPE_FLOAT32:
        _table_with(<float *>tg.dst, bt, tg, w, n_items, n_threads)
    else:
        _table_with(<double *>tg.dst, bt, tg, w, n_items, n_threads)


cdef bint _rows_shared(const fpe_idx *seq_ptr, fpe_idx n_seq) noexcept nogil:
    """Whether some sequence's rows go to several targets."""
    cdef fpe_idx i
    for i in range(n_seq):
        if seq_ptr[i + 1] - seq_ptr[i] >= 2:
            return True
    return False


cdef int table_grid(const ArrayDesc *dst, const fpe_idx *dst_rows, const ArrayDesc *src, const fpe_idx *src_rows,
                    const BlockedTable *table, const fpe_idx *p0, const fpe_idx *seq_ptr, fpe_idx n_seq, fpe_idx T,
                    double scale, int n_threads) except -1:
    """dst = [src or dst] * scale + row p0[seq] + t of the table, into each
    sequence's rows dst_rows[seq_ptr[seq]:seq_ptr[seq + 1]] (rows as
    sinusoid_grid), a tile of table rows at a time."""
    cdef int mode = _mode(False, src)
    cdef Target tg = _target(mode, dst, dst_rows, src, src_rows, scale)
    cdef TableGrid w
    cdef fpe_idx n_items
    w.p0, w.seq_ptr, w.n_seq, w.T = p0, seq_ptr, n_seq, T
    w.dst_rs = dst.strides[dst.ndim - 2]
    w.src_rs = src.strides[src.ndim - 2] if mode == FPE_MODE_ADD_TO else w.dst_rs
    w.dst_ahead, w.src_ahead = _rows_ahead(w.dst_rs), _rows_ahead(w.src_rs)
    _work_split(T, n_seq, max(T, 1), &w.block, &n_items)  # no bound of its own: a table has no seeds
    w.tile = _tile_rows(TILE_SHARED_BYTES, table.n_cols, dst.element, w.block)
    n_threads = _team(n_threads, n_items)
    w.prepared = NULL
    if table.element <= FPE_FLOAT64 and _kind_prepared(tg.kind, scale) and _rows_shared(seq_ptr, n_seq):
        # Tiles of half as many rows, each also prepared (twice its float32 count: the tile's bytes again),
        # a float32 table's also widened to float64 (as many bytes again).
        w.tile = max(1, w.tile // 2)
        w.prepared_stride = w.tile * 2 * table.n_cols * (2 if table.element == FPE_FLOAT32 else 1)
        w.prepared = <float *>malloc(max(n_threads * w.prepared_stride, 1) * sizeof(float))
        if w.prepared == NULL:
            raise MemoryError("cannot allocate the prepared rows of a 16-bit table add")
    try:
        with nogil:
            _table_add(&tg, dst.element, table, &w, n_items, n_threads)
    finally:
        free(w.prepared)
    return 0


cdef int _one_block(cnp.ndarray table, BlockedTable *bt, const char **block, const ArrayDesc *dst,
                    double scale) except -1:
    """bt: a table of contiguous float32 or float64 rows, or of rows of a
    16-bit dst's own kind added with scale 1, as one block."""
    cdef ArrayDesc d
    describe_ndarray(table, &d)
    cdef bint own_16_bit = d.element == dst.element and _storage_kind(d.element) != FPE_STORAGE_NATIVE and scale == 1.0
    if d.ndim != 2 or (d.element > FPE_FLOAT64 and not own_16_bit) or (d.shape[1] > 1 and d.strides[1] != d.itemsize):
        raise ValueError("a table of contiguous float32 or float64 rows (or of a 16-bit x's own type, with "
                         "scale 1) is required")
    block[0] = d.data
    bt.blocks = block
    bt.n_blocks = 1
    bt.rows_per_block = max(d.shape[0], 1)
    bt.row_stride = d.strides[0]
    bt.n_cols = d.shape[1]
    bt.element = d.element
    return 0


def table_grid_rows(cnp.ndarray dst, const fpe_idx[::1] dst_rows, cnp.ndarray table, const fpe_idx[::1] p0,
                    const fpe_idx[::1] seq_ptr, fpe_idx T, *, cnp.ndarray src=None, const fpe_idx[::1] src_rows=None,
                    double scale=1.0, int n_threads=1):
    """table_grid: dst = [src or dst] * scale + table[p0[seq] + t] into each
    sequence's rows (as sinusoid_grid_rows). The table's rows are contiguous,
    float32 or float64 (a 16-bit x takes either, or its own type with scale 1)."""
    cdef ArrayDesc d, s
    cdef BlockedTable bt
    cdef const char *block
    describe_ndarray(dst, &d)
    _one_block(table, &bt, &block, &d, scale)
    table_grid(&d, &dst_rows[0], _source(src, &s), _indices(src_rows), &bt, &p0[0], &seq_ptr[0], p0.shape[0], T,
               scale, n_threads)


def table_grouped_rows(cnp.ndarray dst, const fpe_idx[::1] dst_rows, cnp.ndarray table,
                       const double[::1] positions, const fpe_idx[::1] group_ptr, const fpe_idx[::1] chunk_ptr, *,
                       cnp.ndarray src=None, const fpe_idx[::1] src_rows=None, double scale=1.0, int n_threads=1):
    """dst = [src or dst] * scale + table[position] for each sorted distinct
    position (integers held as float64) and its group of rows (as sinusoid_grouped_rows); tables as
    table_grid_rows."""
    cdef ArrayDesc d, s
    cdef BlockedTable bt
    cdef const char *block
    describe_ndarray(dst, &d)
    _one_block(table, &bt, &block, &d, scale)
    cdef const ArrayDesc *src_ = _source(src, &s)
    cdef Target tg = _target(_mode(False, src_), &d, &dst_rows[0], src_, _indices(src_rows), scale)
    cdef TableGroups w
    w.positions, w.group_ptr, w.chunk_ptr, w.n_chunks = &positions[0], &group_ptr[0], &chunk_ptr[0], chunk_ptr.shape[0] - 1
    with nogil:
        _table_add(&tg, d.element, &bt, &w, w.n_chunks, _team(n_threads, w.n_chunks))
