"""apply_rotary's common call in compiled code, and the cached frequencies
and cos/sin rows that it shares with the general path.

The cache (fastpe._plan.CACHE, bounded and counted in fastpe.cache_info())
keeps, per (head width, rotary_dim, base, scaling contents[, seq_len key];
dynamic past its max_position_embeddings, whose frequencies change with
every length, is not kept),
the scaled frequencies with their attention factor (a ScaledFrequencies of
fastpe._validation.rotary), and, per (frequencies, attention factor, block),
the float64 cos and sin rows of ROWS_PER_BLOCK consecutive positions. A
scaling dict is keyed by a frozen copy of its contents, a config by the
values the scaling reader takes from it: a scaling changed after a call is a
new key. A scaling that cannot be frozen (values of unknown types) is not
cached.

The common call is ``apply_rotary(*arrays, offset=o)``, optionally with
`base`, `layout`, `rotary_dim` and `scaling`, where

* every array is an exact numpy.ndarray of one dtype, float32 or float64,
  native byte order, writeable, aligned, ndim >= 2, size > 0, without axes
  that may overlap (fastpe._validation.has_internal_overlap's test), with
  one sequence length (axis -2), and the arrays' memory bounds are apart;
* o is a scalar as add_sinusoidal's fast path takes it, with an integral
  value, and o .. o + T - 1 lie in one block of ROWS_PER_BLOCK positions;
* `base` a Python float or int, `layout` "half" or "interleaved",
  `rotary_dim` None or an int, `num_threads` None or an int, `seq_axis` -2,
  and `positions`, `inv_freq`, `out` None;
* the scaling's frequencies are cached, without an unused-keys warning
  (``dynamic`` past its max_position_embeddings is not: its frequencies
  change with every length).

It rotates the rows with the general path's row function (_simd.h) and
cos/sin rows that the general path's own table function made (cos_sin_table,
same positions and frequencies: the same bits), on the team size of
fastpe._runtime.resolve_threads. Any other call returns None and takes the
general path, with its usual result, warning or error.
"""

cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport floor

from fastpe._cache cimport BoundedCache
from fastpe._fastpath cimport _common_array, _offset_value
from fastpe._simd cimport fpe_cols, fpe_idx, fpe_rotate_inplace_f32, fpe_rotate_inplace_f64

import numpy as np

from . import _formulas, _kernels, _plan, _runtime, _sinusoid, _validation
from ._validation import rotary as _checks

cnp.import_array()

# One block of cos/sin rows is one canonical run of the sinusoid kernel
# (SEED_GRID positions from a multiple of it): a block costs about what its
# last row alone would.
ROWS_PER_BLOCK = _kernels.SEED_GRID
cdef double _BLOCK = ROWS_PER_BLOCK
cdef Py_ssize_t _ROWS = ROWS_PER_BLOCK
# The general path's functions, bound once (C globals: the module's public
# names stay its own).
cdef object _scaled_frequencies = _checks.scaled_frequencies
cdef object _scaled_frequencies_of = _checks.scaled_frequencies_of
cdef object _scaling_parameters = _checks.scaling_parameters
cdef object _seq_len_key = _checks.seq_len_key
cdef object _warn_unused_keys = _checks.warn_unused_keys
cdef double _LIMIT = float(_validation.POSITION_LIMIT)
cdef BoundedCache _CACHE = _plan.CACHE
cdef object _resolve_threads = _runtime.resolve_threads
cdef object _concat_plan = _plan.concat_plan
cdef object _new_array = _formulas.new_array
# Nesting deeper than this in a scaling is not frozen (so not cached).
cdef int _MAX_DEPTH = 8

cdef unsigned long long _n_fast_calls = 0


def fast_calls():
    """How many apply_rotary calls took the fast path in this process (for tests)."""
    return _n_fast_calls


# ------------------------------------------------------------ cos/sin rows

def cos_sin_table(positions, freq, freq_lo, attention_factor, num_threads=None):
    """Float64 (cos, sin) tables, one row per position (checked, 1-D), of the
    exact frequencies freq + freq_lo, by the sinusoid kernel (the grid kernel
    when the positions are consecutive), times the attention factor. The rows
    do not depend on num_threads (nor on the kernel)."""
    half = freq.shape[0]
    n = positions.shape[0]
    enc = _new_array((n, 2 * half), np.float64, "the rotary cos/sin rows (positions, rotary_dim)")
    if enc.size:
        plan = _concat_plan(freq, freq_lo)
        if n > 1 and positions[n - 1] - positions[0] == n - 1 and np.all(np.diff(positions) == 1.0):
            _sinusoid.store_table(enc, plan, float(positions[0]), num_threads)
        else:
            _sinusoid.store_encodings(enc, plan, positions, num_threads)
    if attention_factor != 1.0:
        enc *= attention_factor
    return enc[:, half:], enc[:, :half]


cdef class _CosSinRows:
    """cos_sin_table of the positions first .. first + ROWS_PER_BLOCK - 1 (read-only)."""

    cdef readonly cnp.ndarray cos
    cdef readonly cnp.ndarray sin
    cdef readonly object nbytes

    def __init__(self, double first, freq):
        # Serial: a team's start costs more than these ~50 us of work on a loaded machine.
        self.cos, self.sin = cos_sin_table(first + np.arange(ROWS_PER_BLOCK, dtype=np.float64), freq.freq,
                                           freq.freq_lo, freq.attention_factor, num_threads=1)
        if self.cos.strides[0] != self.sin.strides[0]:
            raise AssertionError("cos_sin_table's tables must share one row stride (the rotate loop's rule)")
        self.cos.flags.writeable = False
        self.sin.flags.writeable = False
        self.nbytes = self.cos.nbytes + self.sin.nbytes


cdef _CosSinRows _cos_sin_rows(object freq, double block):
    key = ("rotary-cos-sin", freq.freq_bytes, freq.attention_factor, block)
    rows = _CACHE.find(key)
    if rows is None:
        rows = _CACHE.keep(key, _CosSinRows(block * _BLOCK, freq))
    return <_CosSinRows>rows


# ------------------------------------------------------------ frequencies

cdef bint _freeze_into(list out, object value, int depth):
    """Append a flat, hashable record of a scaling value to out: each scalar
    as (type, value), each container as (type, length) and then its items,
    so that records are equal only for equal values of the same types.
    False for a value of any other type (or nested too deep)."""
    if depth > _MAX_DEPTH:
        return False
    kind = type(value)
    if value is None or kind is bool or kind is int or kind is float or kind is str \
            or isinstance(value, (np.number, np.bool_)):
        out.append(kind)
        out.append(value)
        return True
    if kind is list or kind is tuple:
        out.append(kind)
        out.append(len(value))
        for item in value:
            if not _freeze_into(out, item, depth + 1):
                return False
        return True
    if kind is dict:
        out.append(kind)
        out.append(len(value))
        for key, item in (<dict>value).items():
            if not _freeze_into(out, key, depth + 1) or not _freeze_into(out, item, depth + 1):
                return False
        return True
    if kind is np.ndarray and not value.dtype.hasobject:
        out.append(kind)
        out.append(value.dtype.str)
        out.append(value.shape)
        out.append(value.tobytes())
        return True
    return False


cdef object _frozen(object value):
    """A hashable copy of a scaling value (see _freeze_into), or None."""
    cdef list out = []
    return tuple(out) if _freeze_into(out, value, 0) else None


def scaling_key(scaling):
    """The cache key of a scaling argument: its contents, frozen (a dict), or
    what the scaling reader takes from it (a config, another mapping); None
    when it cannot be frozen. Raises what scaling_parameters raises."""
    if scaling is None:
        return ("none",)
    if type(scaling) is dict:
        frozen = _frozen(scaling)
        return None if frozen is None else ("dict", frozen)
    params, head_dim, ignore = _scaling_parameters(scaling)
    frozen = _frozen(params)
    return None if frozen is None else ("read", frozen, head_dim, ignore)


cdef object _cached_frequencies(object width, object rotary_dim, double base, object scaling, object skey,
                                object seq_len, bint per_length_too=True):
    """The ScaledFrequencies of the cache for a keyed scaling (built on a miss,
    which raises what the scaling's checks raise). Frequencies of one length
    alone (_per_length) are built only with per_length_too; without, the
    cache's entry for the scaling comes back, which says so."""
    key = ("rotary-frequencies", width, rotary_dim, base, skey)
    built = None  # this call's, once built
    freq = _CACHE.find(key)
    if freq is None:
        built = _scaled_frequencies_of(width, rotary_dim, base, scaling, seq_len)
        freq = _CACHE.keep(key, built)
    if freq.seq_dependence is None:
        return freq
    # A new base at every length is not worth an entry each; longrope, and
    # dynamic up to its max_position_embeddings, get one per seq_len key.
    per_length = _per_length(freq, seq_len)
    if per_length and not per_length_too:
        return freq
    if not per_length:
        key = key + (_seq_len_key(freq.seq_dependence, seq_len),)
        freq = _CACHE.find(key)
        if freq is not None:
            return freq
    if built is None:
        built = _scaled_frequencies_of(width, rotary_dim, base, scaling, seq_len)
    return built if per_length else _CACHE.keep(key, built)


cdef bint _per_length(object freq, object seq_len):
    """dynamic past max_position_embeddings: frequencies of this length only."""
    dependence = freq.seq_dependence
    return dependence is not None and dependence[0] == "dynamic" and seq_len is not None and seq_len > dependence[1]


def cached_scaled_frequencies(width, rotary_dim, base, scaling, inv_freq, seq_len):
    """fastpe._validation.rotary.scaled_frequencies through the cache (the
    frequencies= of rotary_request): the same results, warnings and errors."""
    if inv_freq is None:
        skey = scaling_key(scaling)
        if skey is not None:
            freq = _cached_frequencies(width, rotary_dim, base, scaling, skey, seq_len)
            _warn_unused_keys(freq.warning)
            return freq.as_tuple()
    return _scaled_frequencies(width, rotary_dim, base, scaling, inv_freq, seq_len)


# ------------------------------------------------------------ the common call

cdef inline void _rotate_row(floating *dummy, char *data, int ndim, const cnp.npy_intp *shape,
                             const cnp.npy_intp *strides, cnp.npy_intp row, const char *cos0, const char *sin0,
                             cnp.npy_intp table_rs, fpe_cols d, fpe_idx n_pairs) noexcept nogil:
    """Rotate vector row `row` (C order over the axes before the last) by the
    table row of its position (its index along axis -2)."""
    cdef cnp.npy_intp offset = 0, index, t = 0
    cdef int axis
    for axis in range(ndim - 2, -1, -1):
        index = row % shape[axis]
        row = row // shape[axis]
        offset += index * strides[axis]
        if axis == ndim - 2:
            t = index
    cdef const double *cos_row = <const double *>(cos0 + t * table_rs)
    cdef const double *sin_row = <const double *>(sin0 + t * table_rs)
    if floating is float:
        fpe_rotate_inplace_f32(<float *>(data + offset), d, cos_row, sin_row, n_pairs)
    else:
        fpe_rotate_inplace_f64(<double *>(data + offset), d, cos_row, sin_row, n_pairs)


cdef void _rotate_array(floating *dummy, cnp.ndarray a, const char *cos0, const char *sin0, cnp.npy_intp table_rs,
                        fpe_cols d, fpe_idx n_pairs, int n_threads):
    cdef int ndim = cnp.PyArray_NDIM(a)
    cdef const cnp.npy_intp *shape = cnp.PyArray_DIMS(a)
    cdef const cnp.npy_intp *strides = cnp.PyArray_STRIDES(a)
    cdef char *data = <char *>cnp.PyArray_DATA(a)
    cdef cnp.npy_intp n_rows = cnp.PyArray_SIZE(a) // shape[ndim - 1], row
    with nogil:
        if n_threads <= 1:
            for row in range(n_rows):
                _rotate_row(dummy, data, ndim, shape, strides, row, cos0, sin0, table_rs, d, n_pairs)
        else:
            for row in prange(n_rows, schedule="static", num_threads=n_threads):
                _rotate_row(dummy, data, ndim, shape, strides, row, cos0, sin0, table_rs, d, n_pairs)


cdef void _memory_bounds(cnp.ndarray a, char **low, char **high):
    """The first and one-past-last byte an array may touch (np.may_share_memory's bounds)."""
    cdef char *lo = <char *>cnp.PyArray_DATA(a)
    cdef char *hi = lo + cnp.PyArray_ITEMSIZE(a)
    cdef int axis
    cdef cnp.npy_intp extent
    for axis in range(cnp.PyArray_NDIM(a)):
        extent = (cnp.PyArray_DIM(a, axis) - 1) * cnp.PyArray_STRIDE(a, axis)
        if extent < 0:
            lo += extent
        else:
            hi += extent
    low[0] = lo
    high[0] = hi


def apply_rotary_common(tuple arrays, offset, positions, base, layout, rotary_dim, inv_freq, scaling, seq_axis,
                        out, num_threads):
    """apply_rotary(*arrays, ...) when the call is the common one (see the
    module docstring): the caller's result. None otherwise."""
    global _n_fast_calls
    if not (positions is None and inv_freq is None and out is None):
        return None
    if num_threads is not None and (type(num_threads) is not int or num_threads < 1):
        return None  # check_num_threads's rule: the general path refuses it
    if type(seq_axis) is not int or seq_axis != -2 or type(layout) is not str:
        return None
    if layout == "half":
        pass
    elif layout != "interleaved":
        return None
    cdef double base_value
    if base is None:
        base_value = 10000.0
    elif (type(base) is float or type(base) is int) and 0 < base < 1e300:  # the general path's check_real_scalar
        base_value = base
    else:
        return None
    if rotary_dim is not None and (type(rotary_dim) is not int or rotary_dim < 2 or rotary_dim % 2):
        return None  # check_rotary_dim's rule: the general path refuses it
    cdef double first
    if not _offset_value(offset, &first) or floor(first) != first:
        return None

    cdef Py_ssize_t n_arrays = len(arrays), i, j
    if n_arrays == 0 or n_arrays > 64:
        return None
    cdef char *lows[64]
    cdef char *highs[64]
    cdef cnp.ndarray a
    cdef int typenum = -1, ndim
    cdef cnp.npy_intp T = -1, width = -1, narrowest = -1, last, total = 0
    cdef bint same_width = True
    for i in range(n_arrays):
        if type(arrays[i]) is not np.ndarray:
            return None
        a = <cnp.ndarray>arrays[i]
        if not _common_array(a):
            return None
        if typenum == -1:
            typenum = cnp.PyArray_TYPE(a)
        elif cnp.PyArray_TYPE(a) != typenum:
            return None
        ndim = cnp.PyArray_NDIM(a)
        if cnp.PyArray_STRIDE(a, ndim - 1) % cnp.PyArray_ITEMSIZE(a):
            return None
        if T == -1:
            T = cnp.PyArray_DIM(a, ndim - 2)
        elif cnp.PyArray_DIM(a, ndim - 2) != T:
            return None
        last = cnp.PyArray_DIM(a, ndim - 1)
        if width == -1:
            width = narrowest = last
        elif last != width:
            same_width = False
            narrowest = min(narrowest, last)
        total += cnp.PyArray_SIZE(a)
        _memory_bounds(a, &lows[i], &highs[i])
        for j in range(i):
            if lows[i] < highs[j] and lows[j] < highs[i]:
                return None  # the general path settles (or refuses) arrays that share memory

    # The positions first .. first + T - 1, one rounded addition as the general path forms it.
    cdef double final = first + <double>(T - 1)
    if not final < _LIMIT:
        return None
    cdef double block = floor(first / _BLOCK)  # exact: a power-of-two division
    cdef cnp.npy_intp row0 = <cnp.npy_intp>(first - block * _BLOCK)
    if row0 + T > _ROWS or not block * _BLOCK > -_LIMIT:
        return None

    seq_len = max(<long long>final + 1, 0)  # fastpe._formulas.rope_seq_len of the last position
    if type(scaling) is dict or scaling is None:
        skey = scaling_key(scaling)
    else:
        try:
            skey = scaling_key(scaling)
        except Exception:
            return None  # the general path raises it, after its earlier checks
    if skey is None:
        return None
    try:
        freq = _cached_frequencies(width if same_width else None, rotary_dim, base_value, scaling, skey, seq_len,
                                   False)
    except Exception:
        return None
    if freq.warning is not None:
        return None  # the general path warns on every call
    if _per_length(freq, seq_len):
        return None  # one call's frequencies: a block of rows would serve this call alone
    cdef Py_ssize_t rdim = freq.rotary_dim
    if rdim > narrowest:
        return None
    cdef Py_ssize_t half = rdim // 2
    cdef _CosSinRows rows = _cos_sin_rows(freq, block)
    cdef cnp.npy_intp table_rs = cnp.PyArray_STRIDE(rows.cos, 0)
    cdef const char *cos0 = <const char *>cnp.PyArray_DATA(rows.cos) + row0 * table_rs
    cdef const char *sin0 = <const char *>cnp.PyArray_DATA(rows.sin) + row0 * table_rs

    cdef int threads, n_threads = _resolve_threads(num_threads, total)
    cdef fpe_cols d
    cdef cnp.npy_intp cs
    _n_fast_calls += 1
    for i in range(n_arrays):
        a = <cnp.ndarray>arrays[i]
        ndim = cnp.PyArray_NDIM(a)
        cs = cnp.PyArray_STRIDE(a, ndim - 1) // cnp.PyArray_ITEMSIZE(a)
        # fastpe._rotary.pair_columns: pair k is channels (k, k + half) or (2k, 2k + 1)
        if layout == "half":
            d.sin_off, d.cos_off, d.ks = 0, half * cs, cs
        else:
            d.sin_off, d.cos_off, d.ks = 0, cs, 2 * cs
        threads = min(n_threads, cnp.PyArray_SIZE(a) // cnp.PyArray_DIM(a, ndim - 1))
        if typenum == cnp.NPY_FLOAT:
            _rotate_array(<float *>NULL, a, cos0, sin0, table_rs, d, half, threads)
        else:
            _rotate_array(<double *>NULL, a, cos0, sin0, table_rs, d, half, threads)
    return arrays[0] if n_arrays == 1 else arrays
