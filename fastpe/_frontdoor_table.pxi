# Part of fastpe/_frontdoor.pyx: add_table's front door.
#
# The common call is ``add_table(x, table, offset=o)`` (with or without
# ``num_threads=n`` and ``out=y``) with no positions and no scale, where x
# (and y: x itself, or an array of x's dtype and shape sharing no memory
# with x, _intake_apart_out) is an array _intake_ndarray takes, table an
# exact 2-D numpy.ndarray of native, aligned float32 or float64 with unit
# column stride, D columns (x's last axis) and memory apart from the array
# written, o an integer (a Python int, a NumPy integer, or a 0-d integer
# array) with 0 <= o and o + T - 1 < the table's rows, and n a value the
# num_threads declaration accepts as it is. It is served by the kernel the
# general path calls (table_grid), with the table as one block of rows: the
# same bits. Anything else goes to the general path, which gives its own
# result or error (a table it must copy, 16-bit tables, rows out of range).

# Calls this front door served (incremented with the GIL held); read by the tests.
cdef unsigned long long _n_table_calls = 0


def table_calls():
    """How many add_table calls its front door served in this process (for tests)."""
    return _n_table_calls


def add_table(x, table, offset, positions, scale, out, num_threads):
    """add_table's arguments, as the caller gave them: x (or out) with the
    table's rows added when the call is the common one (see above), else None."""
    global _n_table_calls
    if positions is not None or scale is not None or not accepts_int(num_threads, &_NUM_THREADS):
        return None
    cdef fpe_idx first_row
    if not _table_row(offset, &first_row):
        return None
    cdef ArrayDesc d, src, rows_desc
    cdef bint apart = out is not None and out is not x
    if apart:
        if not _intake_apart_out(x, out, &src, &d):
            return None
    elif not _intake_ndarray(x, &d, _X_MIN_NDIM, True):
        return None
    if not _intake_table(table, &rows_desc, &d):
        return None
    cdef fpe_idx T = d.shape[d.ndim - 2]
    if first_row < 0 or first_row + T > rows_desc.shape[0]:
        return None
    _n_table_calls += 1
    cdef BlockedTable bt
    cdef const char *block = rows_desc.data
    bt.blocks, bt.n_blocks, bt.rows_per_block = &block, 1, rows_desc.shape[0]
    bt.row_stride, bt.n_cols, bt.element = rows_desc.strides[0], rows_desc.shape[1], rows_desc.element
    _add_blocked_rows(&d, &src if apart else NULL, &bt, first_row, T, _runtime.resolve_threads(num_threads, d.size))
    return out if apart else x


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


cdef bint _intake_table(object table, ArrayDesc *t, const ArrayDesc *written) except -1:
    """Describe table into t when it is one the front door reads as it is: an
    exact 2-D ndarray of native, aligned float32 or float64 with unit column
    stride and written's last axis as its columns, sharing no memory with
    written (the general path reads such a table from a copy)."""
    if type(table) is not cnp.ndarray:
        return False
    cdef cnp.ndarray a = <cnp.ndarray>table
    cdef int typenum = cnp.PyArray_TYPE(a)
    if cnp.PyArray_NDIM(a) != 2 or (typenum != cnp.NPY_FLOAT and typenum != cnp.NPY_DOUBLE):
        return False
    if not (cnp.PyArray_ISNOTSWAPPED(a) and cnp.PyArray_ISALIGNED(a)):
        return False
    describe_ndarray(a, t)
    if t.shape[1] != written.shape[written.ndim - 1] or t.strides[1] != t.itemsize:
        return False
    cdef char *lows[2]
    cdef char *highs[2]
    memory_bounds(written, &lows[0], &highs[0])
    memory_bounds(t, &lows[1], &highs[1])
    return t.size == 0 or _apart_from_earlier(lows, highs, 1)
