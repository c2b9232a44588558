# Part of fastpe/_frontdoor.pyx: add_table's front door.
#
# The common call is ``add_table(x, table, offset=o)`` (with or without
# ``num_threads=n``, ``scale=s`` and ``out=y``) with no positions, where x
# (and y: x itself, or an array of x's dtype and shape sharing no memory
# with x, _intake_apart_out) is an array _intake_ndarray takes, table an
# exact 2-D numpy.ndarray of native, aligned float32 or float64 with unit
# column stride, D columns (x's last axis) and memory apart from the array
# written, o an integer (a Python int, a NumPy integer, or a 0-d integer
# array) with 0 <= o and o + T - 1 < the table's rows, and n a value the
# num_threads declaration accepts as it is, and s a number _scale_value
# takes. It is served by the kernel the
# general path calls (table_grid), with the table as one block of rows: the
# same bits. Anything else goes to the general path, which gives its own
# result or error (a table it must copy, 16-bit tables, rows out of range,
# a 0-d array scale).

# Calls this front door served, for arrays and for fastpe.torch's tensors (incremented with the GIL held);
# read by the tests.
cdef unsigned long long _n_table_calls = 0


def table_calls():
    """How many add_table calls its front door served in this process (for tests)."""
    return _n_table_calls


# add_sinusoidal and add_table calls served on fastpe.torch's eager route (for tests)
cdef unsigned long long _n_tensor_add_calls = 0


def tensor_add_calls():
    """How many add_sinusoidal and add_table calls on tensors fastpe.torch's eager route served (for tests)."""
    return _n_tensor_add_calls


def add_table(x, table, offset, positions, scale, out, num_threads):
    """add_table's arguments, as the caller gave them: x (or out) with the
    table's rows added when the call is the common one (see above), else None.
    Plain CPU tensors x and table, x in place, take fastpe.torch's eager route
    where it is open to a NumPy-facing function (_torch_route_open)."""
    if out is None and _plain_tensor(x):
        return _table_on_tensors(x, table, False, offset, positions, scale, num_threads, True)
    cdef fpe_idx first_row
    cdef double scale_value
    if not _common_table_call(offset, positions, scale, num_threads, &first_row, &scale_value):
        return None
    cdef ArrayDesc d, src, rows
    cdef bint apart = out is not None and out is not x
    if apart:
        if not _intake_apart_out(x, out, &src, &d):
            return None
    elif not _intake_ndarray(x, &d, _X_MIN_NDIM, True):
        return None
    if not (_intake_table_ndarray(table, &rows) and _table_serves(&rows, &d, first_row)):
        return None
    _serve_table(&d, &src if apart else NULL, &rows, first_row, scale_value, num_threads)
    return out if apart else x


def add_table_tensors_eagerly(x, table, bint into_new, offset, positions, scale, num_threads):
    """add_table's common call on CPU tensors x and table, for fastpe.torch's
    eager route once it knows Dynamo is not tracing: served only when
    _torch_route_open lets the call skip the dispatcher, in place (x
    returned, its version counter bumped) or (into_new) into a new tensor
    (torch.empty_like(x), returned). None where another way must serve the
    call (nothing written)."""
    return _table_on_tensors(x, table, into_new, offset, positions, scale, num_threads, False)


cdef object _table_on_tensors(x, table, bint into_new, offset, positions, scale, num_threads, bint numpy_facing):
    """add_table_tensors_eagerly, for fastpe.torch's functions or (numpy_facing) fastpe.add_table's."""
    if not _torch_route_open((x, table), offset, () if into_new else (x,), numpy_facing):
        return None
    offset = _offset_of_tensor(offset)
    cdef fpe_idx first_row
    cdef double scale_value
    if offset is None or not _common_table_call(offset, positions, scale, num_threads, &first_row, &scale_value):
        return None
    cdef ArrayDesc d, src, rows
    cdef ArrayDesc *x_desc = &src if into_new else &d
    if not _intake_tensor(x, x_desc, _X_MIN_NDIM, True) or not _intake_tensor(table, &rows, 2, False):
        return None
    if rows.ndim != 2 or not _table_serves(&rows, x_desc, first_row):
        return None
    global _n_tensor_add_calls
    made = _new_tensor_like(x, &src, &d) if into_new else None
    _n_tensor_add_calls += 1
    _serve_table(&d, &src if into_new else NULL, &rows, first_row, scale_value, num_threads)
    return made if into_new else _bump_written(x, (x,), False)


cdef bint _common_table_call(object offset, object positions, object scale, object num_threads,
                             fpe_idx *first_row, double *scale_value) except -1:
    """The arguments of the common call other than the arrays (see above), the offset read into first_row
    and the scale into scale_value."""
    if positions is not None or not accepts_int(num_threads, &_NUM_THREADS):
        return False
    return _table_row(offset, first_row) and _scale_value(scale, scale_value)


cdef int _serve_table(const ArrayDesc *d, const ArrayDesc *src, const ArrayDesc *rows, fpe_idx first_row,
                      double scale, object num_threads) except -1:
    """rows first_row .. first_row + T - 1 of the table `rows` (one block) added (to src, NULL: d itself, times
    scale) into d."""
    global _n_table_calls
    _n_table_calls += 1
    cdef BlockedTable bt
    cdef const char *block = rows.data
    bt.blocks, bt.n_blocks, bt.rows_per_block = &block, 1, rows.shape[0]
    bt.row_stride, bt.n_cols, bt.element = rows.strides[0], rows.shape[1], rows.element
    _add_blocked_rows(d, src, &bt, first_row, d.shape[d.ndim - 2], scale,
                      _runtime.resolve_threads(num_threads, d.size))
    return 0


cdef bint _table_row(object offset, fpe_idx *row) except -1:
    """The integer offset a front door takes (a Python int, a NumPy integer, or a 0-d integer array, never a
    bool or bfloat16 bits), within fpe_idx, as row."""
    cdef object kind = type(offset)
    if kind is cnp.ndarray:
        if cnp.PyArray_NDIM(<cnp.ndarray>offset) != 0 or not cnp.PyArray_ISINTEGER(<cnp.ndarray>offset) or \
                _views.is_bfloat16(offset.dtype):
            return False
    elif not (kind is int or isinstance(offset, np.integer)):
        return False
    value = int(offset)
    if abs(value) >= _INT_LIMIT:
        return False
    row[0] = <fpe_idx>value
    return True


cdef bint _intake_table_ndarray(object table, ArrayDesc *t) except -1:
    """Describe table into t when it is an exact 2-D ndarray of native, aligned float32 or float64."""
    if type(table) is not cnp.ndarray:
        return False
    cdef cnp.ndarray a = <cnp.ndarray>table
    cdef int typenum = cnp.PyArray_TYPE(a)
    if cnp.PyArray_NDIM(a) != 2 or (typenum != cnp.NPY_FLOAT and typenum != cnp.NPY_DOUBLE):
        return False
    if not (cnp.PyArray_ISNOTSWAPPED(a) and cnp.PyArray_ISALIGNED(a)):
        return False
    describe_ndarray(a, t)
    return True


cdef bint _table_serves(const ArrayDesc *t, const ArrayDesc *written, fpe_idx first_row) noexcept:
    """The table t (2-D, float32 or float64) is one the front door reads as it is for `written`, at rows
    first_row .. first_row + T - 1: written's last axis as its columns, unit column stride, those rows
    within it, and no memory shared with written (the general path reads such a table from a copy)."""
    if t.shape[1] != written.shape[written.ndim - 1] or t.strides[1] != t.itemsize:
        return False
    if first_row < 0 or first_row + written.shape[written.ndim - 2] > t.shape[0]:
        return False
    cdef char *lows[2]
    cdef char *highs[2]
    memory_bounds(written, &lows[0], &highs[0])
    memory_bounds(t, &lows[1], &highs[1])
    return _apart_from_earlier(lows, highs, 1)
