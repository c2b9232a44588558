# Part of fastpe/_frontdoor.pyx: what the front doors take in.
#
# An array enters as an ArrayDesc (fastpe/_kernels.pxd); from there on the
# front doors read only the description. _intake_ndarray recognises the
# arrays they serve; another source (a tensor's data pointer, shape,
# strides and dtype code) would need an intake of its own and nothing else.

cdef bint _intake_ndarray(object x, ArrayDesc *d, int min_ndim) except -1:
    """Describe x into d when it is an array a front door serves: an exact
    numpy.ndarray (no subclass, no tensor) of float32 or float64 in native
    byte order, writeable, aligned, with at least min_ndim dimensions (the
    declaration's), size > 0 and no axes that may overlap (the check's own
    internal_overlap). False for anything else."""
    if type(x) is not cnp.ndarray:
        return False
    cdef cnp.ndarray a = <cnp.ndarray>x
    cdef int typenum = cnp.PyArray_TYPE(a)
    if typenum != cnp.NPY_FLOAT and typenum != cnp.NPY_DOUBLE:
        return False
    if not (cnp.PyArray_ISNOTSWAPPED(a) and cnp.PyArray_ISWRITEABLE(a) and cnp.PyArray_ISALIGNED(a)):
        return False
    if cnp.PyArray_NDIM(a) < min_ndim or cnp.PyArray_SIZE(a) == 0 or cnp.PyArray_NDIM(a) > FPE_MAX_DIMS:
        return False
    describe_ndarray(a, d)
    return not internal_overlap(d)


cdef bint _offset_value(object offset, double *value) except -1:
    """offset as the float64 the general path makes of it, when it is a
    scalar a front door takes: a Python int or float, or a NumPy integer or
    float16/32/64 scalar (never a bool), finite and within the declaration's
    position limit (integers compared as integers, before rounding, as the
    general path does)."""
    cdef object kind = type(offset)
    if kind is float or kind is np.float64 or kind is np.float32 or kind is np.float16:
        value[0] = float(offset)
    elif kind is int or isinstance(offset, np.integer):
        if abs(int(offset)) >= _INT_LIMIT:
            return False
        value[0] = float(offset)
    else:
        return False
    return isfinite(value[0]) and fabs(value[0]) < _LIMIT


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
