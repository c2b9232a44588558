# Part of fastpe/_kernels.pyx: rotary embeddings.
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
# where the hardware prefetchers lose the stream. 16 rows: 8 positions ahead
# in each of a pair of heads (docs/performance.rst).
cdef enum:
    ROTATE_PREFETCH_ROWS = 16
    # At most this many bytes of a row are requested (a wider row streams itself).
    ROTATE_PREFETCH_BYTES = 2048


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


cdef int rotate_rows(const ArrayDesc *dst, const fpe_idx *dst_rows, const ArrayDesc *src, const fpe_idx *src_rows,
                     fpe_idx n_rows, const fpe_idx *table_idx, const CosSin *cs, int n_threads) except -1:
    """Rotate the channel pairs (cs.layout, cs.n_pairs pairs) of the vector
    rows at byte offsets dst_rows by the angles of cos/sin row table_idx[i]:
    in place (src NULL), or dst's pairs = src's rotated (dst and src
    disjoint, of one dtype)."""
    cdef Rotation rot
    rot.mode = FPE_MODE_ADD_INPLACE if src == NULL else FPE_MODE_ADD_TO
    if src == NULL:
        src, src_rows = dst, dst_rows
    rot.src = src.data
    rot.dst_rows = dst_rows
    rot.src_rows = src_rows
    rot.table_idx = table_idx
    rot.n_rows = n_rows
    rot.cos_table = cs.cos
    rot.sin_table = cs.sin
    rot.table_rs = cs.row_stride
    rot.d = pair_columns_of(cs.layout, cs.n_pairs, column_step(dst))
    rot.r = pair_columns_of(cs.layout, cs.n_pairs, column_step(src))
    rot.n_pairs = cs.n_pairs
    rot.kind = _storage_kind(dst.element)
    rot.dst_span = _row_span(rot.d, cs.n_pairs, dst.itemsize)
    rot.src_span = _row_span(rot.r, cs.n_pairs, src.itemsize)
    n_threads = _team(n_threads, n_rows)
    with nogil:
        if rot.kind != FPE_STORAGE_NATIVE:
            _rotate_run(<fpe_half *>dst.data, &rot, n_threads)
        elif dst.element == FPE_FLOAT32:
            _rotate_run(<float *>dst.data, &rot, n_threads)
        else:
            _rotate_run(<double *>dst.data, &rot, n_threads)
    return 0


def rotate_vector_rows(cnp.ndarray dst, const fpe_idx[::1] dst_rows, const fpe_idx[::1] table_idx,
                       const double[:, :] cos, const double[:, :] sin, layout, fpe_idx n_pairs, *,
                       cnp.ndarray src=None, const fpe_idx[::1] src_rows=None, int n_threads=1):
    """rotate_rows: rotate the n_pairs channel pairs of `layout` ("half" or
    "interleaved", PAIR_LAYOUTS) of dst's vector rows at byte offsets
    dst_rows by cos/sin row table_idx[i], in place, or from src. cos and sin
    (float64, unit column stride: halves of one table, say) share one row stride."""
    if cos.strides[0] != sin.strides[0]:
        raise ValueError("cos and sin must share one row stride")
    if cos.strides[1] != sizeof(double) or sin.strides[1] != sizeof(double):
        raise ValueError("cos and sin must have contiguous rows")
    cdef ArrayDesc d, s
    cdef CosSin cs
    describe_ndarray(dst, &d)
    cs.cos = <const char *>&cos[0, 0]
    cs.sin = <const char *>&sin[0, 0]
    cs.row_stride = cos.strides[0]
    cs.n_pairs = n_pairs
    cs.layout = PAIR_LAYOUTS.index(layout)
    rotate_rows(&d, &dst_rows[0], _source(src, &s), _indices(src_rows), dst_rows.shape[0], &table_idx[0], &cs,
                n_threads)
