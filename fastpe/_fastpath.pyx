"""The compiled fast path of add_sinusoidal's common call.

The common call is ``add_sinusoidal(x)`` or ``add_sinusoidal(x, offset=o)``
with every other argument at its default, where

* x is an exact numpy.ndarray (no subclass, no tensor) of float32 or float64
  in native byte order, writeable, aligned, with ndim >= 2, size > 0 and no
  axes that may overlap (fastpe._validation.has_internal_overlap's test);
* o is a Python int or float, or a NumPy integer or float16/32/64 scalar
  (never a bool), finite, with |o| and |o + T - 1| below 2**53.

That call is checked here in C and handed to the same kernel with the same
arguments as the general path builds (the same cached plan, the same team
size from fastpe._runtime.resolve_threads, the same work blocks and tiles),
so its result has the same bits. Any other call returns None and takes the
general path, which gives it its usual result or error.
"""

cimport numpy as cnp
from libc.math cimport fabs, isfinite

import numpy as np

from . import _kernels, _plan, _runtime, _validation

cnp.import_array()

# The general path's own functions and constants, bound once (C globals, so
# the module's public names stay the two below).
cdef object _default_plan = _plan.default_sinusoid_plan
cdef object _resolve_threads = _runtime.resolve_threads
cdef object _work_blocks = _runtime.work_blocks
cdef object _tile_rows = _runtime.tile_rows
cdef object _RESEED_INTERVAL = _runtime.RESEED_INTERVAL
cdef object _TILE_DIRECT_BYTES = _runtime.TILE_DIRECT_BYTES
cdef object _TILE_SHARED_BYTES = _runtime.TILE_SHARED_BYTES
cdef object _sinusoid_grid_add_inplace = _kernels.sinusoid_grid_add_inplace
cdef double _LIMIT = float(_validation.POSITION_LIMIT)
cdef object _INT_LIMIT = int(_validation.POSITION_LIMIT)
cdef double _NO_ZERO_POSITION = float("nan")

# (block, n_items, tile_direct, tile_shared) per (T, D, dtype number): what
# _runtime.work_blocks and tile_rows give the general path, which depends on
# nothing else. A few hundred shapes at most; emptied when full.
cdef dict _blocking = {}
cdef Py_ssize_t _BLOCKING_ENTRIES = 256

# Calls that took this path (incremented with the GIL held); read by the tests.
cdef unsigned long long _n_fast_calls = 0


def fast_calls():
    """How many add_sinusoidal calls took the fast path in this process (for tests)."""
    return _n_fast_calls


cdef bint _offset_value(object offset, double *value):
    """offset as the float64 the general path makes of it, when it is a scalar the fast path takes."""
    cdef object kind = type(offset)
    if kind is float or kind is np.float64 or kind is np.float32 or kind is np.float16:
        value[0] = float(offset)
    elif kind is int or isinstance(offset, np.integer):
        # Integers are compared as integers before rounding, as the general path does.
        if abs(int(offset)) >= _INT_LIMIT:
            return False
        value[0] = float(offset)
    else:
        return False
    return isfinite(value[0]) and fabs(value[0]) < _LIMIT


cdef bint _may_overlap(cnp.ndarray a):
    """fastpe._validation.has_internal_overlap's test: sorted by |stride|, each
    axis must step over the whole extent of the axes inside it."""
    if cnp.PyArray_IS_C_CONTIGUOUS(a) or cnp.PyArray_IS_F_CONTIGUOUS(a):
        return False
    cdef int ndim = cnp.PyArray_NDIM(a), n = 0, i, j
    cdef cnp.npy_intp sizes[64]
    cdef cnp.npy_intp strides[64]
    cdef cnp.npy_intp size, stride, extent = cnp.PyArray_ITEMSIZE(a)
    for i in range(ndim):
        size = cnp.PyArray_DIM(a, i)
        if size <= 1:
            continue
        stride = cnp.PyArray_STRIDE(a, i)
        if stride < 0:
            stride = -stride
        j = n
        while j > 0 and strides[j - 1] > stride:  # insertion sort, stable like sorted()
            strides[j] = strides[j - 1]
            sizes[j] = sizes[j - 1]
            j -= 1
        strides[j] = stride
        sizes[j] = size
        n += 1
    for i in range(n):
        if strides[i] < extent:
            return True
        extent = strides[i] * (sizes[i] - 1) + extent
    return False


cdef bint _common_array(cnp.ndarray a):
    cdef int typenum = cnp.PyArray_TYPE(a)
    if typenum != cnp.NPY_FLOAT and typenum != cnp.NPY_DOUBLE:
        return False
    if not (cnp.PyArray_ISNOTSWAPPED(a) and cnp.PyArray_ISWRITEABLE(a) and cnp.PyArray_ISALIGNED(a)):
        return False
    if cnp.PyArray_NDIM(a) < 2 or cnp.PyArray_SIZE(a) == 0:
        return False
    return not _may_overlap(a)


cdef cnp.ndarray _lead_row_offsets(cnp.ndarray a):
    """Byte offset of every row over the axes before the last two, in C order:
    the values fastpe._runtime.lead_row_offsets gives."""
    cdef int n_lead = cnp.PyArray_NDIM(a) - 2, axis
    cdef cnp.npy_intp n_rows = 1, r, offset = 0
    cdef cnp.npy_intp index[64]
    for axis in range(n_lead):
        n_rows *= cnp.PyArray_DIM(a, axis)
        index[axis] = 0
    cdef cnp.ndarray rows = cnp.PyArray_EMPTY(1, &n_rows, cnp.NPY_INTP, 0)
    cdef cnp.npy_intp *out = <cnp.npy_intp *>cnp.PyArray_DATA(rows)
    for r in range(n_rows):
        out[r] = offset
        axis = n_lead - 1
        while axis >= 0:  # the next index in C order, carrying into outer axes
            index[axis] += 1
            offset += cnp.PyArray_STRIDE(a, axis)
            if index[axis] < cnp.PyArray_DIM(a, axis):
                break
            offset -= index[axis] * cnp.PyArray_STRIDE(a, axis)
            index[axis] = 0
            axis -= 1
    return rows


cdef inline cnp.npy_intp _floor_div(cnp.npy_intp a, cnp.npy_intp b):
    """Python's a // b (the general path divides strides with it)."""
    cdef cnp.npy_intp q = a // b
    if (a % b != 0) and ((a < 0) != (b < 0)):
        q -= 1
    return q


cdef tuple _blocking_of(cnp.ndarray arr, cnp.npy_intp T, cnp.npy_intp D, object plan):
    key = (T, D, cnp.PyArray_TYPE(arr))
    found = _blocking.get(key)
    if found is not None:
        return <tuple>found
    block, n_items = _work_blocks(T, 1, _RESEED_INTERVAL)
    found = (block, n_items, _tile_rows(_TILE_DIRECT_BYTES, plan.n_cols, arr, block),
             _tile_rows(_TILE_SHARED_BYTES, plan.n_cols, arr, block))
    if len(_blocking) >= _BLOCKING_ENTRIES:
        _blocking.clear()
    _blocking[key] = found
    return <tuple>found


def add_sinusoidal_common(x, offset, positions, scale, base, layout, out, num_threads, inv_freq, preset,
                          padding_idx, min_timescale, max_timescale):
    """add_sinusoidal(x, offset=offset) when the call is the common one
    (see the module docstring): x, with the encoding added. None otherwise."""
    global _n_fast_calls
    if not (positions is None and scale is None and base is None and layout is None and out is None
            and num_threads is None and inv_freq is None and preset is None and padding_idx is None
            and min_timescale is None and max_timescale is None):
        return None
    if type(x) is not np.ndarray:
        return None
    cdef cnp.ndarray arr = <cnp.ndarray>x
    cdef double first
    if not _common_array(arr) or not _offset_value(offset, &first):
        return None
    cdef int ndim = cnp.PyArray_NDIM(arr)
    cdef cnp.npy_intp T = cnp.PyArray_DIM(arr, ndim - 2), D = cnp.PyArray_DIM(arr, ndim - 1)
    # One rounded addition, as the general path's check_position_range forms it.
    if fabs(first + <double>(T - 1)) >= _LIMIT:
        return None

    plan = _default_plan(D)
    n_threads = _resolve_threads(None, cnp.PyArray_SIZE(arr))
    blocking = _blocking_of(arr, T, D, plan)
    cdef cnp.npy_intp one = 1, two = 2
    cdef cnp.ndarray keys = cnp.PyArray_EMPTY(1, &one, cnp.NPY_DOUBLE, 0)
    (<double *>cnp.PyArray_DATA(keys))[0] = first
    cdef cnp.ndarray rows = _lead_row_offsets(arr)
    cdef cnp.ndarray group_ptr = cnp.PyArray_EMPTY(1, &two, cnp.NPY_INTP, 0)
    (<cnp.npy_intp *>cnp.PyArray_DATA(group_ptr))[0] = 0
    (<cnp.npy_intp *>cnp.PyArray_DATA(group_ptr))[1] = cnp.PyArray_DIM(rows, 0)
    cdef cnp.npy_intp row_stride = cnp.PyArray_STRIDE(arr, ndim - 2)
    cdef cnp.npy_intp col_step = _floor_div(cnp.PyArray_STRIDE(arr, ndim - 1), cnp.PyArray_ITEMSIZE(arr))
    _n_fast_calls += 1
    _sinusoid_grid_add_inplace(
        arr, rows, row_stride, col_step, 1.0, plan, keys, group_ptr, T, blocking[0], blocking[2], blocking[3],
        _NO_ZERO_POSITION, min(n_threads, blocking[1]),
    )
    return x
