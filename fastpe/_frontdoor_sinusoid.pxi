# Part of fastpe/_frontdoor.pyx: add_sinusoidal's front door.
#
# The common call is ``add_sinusoidal(x)`` or ``add_sinusoidal(x, offset=o)``
# (with or without ``num_threads=n``, ``scale=s`` and ``out=y``) with every
# other argument at its default, where x is an array _intake_ndarray takes
# (ndim >= the declaration's 2; float16 and bfloat16 too), o a scalar
# _offset_value takes, with |o + T - 1| within the position limit too, n a
# value the num_threads declaration accepts as it is, s a number
# _scale_value takes, and y x itself or an array of x's dtype and shape
# sharing no memory with it (x then only read, and may be read-only:
# _intake_apart_out). It goes one of two ways, with the same bits either way:
#
# * Cached rows, when the positions are integers, the blocks of rows the
#   call reads take at most 1/_CACHE_SHARE of the cache's limit, and x is not
#   a 16-bit batch whose sequences share prepared rows: the
#   learned-table kernel adds rows of the encoding kept in the cache, in
#   blocks of FPE_SEED_GRID consecutive positions (block b holds positions
#   b*SEED_GRID .. b*SEED_GRID + SEED_GRID - 1, in x's dtype, float64 for the
#   16-bit types: the sum the kernel forms), each built by the sinusoid
#   kernel as a table the first time a call needs it. Row p's bits are a
#   pure function of p (the bits rule of _kernels.pyx), so a cached row is
#   the row the kernel would generate, and ``x * scale + row`` is the sum the
#   kernel forms (the row adds of _simd.h form it as the generator's do, in
#   clones dispatched alike, so a multiply-add is contracted alike; the
#   tests compare scales whose products round). Reading a row costs less than generating it, as it does for a
#   user's own cached table (docs/performance.rst has the measurements).
# * Generation: the sinusoid kernel with the general path's plan (the same
#   cache entry) and team size.

cdef enum:
    # Most blocks one call reads.
    _MAX_BLOCKS = 256
    # The blocks a call needs may take at most this share of the cache's limit:
    # above it, calls would evict each other's blocks and generate anyway.
    _CACHE_SHARE = 2

cdef int _X_MIN_NDIM = params.X.min_ndim

# Calls that took this path, and those of them that added cached rows
# (incremented with the GIL held); read by the tests.
cdef unsigned long long _n_sinusoid_calls = 0
cdef unsigned long long _n_row_calls = 0


def sinusoid_calls():
    """How many add_sinusoidal calls its front door served in this process (for tests)."""
    return _n_sinusoid_calls


def row_calls():
    """How many of them added cached rows (for tests)."""
    return _n_row_calls


def add_sinusoidal(x, offset, positions, scale, base, layout, out, num_threads, inv_freq, preset, padding_idx,
                   min_timescale, max_timescale):
    """add_sinusoidal's arguments, as the caller gave them: x with the
    encoding added when the call is the common one (see above), else None.
    A plain CPU tensor x, in place, takes fastpe.torch's eager route where it
    is open to a NumPy-facing function (_torch_route_open)."""
    if out is None and _plain_tensor(x):
        return _sinusoid_on_tensor(x, False, offset, positions, scale, base, layout, num_threads, inv_freq, preset,
                                   padding_idx, min_timescale, max_timescale, True)
    cdef double first, scale_value
    if not _common_sinusoid(offset, positions, scale, base, layout, num_threads, inv_freq, preset, padding_idx,
                            min_timescale, max_timescale, &first, &scale_value):
        return None
    cdef ArrayDesc d, src
    cdef bint apart = out is not None and out is not x
    if apart:
        if not _intake_apart_out(x, out, &src, &d):
            return None
    elif not _intake_ndarray(x, &d, _X_MIN_NDIM, True):
        return None
    if not _positions_within_limit(&d, first):
        return None
    _serve_sinusoid(&d, &src if apart else NULL, first, scale_value, num_threads)
    return out if apart else x


def add_sinusoidal_tensor_eagerly(x, bint into_new, offset, positions, scale, base, layout, num_threads, inv_freq,
                                  preset, padding_idx, min_timescale, max_timescale):
    """add_sinusoidal's common call on a CPU tensor x, for fastpe.torch's eager
    route once it knows Dynamo is not tracing: served only when
    _torch_route_open lets the call skip the dispatcher, in place (x
    returned, its version counter bumped) or (into_new) into a new tensor
    (torch.empty_like(x), returned). None where another way must serve the
    call (nothing written)."""
    return _sinusoid_on_tensor(x, into_new, offset, positions, scale, base, layout, num_threads, inv_freq, preset,
                               padding_idx, min_timescale, max_timescale, False)


cdef object _sinusoid_on_tensor(x, bint into_new, offset, positions, scale, base, layout, num_threads, inv_freq,
                                preset, padding_idx, min_timescale, max_timescale, bint numpy_facing):
    """add_sinusoidal_tensor_eagerly, for fastpe.torch's functions or (numpy_facing) fastpe.add_sinusoidal's."""
    if not _torch_route_open((x,), offset, () if into_new else (x,), numpy_facing):
        return None
    offset = _offset_of_tensor(offset)
    cdef double first, scale_value
    if offset is None or not _common_sinusoid(offset, positions, scale, base, layout, num_threads, inv_freq, preset,
                                              padding_idx, min_timescale, max_timescale, &first, &scale_value):
        return None
    cdef ArrayDesc d, src
    if not _intake_tensor(x, &src if into_new else &d, _X_MIN_NDIM, True):
        return None
    if not _positions_within_limit(&src if into_new else &d, first):
        return None
    global _n_tensor_add_calls
    made = _new_tensor_like(x, &src, &d) if into_new else None
    _n_tensor_add_calls += 1
    _serve_sinusoid(&d, &src if into_new else NULL, first, scale_value, num_threads)
    return made if into_new else _bump_written(x, (x,), False)


cdef bint _common_sinusoid(object offset, object positions, object scale, object base, object layout,
                           object num_threads, object inv_freq, object preset, object padding_idx,
                           object min_timescale, object max_timescale, double *first,
                           double *scale_value) except -1:
    """The arguments of the common call other than the arrays (see above): every option but scale at its
    default, num_threads as the declaration accepts it, offset a value _offset_value reads (into first) and
    scale one _scale_value reads (into scale_value)."""
    if not (positions is None and base is None and layout is None
            and inv_freq is None and preset is None and padding_idx is None
            and min_timescale is None and max_timescale is None):
        return False
    return (accepts_int(num_threads, &_NUM_THREADS) and _offset_value(offset, first)
            and _scale_value(scale, scale_value))


cdef bint _positions_within_limit(const ArrayDesc *d, double first) noexcept:
    # One rounded addition, as the general path's check_position_range forms it.
    return fabs(first + <double>(d.shape[d.ndim - 2] - 1)) < _LIMIT


cdef int _serve_sinusoid(const ArrayDesc *d, const ArrayDesc *src, double first, double scale,
                         object num_threads) except -1:
    """The common call's rows added (to src, NULL: d itself, times scale) into d: cached rows or generated
    (see above)."""
    global _n_sinusoid_calls, _n_row_calls
    cdef fpe_idx T = d.shape[d.ndim - 2], D = d.shape[d.ndim - 1]
    _n_sinusoid_calls += 1
    cdef int n_threads = _runtime.resolve_threads(num_threads, d.size)
    if first == floor(first) and _add_cached_rows(d, src, first, T, D, scale, n_threads):
        _n_row_calls += 1
    else:
        _generate(d, src, first, T, D, False, scale, n_threads)
    return 0


cdef bint _intake_apart_out(object x, object out, ArrayDesc *src, ArrayDesc *d) except -1:
    """Describe out into d and x into src when out is an array _intake_ndarray
    takes, x one it takes as only read, of out's dtype and shape, and the two
    share no memory (the general path settles overlapping ones)."""
    if not _intake_ndarray(out, d, _X_MIN_NDIM, True):
        return False
    if not _intake_ndarray(x, src, _X_MIN_NDIM, True, True) or src.ndim != d.ndim or x.dtype != out.dtype:
        return False
    cdef int axis
    for axis in range(d.ndim):
        if src.shape[axis] != d.shape[axis]:
            return False
    cdef char *lows[2]
    cdef char *highs[2]
    memory_bounds(src, &lows[0], &highs[0])
    memory_bounds(d, &lows[1], &highs[1])
    return _apart_from_earlier(lows, highs, 1)


cdef int _generate(const ArrayDesc *d, const ArrayDesc *src, double first, fpe_idx T, fpe_idx D, bint store,
                   double scale, int n_threads) except -1:
    """The general path's kernel call for the common call (src: the array read, NULL: d itself), or (store)
    for a table."""
    cdef fpe_idx n_lead
    cdef fpe_idx group_ptr[2]
    cdef _Indices rows = _row_offsets(d, d.ndim - 2, &n_lead)
    cdef _Indices src_rows = _row_offsets(src, src.ndim - 2, &n_lead) if src != NULL else None
    cdef Positions at
    group_ptr[0], group_ptr[1] = 0, n_lead
    at.p0, at.seq_ptr, at.n_seq, at.T = &first, group_ptr, 1, T
    sinusoid_grid(d, rows.data, src, src_rows.data if src != NULL else NULL, _default_plan(D), &at, store, scale,
                  NAN, n_threads)
    return 0


cdef cnp.ndarray _build_block(fpe_idx D, int typenum, fpe_idx index):
    """Rows of positions index*SEED_GRID .. + SEED_GRID - 1: the table the
    kernel writes for them (read-only)."""
    cdef cnp.npy_intp shape[2]
    shape[0] = FPE_SEED_GRID
    shape[1] = D
    cdef cnp.ndarray block = cnp.PyArray_EMPTY(2, shape, typenum, 0)
    cdef ArrayDesc d
    describe_ndarray(block, &d)
    # Serial: a block is small, built once per SEED_GRID positions, and a team
    # that must first wake up costs more than it saves here.
    _generate(&d, NULL, <double>(index * FPE_SEED_GRID), FPE_SEED_GRID, D, True, 1.0, 1)
    block.flags.writeable = False
    return block


cdef cnp.ndarray _row_block(fpe_idx D, int typenum, fpe_idx index):
    key = _sinusoid_rows_key(D, typenum, index)
    block = _CACHE.find(key)
    if block is None:
        block = _CACHE.keep(key, _build_block(D, typenum, index))
    return <cnp.ndarray>block


cdef bint _add_cached_rows(const ArrayDesc *d, const ArrayDesc *src, double first, fpe_idx T, fpe_idx D,
                           double scale, int n_threads) except -1:
    """Add cached rows (to src, NULL: d itself, times scale, into d) when their blocks fit the cache's share
    (False: they do not)."""
    # The rows' type: x's for float32 and float64, float64 for the 16-bit types (the sum they form)
    cdef bint rows32 = d.element == FPE_FLOAT32
    cdef int typenum = cnp.NPY_FLOAT if rows32 else cnp.NPY_DOUBLE
    cdef fpe_idx row_itemsize = 4 if rows32 else 8
    cdef fpe_idx b0 = <fpe_idx>floor(first / FPE_SEED_GRID)
    cdef fpe_idx b1 = <fpe_idx>floor((first + <double>(T - 1)) / FPE_SEED_GRID)
    cdef fpe_idx n_blocks = b1 - b0 + 1, b
    if d.size > T * D and shared_rows_prepared(d.element, scale):
        # Rows shared by a batch of 16-bit sequences are prepared once a call
        # (shared_rows_prepared): generated into the tile, they cost less than
        # float64 rows read from memory (docs/performance.rst).
        return False
    if n_blocks > _MAX_BLOCKS or n_blocks * FPE_SEED_GRID * D * row_itemsize * _CACHE_SHARE > _CACHE._limit:
        return False
    held = [_row_block(D, typenum, b) for b in range(b0, b1 + 1)]  # alive while the rows are read
    cdef const char *blocks[_MAX_BLOCKS]
    for b in range(n_blocks):
        blocks[b] = <const char *>cnp.PyArray_DATA(<cnp.ndarray>held[b])
    cdef BlockedTable table
    table.blocks, table.n_blocks, table.rows_per_block = blocks, n_blocks, FPE_SEED_GRID
    table.row_stride, table.n_cols = D * row_itemsize, D
    table.element = FPE_FLOAT32 if rows32 else FPE_FLOAT64
    _add_blocked_rows(d, src, &table, <fpe_idx>first - b0 * FPE_SEED_GRID, T, scale, n_threads)
    return True


cdef int _add_blocked_rows(const ArrayDesc *d, const ArrayDesc *src, const BlockedTable *table, fpe_idx first_row,
                           fpe_idx T, double scale, int n_threads) except -1:
    """The table kernel's call for one sequence of rows: d = (src, NULL: d itself) * scale + table rows
    first_row .. first_row + T - 1 along d's axis -2, in every sequence of d."""
    cdef fpe_idx n_lead
    cdef fpe_idx seq_ptr[2]
    cdef _Indices rows = _row_offsets(d, d.ndim - 2, &n_lead)
    cdef _Indices src_rows = _row_offsets(src, src.ndim - 2, &n_lead) if src != NULL else None
    seq_ptr[0], seq_ptr[1] = 0, n_lead
    table_grid(d, rows.data, src, src_rows.data if src != NULL else NULL, table, &first_row, seq_ptr, 1, T, scale,
               n_threads)
    return 0
