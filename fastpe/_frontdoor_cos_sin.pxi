# Part of fastpe/_frontdoor.pyx: the front door of the rotation by given cos
# and sin tables (Hugging Face's apply_rotary_pos_emb), for fastpe.torch's
# eager route.
#
# The common call: tensors _intake_tensor takes (at least 1-D), of one dtype
# and one even width D, their memory bounds apart; cos and sin tensors it
# takes too, of one shape whose last axis is D; unsqueeze_dim a Python int
# naming a place for a new axis of cos; cos with that axis (cos') broadcasting
# to every tensor (fastpe._validation.cos_sin's rule: cos' has no more axes
# than the tensor, and each of its axes is 1 or the tensor's); each table
# finite and repeating its first half in its second. The float64 table the
# general path makes (cos's first half, then sin's, a row per row of cos) is
# made here, and the kernels' rotate_rows applies it, each vector row with
# the table row that broadcasting gives it. The bits are the general path's
# (fastpe._rotary_given.rotate_by_cos_sin).

cdef unsigned long long _n_cos_sin_calls = 0


def cos_sin_calls():
    """How many rotations by given cos and sin this front door served (for tests)."""
    return _n_cos_sin_calls


cdef inline double _value_at(const ArrayDesc *d, const char *p) noexcept nogil:
    if d.element == FPE_FLOAT32:
        return (<const float *>p)[0]
    return (<const double *>p)[0]


cdef bint _cos_sin_table(const ArrayDesc *cd, const ArrayDesc *sd, double *table, fpe_idx half) except -1:
    """table[r] = cos row r's first half, then sin row r's: False (nothing
    served) when a table does not repeat its first half in its second, or
    holds a value that is not finite."""
    cdef fpe_idx n_rows, r, k
    cdef _Indices cos_rows = _row_offsets(cd, cd.ndim - 1, &n_rows)
    cdef _Indices sin_rows = _row_offsets(sd, sd.ndim - 1, &n_rows)
    cdef fpe_idx cstep = cd.strides[cd.ndim - 1], sstep = sd.strides[sd.ndim - 1]
    cdef const char *c
    cdef const char *s
    cdef double first, second
    for r in range(n_rows):
        c = cd.data + cos_rows.data[r]
        s = sd.data + sin_rows.data[r]
        for k in range(half):
            first, second = _value_at(cd, c + k * cstep), _value_at(cd, c + (k + half) * cstep)
            if not (first == second and isfinite(first)):  # the general path refuses NaN and inf
                return False
            table[r * 2 * half + k] = first
            first, second = _value_at(sd, s + k * sstep), _value_at(sd, s + (k + half) * sstep)
            if not (first == second and isfinite(first)):
                return False
            table[r * 2 * half + half + k] = first
    return True


cdef void _broadcast_rows_into(const ArrayDesc *a, const fpe_idx *lead, int lead_ndim, fpe_idx *out) noexcept:
    """The table row of each vector row of a (C order over its leading axes):
    the row of a table of leading shape `lead` (lead_ndim axes, right-aligned
    with a's leading axes, each 1 or a's) that broadcasting gives it."""
    cdef int n = a.ndim - 1, j, jj
    cdef fpe_idx step[FPE_MAX_DIMS]
    cdef fpe_idx index[FPE_MAX_DIMS]
    cdef fpe_idx stride = 1, n_rows = 1, i, row = 0
    for j in range(n - 1, -1, -1):
        jj = j - (n - lead_ndim)
        step[j] = 0 if jj < 0 or lead[jj] == 1 else stride
        if jj >= 0:
            stride *= lead[jj]
        index[j] = 0
        n_rows *= a.shape[j]
    for i in range(n_rows):
        out[i] = row
        j = n - 1
        while j >= 0:  # the next index, C order
            index[j] += 1
            row += step[j]
            if index[j] < a.shape[j]:
                break
            row -= step[j] * index[j]
            index[j] = 0
            j -= 1


def rotate_tensors_by_cos_sin(tuple tensors, bint into_new, cos, sin, unsqueeze_dim):
    """fastpe.torch's eager route of apply_rotary_cos_sin: the common call
    (see above) rotated in place (the tensors returned) or into new tensors
    (torch.empty_like of each, returned as a list); None when not served,
    having written nothing."""
    return _cos_sin_front_door(tensors, into_new, cos, sin, unsqueeze_dim)


def rotate_tensors_by_cos_sin_eagerly(tuple tensors, bint into_new, cos, sin, unsqueeze_dim):
    """rotate_tensors_by_cos_sin on fastpe.torch's eager route, as
    rotate_tensors_eagerly (cos and sin are among the tensors the route asks about)."""
    if not _torch_route_open((*tensors, cos, sin), None, () if into_new else tensors):
        return None
    return _bump_written(_cos_sin_front_door(tensors, into_new, cos, sin, unsqueeze_dim), tensors, into_new)


cdef object _cos_sin_front_door(tuple tensors, bint into_new, cos, sin, unsqueeze_dim):
    cdef Py_ssize_t n_arrays = len(tensors), j
    if type(unsqueeze_dim) is not int or n_arrays == 0 or n_arrays > _MAX_ARRAYS:
        return None
    cdef ArrayDesc cd, sd
    if not _intake_tensor(cos, &cd, 1) or not _intake_tensor(sin, &sd, 1) or cd.ndim != sd.ndim:
        return None
    cdef int axis, lead_ndim = cd.ndim  # cos' leading axes: cos's, and the new one
    for axis in range(cd.ndim):
        if cd.shape[axis] != sd.shape[axis]:
            return None
    cdef fpe_idx D = cd.shape[cd.ndim - 1], half = D // 2
    cdef long ud = unsqueeze_dim
    if D % 2 or not -cd.ndim - 1 <= ud <= cd.ndim:
        return None
    if ud < 0:
        ud += cd.ndim + 1
    cdef fpe_idx lead[FPE_MAX_DIMS + 1]
    j = 0
    for axis in range(lead_ndim):
        if axis == ud:
            lead[axis] = 1
        else:
            lead[axis] = cd.shape[j]
            j += 1
    if ud == cd.ndim:
        return None  # the new axis after the channels: cos' cannot end with the width

    cdef ArrayDesc *descs = <ArrayDesc *>malloc(2 * n_arrays * sizeof(ArrayDesc))
    if descs == NULL:
        raise MemoryError()
    try:
        return _serve_cos_sin(tensors, descs, n_arrays, into_new, &cd, &sd, lead, lead_ndim, D)
    finally:
        free(descs)


cdef object _serve_cos_sin(tuple tensors, ArrayDesc *descs, Py_ssize_t n_arrays, bint into_new,
                           const ArrayDesc *cd, const ArrayDesc *sd, const fpe_idx *lead, int lead_ndim, fpe_idx D):
    global _n_cos_sin_calls
    cdef char *lows[_MAX_ARRAYS]
    cdef char *highs[_MAX_ARRAYS]
    cdef ArrayDesc *d
    cdef Py_ssize_t i
    cdef int axis, offset
    cdef fpe_idx total = 0, half = D // 2
    for i in range(n_arrays):
        d = &descs[i]
        if not _intake_tensor(tensors[i], d, 1) or d.element != descs[0].element or d.shape[d.ndim - 1] != D:
            return None
        # cos' (lead_ndim leading axes and the width) broadcasts to the tensor
        if lead_ndim + 1 > d.ndim:
            return None
        offset = d.ndim - 1 - lead_ndim
        for axis in range(lead_ndim):
            if lead[axis] != 1 and lead[axis] != d.shape[offset + axis]:
                return None
        total += d.size
        memory_bounds(d, &lows[i], &highs[i])
        if not _apart_from_earlier(lows, highs, i):
            return None
    cdef fpe_idx n_table_rows = cd.size // D
    cdef double *table = <double *>malloc(max(n_table_rows * D, 1) * sizeof(double))
    if table == NULL:
        raise MemoryError()
    cdef CosSin cs
    cdef _Indices table_rows
    cdef list made = None
    cdef int n_threads
    try:
        if not _cos_sin_table(cd, sd, table, half):
            return None
        cs.cos = <const char *>table
        cs.sin = <const char *>(table + half)
        cs.row_stride = D * sizeof(double)
        cs.n_pairs = half
        cs.layout = FPE_PAIRS_HALF
        n_threads = _runtime.resolve_threads(None, total)
        if into_new:
            made = [_new_tensor_like(tensors[i], &descs[i], &descs[n_arrays + i]) for i in range(n_arrays)]
        _n_cos_sin_calls += 1
        for i in range(n_arrays):
            d = &descs[i]
            table_rows = _Indices(d.size // D)
            _broadcast_rows_into(d, lead, lead_ndim, table_rows.data)
            _rotate_described(descs, n_arrays, i, into_new, table_rows.data, &cs, n_threads)
    finally:
        free(table)
    return made if into_new else tensors
