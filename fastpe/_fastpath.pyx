"""The compiled fast path of add_sinusoidal's common call.

The common call is ``add_sinusoidal(x)`` or ``add_sinusoidal(x, offset=o)``
(with or without ``num_threads=n``) with every other argument at its
default, where

* x is an exact numpy.ndarray (no subclass, no tensor) of float32 or float64
  in native byte order, writeable, aligned, with ndim >= 2, size > 0 and no
  axes that may overlap (fastpe._validation.has_internal_overlap's test);
* o is a Python int or float, or a NumPy integer or float16/32/64 scalar
  (never a bool), finite, with |o| and |o + T - 1| below 2**53;
* n is None or a Python int >= 1.

That call is checked here in C. Any other call returns None and takes the
general path, which gives it its usual result or error. The common call then
goes one of two ways, with the same bits either way:

* **Cached rows**, when the positions are integers and the rows the call
  reads are small (at most ROWS_MAX_BYTES): it adds rows of the encoding kept
  in fastpe's cache, in blocks of SEED_GRID consecutive positions (block b
  holds positions b*SEED_GRID .. b*SEED_GRID + SEED_GRID - 1, in x's dtype).
  A block is built by the kernel itself, as a table, the first time a call
  needs it. Row p's bits are a pure function of p (the bits rule of
  _kernels.pyx), so a cached row is the row the kernel would generate, and
  ``x + row`` is the sum the kernel forms. On such shapes reading a row is
  cheaper than any generator, as it is for a user's own cached table.
* **Generation**: the same kernel with the same arguments as the general
  path builds (the same cached plan, the same team size from
  fastpe._runtime.resolve_threads, the same work blocks and tiles).
"""

cimport numpy as cnp
from cython.parallel cimport prange
from libc.math cimport fabs, floor, isfinite

from fastpe._cache cimport BoundedCache
from fastpe._simd cimport fpe_add_inplace_f32, fpe_add_inplace_f64, fpe_idx

import numpy as np

from . import _formulas, _kernels, _plan, _runtime, _validation

cnp.import_array()

# The general path's own functions and constants, bound once (C globals, so
# the module's public names stay its own).
cdef object _default_plan = _plan.default_sinusoid_plan
cdef object _resolve_threads = _runtime.resolve_threads
cdef object _work_blocks = _runtime.work_blocks
cdef object _tile_rows = _runtime.tile_rows
cdef object _RESEED_INTERVAL = _runtime.RESEED_INTERVAL
cdef object _TILE_DIRECT_BYTES = _runtime.TILE_DIRECT_BYTES
cdef object _TILE_SHARED_BYTES = _runtime.TILE_SHARED_BYTES
cdef object _sinusoid_grid_add_inplace = _kernels.sinusoid_grid_add_inplace
cdef object _sinusoid_grid_store = _kernels.sinusoid_grid_store
cdef double _LIMIT = float(_validation.POSITION_LIMIT)
cdef object _INT_LIMIT = int(_validation.POSITION_LIMIT)
cdef double _NO_ZERO_POSITION = float("nan")
cdef BoundedCache _CACHE = _plan.CACHE
cdef object _DEFAULT_BASE = _formulas.DEFAULT_BASE

# Positions per cached block of rows: the seed grid, so a block is one run of
# rotations from one seed.
DEF ROW_BLOCK = 256
assert ROW_BLOCK == _kernels.SEED_GRID
# A call that reads at most this many bytes of rows takes cached rows (such
# rows stay in the caches of the CPU, where a generator cannot keep up with a
# read); larger calls generate, which moves less memory.
ROWS_MAX_BYTES = 1 << 20
cdef Py_ssize_t _ROWS_MAX_BYTES = ROWS_MAX_BYTES
# Most blocks one call reads (ROWS_MAX_BYTES of rows of the narrowest width span fewer).
DEF MAX_BLOCKS = 64
# The blocks a call needs may take at most this share of the cache's limit:
# above it, calls would evict each other's blocks and generate anyway.
DEF CACHE_SHARE = 8

# (block, n_items, tile_direct, tile_shared) per (T, D, dtype number): what
# _runtime.work_blocks and tile_rows give the general path, which depends on
# nothing else. A few hundred shapes at most; emptied when full.
cdef dict _blocking = {}
cdef Py_ssize_t _BLOCKING_ENTRIES = 256

# Calls that took this path (incremented with the GIL held); read by the tests.
cdef unsigned long long _n_fast_calls = 0


# Calls that took cached rows (a subset of the above).
cdef unsigned long long _n_row_calls = 0


def fast_calls():
    """How many add_sinusoidal calls took the fast path in this process (for tests)."""
    return _n_fast_calls


def row_calls():
    """How many of them added cached rows (for tests)."""
    return _n_row_calls


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


cdef inline void _row_steps(cnp.ndarray a, cnp.npy_intp *row_stride, cnp.npy_intp *col_step) noexcept:
    """Bytes between a's rows and elements between its columns (the last two
    axes), as the general path passes them to the kernels."""
    cdef int ndim = cnp.PyArray_NDIM(a)
    row_stride[0] = cnp.PyArray_STRIDE(a, ndim - 2)
    col_step[0] = _floor_div(cnp.PyArray_STRIDE(a, ndim - 1), cnp.PyArray_ITEMSIZE(a))


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
    global _n_fast_calls, _n_row_calls
    if not (positions is None and scale is None and base is None and layout is None and out is None
            and inv_freq is None and preset is None and padding_idx is None
            and min_timescale is None and max_timescale is None):
        return None
    if type(x) is not np.ndarray:
        return None
    if num_threads is not None and (type(num_threads) is not int or num_threads < 1):
        return None  # check_num_threads's rule: the general path refuses it
    cdef cnp.ndarray arr = <cnp.ndarray>x
    cdef double first
    if not _common_array(arr) or not _offset_value(offset, &first):
        return None
    cdef int ndim = cnp.PyArray_NDIM(arr)
    cdef cnp.npy_intp T = cnp.PyArray_DIM(arr, ndim - 2), D = cnp.PyArray_DIM(arr, ndim - 1)
    # One rounded addition, as the general path's check_position_range forms it.
    if fabs(first + <double>(T - 1)) >= _LIMIT:
        return None
    _n_fast_calls += 1
    if first == floor(first) and _add_cached_rows(arr, first, T, D, num_threads):
        _n_row_calls += 1
    else:
        _generate(arr, first, T, D, False, num_threads)
    return x


cdef void _generate(cnp.ndarray arr, double first, cnp.npy_intp T, cnp.npy_intp D, bint store,
                    object num_threads) except *:
    """The general path's kernel call for the common call, or (store) for a table."""
    plan = _default_plan(D)
    n_threads = _resolve_threads(num_threads, cnp.PyArray_SIZE(arr))
    blocking = _blocking_of(arr, T, D, plan)
    cdef cnp.npy_intp one = 1, two = 2
    cdef cnp.ndarray keys = cnp.PyArray_EMPTY(1, &one, cnp.NPY_DOUBLE, 0)
    (<double *>cnp.PyArray_DATA(keys))[0] = first
    cdef cnp.ndarray rows = _lead_row_offsets(arr)
    cdef cnp.ndarray group_ptr = cnp.PyArray_EMPTY(1, &two, cnp.NPY_INTP, 0)
    (<cnp.npy_intp *>cnp.PyArray_DATA(group_ptr))[0] = 0
    (<cnp.npy_intp *>cnp.PyArray_DATA(group_ptr))[1] = cnp.PyArray_DIM(rows, 0)
    cdef cnp.npy_intp row_stride, col_step
    _row_steps(arr, &row_stride, &col_step)
    if store:
        _sinusoid_grid_store(
            arr, rows, row_stride, col_step, plan, keys, group_ptr, T, blocking[0], blocking[2], blocking[3],
            _NO_ZERO_POSITION, min(n_threads, blocking[1]),
        )
    else:
        _sinusoid_grid_add_inplace(
            arr, rows, row_stride, col_step, 1.0, plan, keys, group_ptr, T, blocking[0], blocking[2],
            blocking[3], _NO_ZERO_POSITION, min(n_threads, blocking[1]),
        )


# ------------------------------------------------------------ cached rows

cdef cnp.ndarray _build_block(cnp.npy_intp D, int typenum, cnp.npy_intp index):
    """Rows of positions index*ROW_BLOCK .. + ROW_BLOCK - 1: the table the
    kernel writes for them (read-only)."""
    cdef cnp.npy_intp shape[2]
    shape[0] = ROW_BLOCK
    shape[1] = D
    cdef cnp.ndarray block = cnp.PyArray_EMPTY(2, shape, typenum, 0)
    # Serial: a block is small, built once per ROW_BLOCK positions, and a team
    # that must first wake up costs more than it saves here.
    _generate(block, <double>(index * ROW_BLOCK), ROW_BLOCK, D, True, 1)
    block.flags.writeable = False
    return block


cdef cnp.ndarray _row_block(cnp.npy_intp D, int typenum, cnp.npy_intp index):
    # Keyed like the default plan (interleaved, base 10000) plus dtype and block.
    key = ("rows", "interleaved", D, _DEFAULT_BASE, typenum, index)
    block = _CACHE.find(key)
    if block is None:
        block = _CACHE.keep(key, _build_block(D, typenum, index))
    return <cnp.ndarray>block


ctypedef fused native:
    float
    double


cdef void _add_rows(native *x, const cnp.npy_intp *lead, cnp.npy_intp n_lead, cnp.npy_intp T,
                    cnp.npy_intp D, cnp.npy_intp row_stride, cnp.npy_intp col_step,
                    native **blocks, cnp.npy_intp first_row, int n_threads) noexcept nogil:
    """x[r, t, :] += row first_row + t of the blocks (ROW_BLOCK rows each), for
    every lead row r (byte offsets lead) and t < T."""
    cdef cnp.npy_intp i
    if n_threads == 1:
        for i in range(n_lead * T):
            _add_row(x, lead, T, D, row_stride, col_step, blocks, first_row, i)
    else:
        for i in prange(n_lead * T, schedule="static", num_threads=n_threads):
            _add_row(x, lead, T, D, row_stride, col_step, blocks, first_row, i)


cdef inline void _add_row(native *x, const cnp.npy_intp *lead, cnp.npy_intp T, cnp.npy_intp D,
                          cnp.npy_intp row_stride, cnp.npy_intp col_step, native **blocks,
                          cnp.npy_intp first_row, cnp.npy_intp i) noexcept nogil:
    cdef cnp.npy_intp r = i // T, t = i - r * T, j = first_row + t
    cdef native *dst = <native *>(<char *>x + lead[r] + t * row_stride)
    cdef native *row = blocks[j // ROW_BLOCK] + (j % ROW_BLOCK) * D
    if native is float:
        fpe_add_inplace_f32(dst, col_step, row, 1.0, D)
    else:
        fpe_add_inplace_f64(dst, col_step, row, 1.0, D)


cdef bint _add_cached_rows(cnp.ndarray arr, double first, cnp.npy_intp T, cnp.npy_intp D,
                           object num_threads) except -1:
    """Add cached rows when the call is small enough for them (False: it is not)."""
    cdef int typenum = cnp.PyArray_TYPE(arr)
    cdef cnp.npy_intp itemsize = cnp.PyArray_ITEMSIZE(arr)
    if T * D * itemsize > _ROWS_MAX_BYTES:
        return False
    cdef cnp.npy_intp b0 = <cnp.npy_intp>floor(first / ROW_BLOCK)
    cdef cnp.npy_intp b1 = <cnp.npy_intp>floor((first + <double>(T - 1)) / ROW_BLOCK)
    cdef cnp.npy_intp n_blocks = b1 - b0 + 1, b
    if n_blocks > MAX_BLOCKS or n_blocks * ROW_BLOCK * D * itemsize * CACHE_SHARE > _CACHE._limit:
        return False
    held = [_row_block(D, typenum, b) for b in range(b0, b1 + 1)]  # alive while the rows are read
    cdef void *blocks[MAX_BLOCKS]
    for b in range(n_blocks):
        blocks[b] = cnp.PyArray_DATA(<cnp.ndarray>held[b])
    cdef cnp.ndarray lead = _lead_row_offsets(arr)
    cdef cnp.npy_intp n_lead = cnp.PyArray_DIM(lead, 0)
    cdef cnp.npy_intp row_stride, col_step
    _row_steps(arr, &row_stride, &col_step)
    cdef cnp.npy_intp first_row = <cnp.npy_intp>first - b0 * ROW_BLOCK
    cdef int n_threads = _resolve_threads(num_threads, cnp.PyArray_SIZE(arr))
    cdef const cnp.npy_intp *lead_ = <const cnp.npy_intp *>cnp.PyArray_DATA(lead)
    if typenum == cnp.NPY_FLOAT:
        with nogil:
            _add_rows(<float *>cnp.PyArray_DATA(arr), lead_, n_lead, T, D, row_stride, col_step,
                      <float **>blocks, first_row, n_threads)
    else:
        with nogil:
            _add_rows(<double *>cnp.PyArray_DATA(arr), lead_, n_lead, T, D, row_stride, col_step,
                      <double **>blocks, first_row, n_threads)
    return True
