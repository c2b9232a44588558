# Part of fastpe/_frontdoor.pyx: what the front doors take in.
#
# An array enters as an ArrayDesc (fastpe/_kernels.pxd); from there on the
# front doors read only the description. _intake_ndarray recognises the
# arrays they serve; _intake_tensor the torch tensors fastpe.torch hands
# over (their data pointer, shape, strides and dtype), once fastpe.torch has
# told this module torch's types (this module never imports torch).

cdef bint _intake_ndarray(object x, ArrayDesc *d, int min_ndim, bint half_too=False,
                          bint read_only=False) except -1:
    """Describe x into d when it is an array a front door serves: an exact
    numpy.ndarray (no subclass, no tensor) of float32 or float64 (half_too:
    or float16 or bfloat16, as fastpe._validation.views.is_bfloat16 tells
    it) in native byte order, writeable (unless read_only: the array is only
    read), aligned, with at least min_ndim dimensions (the declaration's),
    size > 0 and no axes that may overlap (the check's own
    internal_overlap). False for anything else."""
    if type(x) is not cnp.ndarray:
        return False
    cdef cnp.ndarray a = <cnp.ndarray>x
    cdef int typenum = cnp.PyArray_TYPE(a)
    if typenum != cnp.NPY_FLOAT and typenum != cnp.NPY_DOUBLE and not (
            half_too and (typenum == cnp.NPY_FLOAT16
                          or (cnp.PyArray_ITEMSIZE(a) == 2 and _views.is_bfloat16(a.dtype)))):
        return False
    if not (cnp.PyArray_ISNOTSWAPPED(a) and (read_only or cnp.PyArray_ISWRITEABLE(a)) and cnp.PyArray_ISALIGNED(a)):
        return False
    if cnp.PyArray_NDIM(a) < min_ndim or cnp.PyArray_SIZE(a) == 0 or cnp.PyArray_NDIM(a) > FPE_MAX_DIMS:
        return False
    describe_ndarray(a, d)
    return not internal_overlap(d)


# torch's types, from fastpe.torch (register_torch): None until then, and no tensor is taken.
cdef object _TENSOR = None
cdef object _PARAMETER = None
cdef object _TORCH_FLOAT32 = None
cdef object _TORCH_FLOAT64 = None
cdef object _TORCH_FLOAT16 = None
cdef object _TORCH_BFLOAT16 = None
cdef object _TORCH_STRIDED = None
cdef object _EMPTY_LIKE = None


def register_torch(tensor, parameter, float32, float64, float16, bfloat16, strided, empty_like):
    """Called once by fastpe.torch: the types _intake_tensor recognises, and
    torch.empty_like (what _new_tensor_like calls)."""
    global _TENSOR, _PARAMETER, _TORCH_FLOAT32, _TORCH_FLOAT64, _TORCH_FLOAT16, _TORCH_BFLOAT16, _TORCH_STRIDED
    global _EMPTY_LIKE
    _TENSOR, _PARAMETER, _TORCH_STRIDED, _EMPTY_LIKE = tensor, parameter, strided, empty_like
    _TORCH_FLOAT32, _TORCH_FLOAT64, _TORCH_FLOAT16, _TORCH_BFLOAT16 = float32, float64, float16, bfloat16


# What fastpe.torch's eager route asks torch (register_torch_route), and how many of fastpe.torch's
# private contexts that send calls another way (always_dispatch, torch_ops_everywhere) are open.
cdef object _DISPATCH_MODES = None
cdef object _FUNCTION_MODES = None
cdef object _FUNCTORCH_LAYER = None
cdef object _GRAD_ENABLED = None
cdef object _INFERENCE_MODE = None
cdef object _INCREMENT_VERSION = None
cdef int _ROUTE_CLOSED = 1  # until register_torch_route


def register_torch_route(dispatch_modes, function_modes, functorch_layer, grad_enabled, inference_mode,
                         increment_version):
    """Called once by fastpe.torch: torch's questions _torch_route_open asks
    (torch._C._len_torch_dispatch_stack, _is_torch_function_mode_enabled,
    _functorch.peek_interpreter_stack, is_grad_enabled,
    is_inference_mode_enabled), and torch._C._increment_version."""
    global _DISPATCH_MODES, _FUNCTION_MODES, _FUNCTORCH_LAYER, _GRAD_ENABLED, _INFERENCE_MODE, _ROUTE_CLOSED
    global _INCREMENT_VERSION
    _DISPATCH_MODES, _FUNCTION_MODES, _FUNCTORCH_LAYER = dispatch_modes, function_modes, functorch_layer
    _GRAD_ENABLED, _INFERENCE_MODE, _INCREMENT_VERSION = grad_enabled, inference_mode, increment_version
    _ROUTE_CLOSED -= 1


def close_torch_route(int by):
    """by=1 when one of fastpe.torch's private contexts that send calls another way opens, -1 when it closes."""
    global _ROUTE_CLOSED
    _ROUTE_CLOSED += by


cpdef bint torch_modes_on() except -1:
    """Whether a torch dispatch or function mode or a functorch transform
    (vmap, grad) is on: then only calls through the dispatcher are seen.
    Asked by _torch_route_open and by fastpe.torch's own eager route
    (fastpe.torch._tensors), once fastpe.torch has registered the questions."""
    return _DISPATCH_MODES() or _FUNCTION_MODES() or _FUNCTORCH_LAYER() is not None


cdef object _bump_written(object done, tuple tensors, bint into_new):
    """done, a front door's answer; the tensors' version counters bumped when it wrote them in place
    (what torch's own in-place operations do)."""
    if done is not None and not into_new:
        _INCREMENT_VERSION(tensors)
    return done


cdef bint _torch_route_open(tuple tensors, offset, tuple written, bint numpy_facing=False) except -1:
    """May the call write through the front doors, unseen by the dispatcher?
    Yes when no dispatch or function mode or functorch transform is on and no
    private context is open, the offset is no tensor or a plain 0-d CPU one
    that does not require grad (_offset_of_tensor reads it), every tensor is a plain
    torch.Tensor or Parameter none of which requires grad while grad mode is
    on, and, outside inference mode, none of those written is an inference
    tensor (the general path refuses to write those). For a NumPy-facing
    function (numpy_facing), which refuses any tensor that requires grad
    whatever the grad mode, no tensor may require grad at all and the offset
    is no tensor: the general path settles the rest."""
    if _ROUTE_CLOSED or torch_modes_on():
        return False
    if numpy_facing and isinstance(offset, _TENSOR):
        return False
    if isinstance(offset, _TENSOR) and (type(offset) is not _TENSOR or offset.ndim != 0 or not offset.is_cpu
                                        or offset.requires_grad):
        return False
    cdef bint grad = numpy_facing or _GRAD_ENABLED()
    cdef object kind
    for t in tensors:
        kind = type(t)
        if (kind is not _TENSOR and kind is not _PARAMETER) or (grad and t.requires_grad):
            return False
    if written and not _INFERENCE_MODE():
        for t in written:
            if t.is_inference():
                return False
    return True


cdef inline bint _plain_tensor(object x):
    """x is a torch.Tensor or Parameter itself (fastpe.torch imported), not a subclass."""
    return _TENSOR is not None and (type(x) is _TENSOR or type(x) is _PARAMETER)


cdef object _offset_of_tensor(object offset):
    """A 0-d CPU tensor offset that _torch_route_open let through, as the 0-d
    NumPy array of its value (what fastpe.torch's read_view makes a number
    of); None when it has none (bfloat16, a negative bit: the general path
    settles those).
    Any other offset is returned as it is."""
    if not isinstance(offset, _TENSOR):
        return offset
    try:
        return offset.numpy()
    except (TypeError, RuntimeError):  # a dtype NumPy lacks; a negative bit
        return None


cdef bint _intake_tensor(object x, ArrayDesc *d, int min_ndim, bint half_too=False) except -1:
    """Describe x into d when it is a tensor a front door serves: a plain
    torch.Tensor or Parameter (no subclass) of float32 or float64 (half_too:
    or float16 or bfloat16) on the CPU, strided, whose memory holds its
    values (no negative bit, not a ZeroTensor), aligned, with min_ndim to
    FPE_MAX_DIMS dimensions, size > 0 and no axes that may overlap. False for
    anything else. (Whether autograd or a compiler may see the call is the
    caller's question: fastpe.torch's eager route.)"""
    cdef object kind = type(x)
    if _TENSOR is None or (kind is not _TENSOR and kind is not _PARAMETER):
        return False
    dtype = x.dtype
    if dtype is _TORCH_FLOAT32:
        d.element = FPE_FLOAT32
        d.itemsize = 4
    elif dtype is _TORCH_FLOAT64:
        d.element = FPE_FLOAT64
        d.itemsize = 8
    elif half_too and (dtype is _TORCH_FLOAT16 or dtype is _TORCH_BFLOAT16):
        d.element = FPE_FLOAT16 if dtype is _TORCH_FLOAT16 else FPE_BFLOAT16
        d.itemsize = 2
    else:
        return False
    if not x.is_cpu or x.layout is not _TORCH_STRIDED or x.is_neg():
        return False  # (a ZeroTensor's data pointer is null: _tensor_data_into refuses it)
    cdef object shape = x.shape  # a torch.Size, which is a tuple: read in place, not copied
    cdef int axis
    if not PyTuple_Check(shape):
        return False
    d.ndim = PyTuple_GET_SIZE(shape)
    if d.ndim < min_ndim or d.ndim > FPE_MAX_DIMS:
        return False
    for axis in range(d.ndim):
        d.shape[axis] = <object>PyTuple_GET_ITEM(shape, axis)
    if not _tensor_data_into(x, d):
        return False
    return d.size > 0 and not internal_overlap(d)


cdef bint _tensor_data_into(object x, ArrayDesc *d) except -1:
    """d's data, strides (in bytes; the tensor's are in elements) and size,
    of a tensor of d's ndim, shape and itemsize; False when its data is not
    aligned to its items, or the pointer is null (a ZeroTensor: no memory)."""
    cdef tuple strides = x.stride()
    cdef uintptr_t address = <uintptr_t>x.data_ptr()
    cdef int axis
    if address == 0 or address % d.itemsize or len(strides) != d.ndim:
        return False
    d.data = <char *>address
    d.size = 1
    for axis in range(d.ndim):
        d.strides[axis] = <fpe_idx>strides[axis] * d.itemsize
        d.size *= d.shape[axis]
    return True


cdef object _new_tensor_like(object x, const ArrayDesc *source, ArrayDesc *d):
    """torch.empty_like(x), described into d: x's shape and dtype (source
    describes x), the new tensor's own data and strides."""
    out = _EMPTY_LIKE(x)
    d.element = source.element
    d.itemsize = source.itemsize
    d.ndim = source.ndim
    d.shape = source.shape
    if not _tensor_data_into(out, d) or internal_overlap(d):
        raise AssertionError("torch.empty_like made a tensor the kernels cannot write")
    return out


cdef bint _offset_value(object offset, double *value) except -1:
    """offset as the float64 the general path makes of it, when it is a
    scalar a front door takes: a Python int or float, a NumPy integer or
    float16/32/64 scalar, or a 0-d NumPy array of those types (what a 0-d
    tensor's view is; never a bool), finite and within the declaration's
    position limit (integers compared as integers, before rounding, as the
    general path does)."""
    cdef object kind = type(offset)
    cdef int typenum
    if kind is cnp.ndarray and cnp.PyArray_NDIM(<cnp.ndarray>offset) == 0:
        typenum = cnp.PyArray_TYPE(<cnp.ndarray>offset)
        if typenum == cnp.NPY_DOUBLE or typenum == cnp.NPY_FLOAT or typenum == cnp.NPY_FLOAT16:
            value[0] = float(offset)
        elif cnp.PyArray_ISINTEGER(<cnp.ndarray>offset) and not _views.is_bfloat16(offset.dtype):
            # (fastpe.torch's bfloat16 views are uint16 bits, tagged: the general path widens them)
            if abs(int(offset)) >= _INT_LIMIT:
                return False
            value[0] = float(int(offset))
        else:
            return False
    elif kind is float or kind is np.float64 or kind is np.float32 or kind is np.float16:
        value[0] = float(offset)
    elif kind is int or isinstance(offset, np.integer):
        if abs(int(offset)) >= _INT_LIMIT:
            return False
        value[0] = float(offset)
    else:
        return False
    return isfinite(value[0]) and fabs(value[0]) < _LIMIT


cdef bint _scale_value(object scale, double *value) except -1:
    """scale as the float64 the general path passes the kernels, when it is
    one a front door takes: None (1.0), or a finite Python int or float or
    NumPy integer or float16/32/64 scalar (never a bool)."""
    cdef object kind = type(scale)
    if scale is None:
        value[0] = 1.0
        return True
    if not (kind is float or kind is int or kind is np.float64 or kind is np.float32 or kind is np.float16
            or isinstance(scale, np.integer)):
        return False
    try:
        value[0] = float(scale)
    except OverflowError:
        return False  # an int beyond float64: the general path's error
    return isfinite(value[0])


cdef class _Indices:
    """A buffer of n fpe_idx (freed with the object)."""
    cdef fpe_idx *data

    def __cinit__(self, fpe_idx n):
        self.data = <fpe_idx *>malloc(max(n, 1) * sizeof(fpe_idx))
        if self.data == NULL:
            raise MemoryError(f"cannot allocate {n} row offsets")

    def __dealloc__(self):
        free(self.data)


cdef _Indices _row_offsets(const ArrayDesc *d, int n_axes, fpe_idx *n_rows):
    """The byte offsets of every index over d's first n_axes axes, C order (the kernels' row_offsets_into)."""
    cdef fpe_idx n = 1
    cdef int axis
    for axis in range(n_axes):
        n *= d.shape[axis]
    cdef _Indices rows = _Indices(n)
    row_offsets_into(d, n_axes, rows.data)
    n_rows[0] = n
    return rows


cdef bint _apart_from_earlier(char **lows, char **highs, Py_ssize_t k) noexcept:
    """Whether the memory bounds [lows[k], highs[k]) share no byte with any of
    bounds 0 .. k - 1 (each from memory_bounds)."""
    cdef Py_ssize_t j
    for j in range(k):
        if lows[k] < highs[j] and lows[j] < highs[k]:
            return False
    return True


cdef int _rotate_described(ArrayDesc *descs, Py_ssize_t n_arrays, Py_ssize_t i, bint apart,
                           const fpe_idx *table_idx, const CosSin *cs, int n_threads) except -1:
    """Rotate the vector rows of array i (descs[i]) by the cos/sin rows
    table_idx[r] of cs: in place, or (apart) into descs[n_arrays + i], of the
    same shape."""
    cdef const ArrayDesc *d = &descs[i]
    cdef fpe_idx n_rows
    cdef _Indices offsets = _row_offsets(d, d.ndim - 1, &n_rows)
    cdef _Indices out_offsets
    if apart:
        out_offsets = _row_offsets(&descs[n_arrays + i], d.ndim - 1, &n_rows)
        rotate_rows(&descs[n_arrays + i], out_offsets.data, d, offsets.data, n_rows, table_idx, cs, n_threads)
    else:
        rotate_rows(d, offsets.data, NULL, NULL, n_rows, table_idx, cs, n_threads)
    return 0
