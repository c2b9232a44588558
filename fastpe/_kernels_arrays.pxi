# Part of fastpe/_kernels.pyx: arrays as the kernels see them, and where their rows lie.
# Each rule here (an array's element type, its column step, whether its axes
# overlap, the byte offsets of its rows, the pair columns of a rotation) is
# the one both the Python layers (through the def functions) and the
# compiled front doors use.

# ------------------------------------------------------------ descriptions

cdef int describe_ndarray(cnp.ndarray a, ArrayDesc *d) except -1:
    """Fill d from an ndarray. float16 is NumPy's; any other 2-byte dtype is
    bfloat16 (ml_dtypes' type, or fastpe.torch's BFLOAT16_BITS view): the
    Python layers pass no other."""
    cdef int typenum = cnp.PyArray_TYPE(a), axis
    d.ndim = cnp.PyArray_NDIM(a)
    if d.ndim > FPE_MAX_DIMS:
        raise ValueError(f"an array of {d.ndim} dimensions (the kernels take at most {FPE_MAX_DIMS})")
    d.itemsize = cnp.PyArray_ITEMSIZE(a)
    if typenum == cnp.NPY_FLOAT32:
        d.element = FPE_FLOAT32
    elif typenum == cnp.NPY_FLOAT64:
        d.element = FPE_FLOAT64
    elif typenum == cnp.NPY_FLOAT16:
        d.element = FPE_FLOAT16
    elif d.itemsize == 2:
        d.element = FPE_BFLOAT16
    else:
        raise TypeError(f"the kernels take float32, float64, float16 and bfloat16 arrays, got {a.dtype}")
    d.data = <char *>cnp.PyArray_DATA(a)
    d.size = cnp.PyArray_SIZE(a)
    for axis in range(d.ndim):
        d.shape[axis] = cnp.PyArray_DIM(a, axis)
        d.strides[axis] = cnp.PyArray_STRIDE(a, axis)
    return 0


@cython.cdivision(False)
cdef fpe_idx column_step(const ArrayDesc *a) noexcept:
    """Elements between an array's columns (its last axis): the byte stride
    over the item size, floored as Python floors it (a negative stride of
    a non-multiple of the item size only arises in arrays nothing writes)."""
    return a.strides[a.ndim - 1] // a.itemsize


cdef bint internal_overlap(const ArrayDesc *a) noexcept:
    """Whether two elements of the array may share memory (zero or crossing
    strides). Sufficient test: sorted by |stride|, each axis must step over
    the whole extent of the axes inside it. Rejects nothing NumPy itself allocates."""
    cdef int n = 0, i, j
    cdef fpe_idx sizes[FPE_MAX_DIMS]
    cdef fpe_idx strides[FPE_MAX_DIMS]
    cdef fpe_idx size, stride, extent = a.itemsize
    for i in range(a.ndim):
        size = a.shape[i]
        if size <= 1:
            continue
        stride = a.strides[i]
        if stride < 0:
            stride = -stride
        j = n
        while j > 0 and strides[j - 1] > stride:  # insertion sort, stable
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


cdef void memory_bounds(const ArrayDesc *a, char **low, char **high) noexcept:
    """The first and one-past-last byte the array may touch (numpy.may_share_memory's bounds)."""
    cdef char *lo = a.data
    cdef char *hi = lo + a.itemsize
    cdef int axis
    cdef fpe_idx extent
    for axis in range(a.ndim):
        extent = (a.shape[axis] - 1) * a.strides[axis]
        if extent < 0:
            lo += extent
        else:
            hi += extent
    low[0] = lo
    high[0] = hi


cdef void row_offsets_into(const ArrayDesc *a, int n_axes, fpe_idx *out) noexcept:
    """Byte offset of every index over the array's first n_axes axes, in C
    order (other axes at 0): the rows the kernels walk."""
    cdef fpe_idx n_rows = 1, r, offset = 0
    cdef fpe_idx index[FPE_MAX_DIMS]
    cdef int axis
    for axis in range(n_axes):
        n_rows *= a.shape[axis]
        index[axis] = 0
    for r in range(n_rows):
        out[r] = offset
        axis = n_axes - 1
        while axis >= 0:  # the next index in C order, carrying into outer axes
            index[axis] += 1
            offset += a.strides[axis]
            if index[axis] < a.shape[axis]:
                break
            offset -= index[axis] * a.strides[axis]
            index[axis] = 0
            axis -= 1


cdef void sequence_index_into(const fpe_idx *shape, int ndim, int seq_axis, fpe_idx *out) noexcept:
    """The index along seq_axis of every vector row (shape[:-1], C order) of an array of `shape`."""
    # Nested loops, no division per row: a decode step's rows cost as much as its rotation otherwise.
    cdef fpe_idx outer = 1, inner = 1, o, s, j, r = 0
    cdef int axis
    for axis in range(ndim - 1):
        if axis < seq_axis:
            outer *= shape[axis]
        elif axis > seq_axis:
            inner *= shape[axis]
    for o in range(outer):
        for s in range(shape[seq_axis]):
            for j in range(inner):
                out[r] = s
                r += 1


cdef fpe_cols pair_columns_of(int layout, fpe_idx n_pairs, fpe_idx cs) noexcept nogil:
    """Where pair k's channels lie in a row with column stride cs: its first
    at sin_off + k*ks, its second at cos_off + k*ks (elements)."""
    cdef fpe_cols p
    p.sin_off = 0
    if layout == FPE_PAIRS_HALF:
        p.cos_off = n_pairs * cs
        p.ks = cs
    else:
        p.cos_off = cs
        p.ks = 2 * cs
    return p


# The rotary layouts, by their PairLayout codes.
PAIR_LAYOUTS = ("half", "interleaved")


def pair_columns(layout, rotary_dim):
    """(first, second, step) of a rotary layout: pair k is channels first + k*step and second + k*step."""
    cdef fpe_cols p = pair_columns_of(PAIR_LAYOUTS.index(layout), rotary_dim // 2, 1)
    return p.sin_off, p.cos_off, p.ks


def has_internal_overlap(cnp.ndarray a):
    """True if two elements of `a` may share memory (internal_overlap)."""
    cdef ArrayDesc d
    _describe_any(a, &d)
    return internal_overlap(&d)


def row_offsets(cnp.ndarray a, int n_axes):
    """Byte offsets (intp) of every index over a's first n_axes axes, in C order (row_offsets_into)."""
    cdef ArrayDesc d
    _describe_any(a, &d)
    cdef cnp.npy_intp n_rows = 1
    cdef int axis
    for axis in range(n_axes):
        n_rows *= d.shape[axis]
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(1, &n_rows, cnp.NPY_INTP, 0)
    row_offsets_into(&d, n_axes, <fpe_idx *>cnp.PyArray_DATA(out))
    return out


def sequence_index(shape, int seq_axis):
    """The index along seq_axis (intp) of every vector row of an array of `shape`, C order (flat)."""
    cdef fpe_idx dims[FPE_MAX_DIMS]
    cdef int ndim = len(shape), axis
    cdef cnp.npy_intp n_rows = 1
    for axis in range(ndim):
        dims[axis] = shape[axis]
        if axis < ndim - 1:
            n_rows *= dims[axis]
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(1, &n_rows, cnp.NPY_INTP, 0)
    sequence_index_into(dims, ndim, seq_axis, <fpe_idx *>cnp.PyArray_DATA(out))
    return out


cdef int _describe_any(cnp.ndarray a, ArrayDesc *d) except -1:
    """describe_ndarray's axes and data of an array of any dtype (for the layout facts above)."""
    cdef int axis
    d.ndim = cnp.PyArray_NDIM(a)
    d.itemsize = cnp.PyArray_ITEMSIZE(a)
    d.element = -1
    d.data = <char *>cnp.PyArray_DATA(a)
    d.size = cnp.PyArray_SIZE(a)
    for axis in range(d.ndim):
        d.shape[axis] = cnp.PyArray_DIM(a, axis)
        d.strides[axis] = cnp.PyArray_STRIDE(a, axis)
    return 0


# ------------------------------------------------------------ targets

cdef struct Target:
    char *dst
    const char *src
    const fpe_idx *dst_rows   # byte offsets of the rows that receive the encoding
    const fpe_idx *src_rows
    fpe_idx dst_cs            # column strides, in elements
    fpe_idx src_cs
    double scale
    int mode                  # FPE_MODE_*
    int kind                  # FPE_STORAGE_*


cdef inline int _storage_kind(int element) noexcept nogil:
    """The FPE_STORAGE_* code of an element type (_modes.h: the leaf loops' codes)."""
    if element == FPE_FLOAT16:
        return FPE_STORAGE_F16
    if element == FPE_BFLOAT16:
        return FPE_STORAGE_BF16
    return FPE_STORAGE_NATIVE


cdef inline fpe_idx _rows_ahead(fpe_idx row_stride) noexcept nogil:
    """Bytes from an element to the same element as many rows of its sequence
    ahead as make PREFETCH_AHEAD_BYTES or more (0: rows that share memory)."""
    cdef fpe_idx size = row_stride if row_stride >= 0 else -row_stride
    if size == 0:
        return 0
    return (PREFETCH_AHEAD_BYTES + size - 1) // size * row_stride


cdef inline bint _kind_prepared(int kind, double scale) noexcept nogil:
    """Whether 16-bit x of this FPE_STORAGE_* kind and scale takes prepared
    rows where batch rows share them (fpe_half_prepared). A row that one
    sequence alone reads is added from float64: preparing it costs more than
    it saves (docs/performance.rst)."""
    return kind != FPE_STORAGE_NATIVE and fpe_half_prepared(kind, scale)


cdef bint shared_rows_prepared(int element, double scale) noexcept nogil:
    """_kind_prepared of an element type (for the front doors)."""
    return _kind_prepared(_storage_kind(element), scale)


cdef Target _target(int mode, const ArrayDesc *dst, const fpe_idx *dst_rows, const ArrayDesc *src,
                    const fpe_idx *src_rows, double scale) noexcept:
    """The rows a kernel writes (dst) and reads (src; NULL or FPE_MODE_STORE: dst's own).
    The add to src needs dst and src disjoint and of one dtype."""
    cdef Target t
    t.dst = dst.data
    t.dst_rows = dst_rows
    t.dst_cs = column_step(dst)
    if src == NULL or mode != FPE_MODE_ADD_TO:
        t.src, t.src_rows, t.src_cs = t.dst, t.dst_rows, t.dst_cs
    else:
        t.src, t.src_rows, t.src_cs = src.data, src_rows, column_step(src)
    t.scale = scale
    t.mode = mode
    t.kind = _storage_kind(dst.element)
    return t


cdef inline int _mode(bint store, const ArrayDesc *src) noexcept:
    """The mode of a call: store, add in place (no src), or add to src."""
    if store:
        return FPE_MODE_STORE
    return FPE_MODE_ADD_INPLACE if src == NULL else FPE_MODE_ADD_TO


cdef inline const fpe_idx *_indices(const fpe_idx[::1] a) noexcept:
    """The data of an index memoryview (None: NULL)."""
    return NULL if a is None else &a[0]


cdef inline const ArrayDesc *_source(cnp.ndarray src, ArrayDesc *d) except? NULL:
    """d filled from src, or NULL for None (in place)."""
    if src is None:
        return NULL
    describe_ndarray(src, d)
    return d
