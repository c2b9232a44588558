# Part of fastpe/_frontdoor.pyx: the rotary frequencies and cos/sin rows the
# cache keeps, and apply_rotary's front door.
#
# The cache keeps, per (head width, rotary_dim, base, scaling key[, seq_len
# key]), the scaled frequencies with their attention factor (a
# fastpe._rope.ScaledFrequencies, which says how seq_len enters: dynamic
# past its max_position_embeddings, whose frequencies change with every
# length, is not kept), and, per (frequencies, attention factor, block), the
# float64 cos and sin rows of FPE_SEED_GRID consecutive positions, made by
# fastpe._tables.cos_sin_rows. A scaling dict is keyed by a frozen copy of
# its contents, a config by the values fastpe._rope's reader takes from it:
# a scaling changed after a call is a new key. A scaling that cannot be
# frozen (values of unknown types) is not kept.
#
# The common call is ``apply_rotary(*arrays, offset=o)``, optionally with
# `base`, `layout`, `rotary_dim`, `scaling` and `seq_axis`, where every
# array is one _intake_ndarray takes (ndim >= the declaration's 2; float16
# and bfloat16 too, rotated in float64 and rounded once as elsewhere) of one
# dtype and one sequence length, the arrays' memory bounds are apart, o a
# scalar _offset_value takes with an integral value and o .. o + T - 1 in
# one block of cos/sin rows, `base` a finite positive Python float or int,
# `layout` a name of PAIR_LAYOUTS, `rotary_dim` and `num_threads` values
# their declarations accept as they are, `seq_axis` the axis before the
# channels (-2, or ndim - 2 of every array), `positions` and `inv_freq` None,
# `out` None or a tuple or list of one array per input that _intake_ndarray
# takes, of its input's shape and dtype, sharing memory with no other array
# of the call (then every channel must rotate), and the scaling's
# frequencies are kept without an unused-keys warning. It rotates every
# vector row by the kernels' rotate_rows with rows the general path's own
# helper made. fastpe.torch's eager route offers the same call on CPU
# tensors (rotate_tensors), in place or into new tensors.

cdef int _ARRAYS_MIN_NDIM = params.ROTATED_ARRAYS.min_ndim
cdef IntRule _ROTARY_DIM = int_rule(params.ROTARY_DIM)
# Nesting deeper than this in a scaling is not frozen (so not kept).
cdef int _MAX_DEPTH = 8
# The most arrays one call rotates on this path (more take the general path).
cdef enum:
    _MAX_ARRAYS = 64

cdef unsigned long long _n_rotary_calls = 0
cdef unsigned long long _n_tensor_rotary_calls = 0


def rotary_calls():
    """How many apply_rotary calls its front door served in this process (for tests)."""
    return _n_rotary_calls


def tensor_rotary_calls():
    """How many of them were fastpe.torch's, on tensors (for tests)."""
    return _n_tensor_rotary_calls


# ------------------------------------------------------------ scaling keys

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


cdef tuple _scaling_key(object scaling, object read):
    """The cache key of a scaling argument (None: it cannot be frozen): its
    contents (a dict), or what the reader took from it (read, a fastpe._rope.ScalingParameters)."""
    if scaling is None:
        return ("none",)
    if read is None:
        frozen = _frozen(scaling)
        return None if frozen is None else ("dict", frozen)
    frozen = _frozen(read.params)
    return None if frozen is None else ("read", frozen, read.head_dim, read.ignore)


cdef object _read_scaling(object scaling):
    """What fastpe._rope's reader takes from a scaling other than None or a
    dict (those are keyed by their contents, and read only on a miss)."""
    return None if scaling is None or type(scaling) is dict else _rope.scaling_parameters(scaling)


def scaling_key(scaling):
    """The cache key of a scaling argument, or None when it cannot be frozen
    (for tests); raises what fastpe._rope's reader raises."""
    return _scaling_key(scaling, _read_scaling(scaling))


# ------------------------------------------------------------ frequencies

cdef object _cached_frequencies(object width, object rotary_dim, double base, object scaling, object read,
                                tuple skey, double last_position, bint per_length_too):
    """The ScaledFrequencies the cache keeps for a keyed scaling (built on a
    miss by fastpe._rope, which raises what the scaling's checks raise).
    read: the scaling as fastpe._rope read it (None for a dict or None:
    read only on a miss). Frequencies of one length alone (per_length) are
    built only with per_length_too; without, the cache's entry for the
    scaling comes back, which says so."""
    key = _rotary_frequencies_key(width, rotary_dim, base, skey)
    built = None  # this call's, once built
    seq_len = None
    freq = _CACHE.find(key)
    if freq is None:
        seq_len = _formulas.rope_seq_len(last_position)
        built = _rope.scaled_frequencies(width, rotary_dim, base, scaling, read, seq_len)
        freq = _CACHE.keep(key, built)
    if freq.seq_dependence is None:
        return freq
    # A new base at every length is not worth an entry each; longrope, and
    # dynamic up to its max_position_embeddings, get one per seq_len key.
    if seq_len is None:
        seq_len = _formulas.rope_seq_len(last_position)
    per_length = freq.per_length(seq_len)
    if per_length and not per_length_too:
        return freq
    if not per_length:
        key = _rotary_frequencies_at_key(key, freq.seq_len_key(seq_len))
        found = _CACHE.find(key)
        if found is not None:
            return found
    if built is None:
        built = _rope.scaled_frequencies(width, rotary_dim, base, scaling, read, seq_len)
    return built if per_length else _CACHE.keep(key, built)


def rotary_frequencies(width, rotary_dim, base, scaling, inv_freq, last_position):
    """The ScaledFrequencies of an apply_rotary or rotary_cos_sin call
    (fastpe._rope.scaled_frequencies or, with inv_freq,
    fastpe._rope.given_frequencies), through the cache where the scaling can
    be keyed; the unused-keys warning emitted. last_position: the call's
    largest position (its seq_len is fastpe._formulas.rope_seq_len of it).
    The scaling is read once."""
    if inv_freq is not None:
        return _rope.given_frequencies(width, rotary_dim, scaling, inv_freq)
    read = _read_scaling(scaling)
    skey = _scaling_key(scaling, read)
    if skey is not None:
        freq = _cached_frequencies(width, rotary_dim, base, scaling, read, skey, last_position, True)
    else:
        freq = _rope.scaled_frequencies(width, rotary_dim, base, scaling, read,
                                        _formulas.rope_seq_len(last_position))
    _rope.warn_unused_keys(freq.warning)
    return freq


# ------------------------------------------------------------ cos/sin rows

cdef class _CosSinBlock:
    """The cos/sin rows of the positions first .. first + FPE_SEED_GRID - 1 (read-only)."""

    cdef readonly cnp.ndarray cos
    cdef readonly cnp.ndarray sin
    cdef readonly object nbytes

    def __init__(self, double first, freq):
        # Serial: a team's start costs more than these ~50 us of work on a loaded machine.
        self.cos, self.sin = _tables.cos_sin_rows(first + np.arange(FPE_SEED_GRID, dtype=np.float64),
                                                  exact_plan(freq.freq, freq.freq_lo), freq.attention_factor, 1)
        if self.cos.strides[0] != self.sin.strides[0]:
            raise AssertionError("cos_sin_rows' tables must share one row stride (the rotate kernel's rule)")
        self.cos.flags.writeable = False
        self.sin.flags.writeable = False
        self.nbytes = self.cos.nbytes + self.sin.nbytes


cdef _CosSinBlock _cos_sin_block(object freq, double block):
    key = _cos_sin_block_key(freq, block)
    rows = _CACHE.find(key)
    if rows is None:
        rows = _CACHE.keep(key, _CosSinBlock(block * FPE_SEED_GRID, freq))
    return <_CosSinBlock>rows


# ------------------------------------------------------------ the front door

cdef bint _base_value(object base, double *value) except -1:
    """base as the float64 the general path checks it to, when it is None (the
    default) or a finite positive Python float or int."""
    if base is None:
        value[0] = _DEFAULT_BASE
        return True
    if type(base) is float:
        value[0] = base
    elif type(base) is int:
        try:
            value[0] = float(base)
        except OverflowError:
            return False  # the general path refuses it
    else:
        return False
    return isfinite(value[0]) and value[0] > 0


cdef int _layout_code(object layout) except -2:
    """The PairLayout of a layout name (-1: not one)."""
    if type(layout) is not str:
        return -1
    if layout == "half":
        return FPE_PAIRS_HALF
    if layout == "interleaved":
        return FPE_PAIRS_INTERLEAVED
    return -1


def apply_rotary(tuple arrays, offset, positions, base, layout, rotary_dim, inv_freq, scaling, seq_axis, out,
                 num_threads):
    """apply_rotary's arguments, as the caller gave them: the caller's result
    when the call is the common one (see above), else None. Plain CPU
    tensors, in place, take fastpe.torch's eager route where it is open to a
    NumPy-facing function (_torch_route_open)."""
    if not (positions is None and inv_freq is None):
        return None
    if out is None and len(arrays) and _plain_tensor(arrays[0]):
        done = _rotary_on_tensors(arrays, False, offset, base, layout, rotary_dim, scaling, seq_axis, num_threads,
                                  True)
        return done if done is None or len(arrays) > 1 else done[0]
    if out is not None and not ((type(out) is tuple or type(out) is list) and len(out) == len(arrays)):
        return None
    return _rotary_front_door(arrays, offset, base, layout, rotary_dim, scaling, seq_axis, num_threads, False,
                              False, None if out is None else tuple(out))


def rotate_tensors(tuple tensors, bint into_new, offset, base, layout, rotary_dim, scaling, seq_axis,
                   num_threads):
    """fastpe.torch's eager route (fastpe.torch._impl): the common call (see
    above) on tensors _intake_tensor takes instead of ndarrays. Rotates them
    in place and returns them, or (into_new) returns new tensors
    (torch.empty_like of each) holding the rotation, every channel rotated
    (a partial rotary_dim is not served that way); None when not served,
    having written nothing."""
    return _rotary_front_door(tensors, offset, base, layout, rotary_dim, scaling, seq_axis, num_threads, True,
                              into_new, None)


def rotate_tensors_eagerly(tuple tensors, bint into_new, offset, base, layout, rotary_dim, scaling, seq_axis,
                           num_threads):
    """rotate_tensors on fastpe.torch's eager route, for fastpe.torch once it
    knows Dynamo is not tracing (this function is no Python it could trace):
    served only when _torch_route_open lets the call skip the dispatcher, and
    the version counters of tensors written in place bumped. None where
    another way must serve the call (nothing written)."""
    return _rotary_on_tensors(tensors, into_new, offset, base, layout, rotary_dim, scaling, seq_axis, num_threads,
                              False)


cdef object _rotary_on_tensors(tuple tensors, bint into_new, offset, base, layout, rotary_dim, scaling, seq_axis,
                               num_threads, bint numpy_facing):
    """rotate_tensors_eagerly, for fastpe.torch's functions or (numpy_facing) fastpe.apply_rotary's."""
    if not _torch_route_open(tensors, offset, () if into_new else tensors, numpy_facing):
        return None
    offset = _offset_of_tensor(offset)
    if offset is None:
        return None
    return _bump_written(_rotary_front_door(tensors, offset, base, layout, rotary_dim, scaling, seq_axis,
                                            num_threads, True, into_new, None), tensors, into_new)


cdef object _rotary_front_door(tuple arrays, object offset, object base, object layout, object rotary_dim,
                               object scaling, object seq_axis, object num_threads, bint tensors, bint into_new,
                               tuple outs):
    if not accepts_int(num_threads, &_NUM_THREADS):
        return None
    if rotary_dim is not None and not accepts_int(rotary_dim, &_ROTARY_DIM):
        return None
    if type(seq_axis) is not int:
        return None
    cdef int pairs = _layout_code(layout)
    cdef double base_value, first
    if pairs < 0 or not _base_value(base, &base_value):
        return None
    if not _offset_value(offset, &first) or floor(first) != first:
        return None

    cdef Py_ssize_t n_arrays = len(arrays)
    if n_arrays == 0 or n_arrays > _MAX_ARRAYS:
        return None
    # descs[n_arrays + i]: where array i's rotation goes (outs, or the new tensor of into_new)
    cdef ArrayDesc *descs = <ArrayDesc *>malloc(2 * n_arrays * sizeof(ArrayDesc))
    if descs == NULL:
        raise MemoryError()
    try:
        return _serve_rotary(arrays, descs, n_arrays, seq_axis, pairs, base_value, first, rotary_dim, scaling,
                             num_threads, tensors, into_new, outs)
    finally:
        free(descs)


cdef bint _intake_outs(tuple arrays, tuple outs, ArrayDesc *descs, Py_ssize_t n_arrays, char **lows,
                       char **highs) except -1:
    """Describe out[i] into descs[n_arrays + i] when every out is an array
    _intake_ndarray takes, of its input's dtype (the same NumPy dtype: ml_dtypes'
    bfloat16 and fastpe.torch's bits are two) and shape, and no two of the
    inputs and outs share memory (lows, highs: the inputs' bounds, then the
    outs'). False otherwise (the general path settles the call)."""
    cdef Py_ssize_t i, axis
    cdef ArrayDesc *o
    cdef ArrayDesc *d
    for i in range(n_arrays):
        d, o = &descs[i], &descs[n_arrays + i]
        if not _intake_ndarray(outs[i], o, _ARRAYS_MIN_NDIM, True) or o.element != d.element or o.ndim != d.ndim:
            return False
        if outs[i].dtype != arrays[i].dtype:
            return False
        for axis in range(d.ndim):
            if o.shape[axis] != d.shape[axis]:
                return False
        memory_bounds(o, &lows[n_arrays + i], &highs[n_arrays + i])
        if not _apart_from_earlier(lows, highs, n_arrays + i):
            return False
    return True


cdef object _serve_rotary(tuple arrays, ArrayDesc *descs, Py_ssize_t n_arrays, object seq_axis, int pairs,
                          double base_value, double first, object rotary_dim, object scaling, object num_threads,
                          bint tensors, bint into_new, tuple outs):
    global _n_rotary_calls, _n_tensor_rotary_calls
    cdef char *lows[2 * _MAX_ARRAYS]
    cdef char *highs[2 * _MAX_ARRAYS]
    cdef ArrayDesc *d
    cdef Py_ssize_t i, j
    cdef fpe_idx T = -1, width = -1, narrowest = -1, last, total = 0
    cdef bint same_width = True, taken
    for i in range(n_arrays):
        d = &descs[i]
        if tensors:
            taken = _intake_tensor(arrays[i], d, _ARRAYS_MIN_NDIM, True)
        else:
            taken = _intake_ndarray(arrays[i], d, _ARRAYS_MIN_NDIM, True)
        if not taken:
            return None
        if d.element != descs[0].element or d.strides[d.ndim - 1] % d.itemsize:
            return None
        if d.element == FPE_BFLOAT16 and not tensors and arrays[i].dtype != arrays[0].dtype:
            return None  # ml_dtypes' bfloat16 and fastpe.torch's bits: two dtypes, which the general path refuses
        # The sequence axis: the one before the channels, however it is spelled.
        if not (seq_axis == -2 or seq_axis == d.ndim - 2):
            return None
        if T == -1:
            T = d.shape[d.ndim - 2]
        elif d.shape[d.ndim - 2] != T:
            return None
        last = d.shape[d.ndim - 1]
        if width == -1:
            width = narrowest = last
        elif last != width:
            same_width = False
            narrowest = min(narrowest, last)
        total += d.size
        memory_bounds(d, &lows[i], &highs[i])
        if not _apart_from_earlier(lows, highs, i):
            return None  # the general path settles (or refuses) arrays that share memory
    if outs is not None and not _intake_outs(arrays, outs, descs, n_arrays, lows, highs):
        return None
    cdef bint apart = outs is not None or into_new  # the rotation goes to other arrays

    # The positions first .. first + T - 1, one rounded addition as the general path forms it.
    cdef double final = first + <double>(T - 1)
    if not final < _LIMIT:
        return None
    cdef double block = floor(first / FPE_SEED_GRID)  # exact: a power-of-two division
    cdef fpe_idx row0 = <fpe_idx>(first - block * FPE_SEED_GRID)
    if row0 + T > FPE_SEED_GRID or not block * FPE_SEED_GRID > -_LIMIT:
        return None

    try:
        read = _read_scaling(scaling)
    except Exception:
        return None  # the general path raises it, after its earlier checks
    skey = _scaling_key(scaling, read)
    if skey is None:
        return None
    try:
        freq = _cached_frequencies(width if same_width else None, rotary_dim, base_value, scaling, read, skey,
                                   final, False)
    except Exception:
        return None
    if freq.warning is not None:
        return None  # the general path warns on every call
    if freq.seq_dependence is not None and freq.per_length(_formulas.rope_seq_len(final)):
        return None  # one call's frequencies: a block of rows would serve this call alone
    cdef fpe_idx rdim = freq.rotary_dim
    if rdim > narrowest or (apart and not (same_width and rdim == width)):
        return None
    cdef _CosSinBlock rows = _cos_sin_block(freq, block)
    cdef CosSin cs
    cs.row_stride = rows.cos.strides[0]
    cs.cos = <const char *>cnp.PyArray_DATA(rows.cos) + row0 * cs.row_stride
    cs.sin = <const char *>cnp.PyArray_DATA(rows.sin) + row0 * cs.row_stride
    cs.n_pairs = rdim // 2
    cs.layout = pairs

    cdef int n_threads = _runtime.resolve_threads(num_threads, total)
    cdef _Indices table_rows
    cdef list made = None
    if into_new:
        made = [_new_tensor_like(arrays[i], &descs[i], &descs[n_arrays + i]) for i in range(n_arrays)]
    _n_rotary_calls += 1
    _n_tensor_rotary_calls += tensors
    for i in range(n_arrays):
        d = &descs[i]
        table_rows = _Indices(d.size // d.shape[d.ndim - 1])
        sequence_index_into(d.shape, d.ndim, d.ndim - 2, table_rows.data)
        _rotate_described(descs, n_arrays, i, apart, table_rows.data, &cs, n_threads)
    if into_new:
        return made
    if outs is not None:
        arrays = outs
    return arrays[0] if n_arrays == 1 and not tensors else arrays
