# Part of fastpe/_kernels.pyx: additive attention biases (ALiBi, T5 buckets).
#
# Nothing here validates: fastpe._bias checks every argument and builds, per
# head, the bias of every relative distance (or key) the call needs, in float64
# rounded once to the scores' dtype, before calling in: O(H * (Tq + Tk)).
# Both biases are then one kernel: row i of (b, h) adds a shifted window of
# that lookup, bias[j] = lut[start[b] + h * lut_hs - i * istep + j], a
# unit-stride float add the compiler vectorises. 16-bit scores (float16,
# bfloat16) take a float64 lookup instead: the sum is formed in float64 and
# rounded once, by the same leaf loops as the other kernels. Scores are passed
# as raw pointers plus byte strides, so any strided layout (negative strides,
# transposed axes) is written in place.
#
# Work items are (batch, head, block of query rows); each thread takes a
# contiguous run of items (schedule="static"). Every element is read and
# written once.

cdef struct Scores:
    char *dst
    const char *src
    fpe_idx B, H, Tq, Tk
    fpe_idx d_sb, d_sh, d_sq         # dst byte strides
    fpe_idx s_sb, s_sh, s_sq         # src byte strides
    fpe_idx dk, sk                   # key (column) steps, in elements
    int mode
    int kind                         # FPE_STORAGE_* (_modes.h)


cdef struct Bias:
    # bias(b, h, i, j) = lut[lut_start[b] + h * lut_hs - i * istep + j]; the
    # lookup itself is passed typed (see _bias_run).
    const fpe_idx *lut_start
    fpe_idx lut_hs
    fpe_idx istep


# ------------------------------------------------------------ leaf loop
# The unit-stride variants are separate so the compiler vectorises them.

cdef inline void _lookup_row(floating *dst, const floating *src, fpe_idx dk, fpe_idx sk,
                             const floating *bias, fpe_idx n, bint inplace) noexcept nogil:
    cdef fpe_idx j
    if dk == 1 and (inplace or sk == 1):
        if inplace:
            for j in range(n):
                dst[j] = dst[j] + bias[j]
        else:
            for j in range(n):
                dst[j] = src[j] + bias[j]
    elif inplace:
        for j in range(n):
            dst[j * dk] = dst[j * dk] + bias[j]
    else:
        for j in range(n):
            dst[j * dk] = src[j * sk] + bias[j]


cdef inline void _lookup_half_row(fpe_half *dst, const fpe_half *src, fpe_idx dk, fpe_idx sk,
                                  const double *bias, fpe_idx n, bint inplace, int kind) noexcept nogil:
    cdef int mode = FPE_MODE_ADD_INPLACE if inplace else FPE_MODE_ADD_TO
    if kind == FPE_STORAGE_F16:
        fpe_apply_f16_f64(dst, dk, src, sk, bias, 1.0, n, mode)
    else:
        fpe_apply_bf16_f64(dst, dk, src, sk, bias, 1.0, n, mode)


# ------------------------------------------------------------ driver

cdef void _bias_item(const floating *lut_base, const Scores *sc, const Bias *bi, fpe_idx block,
                     fpe_idx item) noexcept nogil:
    cdef fpe_idx n_blocks = (sc.Tq + block - 1) // block
    cdef fpe_idx bh = item // n_blocks
    cdef fpe_idx i0 = (item % n_blocks) * block
    cdef fpe_idx i1 = min(i0 + block, sc.Tq)
    cdef fpe_idx b = bh // sc.H, h = bh % sc.H, i
    cdef char *drow = sc.dst + b * sc.d_sb + h * sc.d_sh
    cdef const char *srow = sc.src + b * sc.s_sb + h * sc.s_sh
    cdef fpe_idx dk = sc.dk, sk = sc.sk
    cdef bint inplace = sc.mode == FPE_MODE_ADD_INPLACE
    cdef const floating *lut = lut_base + bi.lut_start[b] + h * bi.lut_hs
    for i in range(i0, i1):
        if sc.kind != FPE_STORAGE_NATIVE:
            _lookup_half_row(<fpe_half *>(drow + i * sc.d_sq), <const fpe_half *>(srow + i * sc.s_sq), dk, sk,
                             <const double *>(lut - i * bi.istep), sc.Tk, inplace, sc.kind)
        else:
            _lookup_row(<floating *>(drow + i * sc.d_sq), <const floating *>(srow + i * sc.s_sq), dk, sk,
                        lut - i * bi.istep, sc.Tk, inplace)


cdef void _bias_run(const floating *lut, const Scores *sc, const Bias *bi, fpe_idx block, fpe_idx n_items,
               int n_threads) noexcept nogil:
    """lut: the lookup, in the type the sum is formed in (the scores' dtype;
    float64 for 16-bit scores)."""
    cdef fpe_idx item
    if n_threads == 1:
        for item in range(n_items):
            _bias_item(lut, sc, bi, block, item)
    else:
        for item in prange(n_items, schedule="static", num_threads=n_threads):
            _bias_item(lut, sc, bi, block, item)


cdef void _add_bias(const ArrayDesc *dst, const ArrayDesc *src, int mode, const ArrayDesc *lut,
                    const fpe_idx *lut_start, fpe_idx lut_hs, fpe_idx istep, fpe_idx block, int n_threads) noexcept:
    cdef Scores sc
    cdef Bias bi
    sc.dst = dst.data
    sc.src = <const char *>src.data
    sc.B, sc.H, sc.Tq, sc.Tk = dst.shape[0], dst.shape[1], dst.shape[2], dst.shape[3]
    sc.d_sb, sc.d_sh, sc.d_sq = dst.strides[0], dst.strides[1], dst.strides[2]
    sc.s_sb, sc.s_sh, sc.s_sq = src.strides[0], src.strides[1], src.strides[2]
    sc.dk, sc.sk = column_step(dst), column_step(src)
    sc.mode = mode
    sc.kind = _storage_kind(dst.element)
    bi.lut_start = lut_start
    bi.lut_hs = lut_hs
    bi.istep = istep
    cdef fpe_idx n_items = sc.B * sc.H * ((sc.Tq + block - 1) // block)
    with nogil:
        if lut.element == FPE_FLOAT32:
            _bias_run(<const float *>lut.data, &sc, &bi, block, n_items, n_threads)
        else:
            _bias_run(<const double *>lut.data, &sc, &bi, block, n_items, n_threads)


def add_bias(cnp.ndarray dst, cnp.ndarray lut, const fpe_idx[::1] lut_start, fpe_idx lut_hs, fpe_idx istep,
             fpe_idx block, int n_threads, *, cnp.ndarray src=None):
    """Add a bias to 4-D scores (B, H, Tq, Tk), in place or (src given: of
    dst's shape and dtype, the two disjoint) dst = src + bias:
    bias(b, h, i, j) = lut[lut_start[b] + h * lut_hs - i * istep + j], lut
    C-contiguous in dst's dtype (float64 for 16-bit scores), lut_start
    (B,); every index in range. Items are (b, h, block of `block` query rows)."""
    cdef ArrayDesc d, s, l
    describe_ndarray(dst, &d)
    describe_ndarray(lut, &l)
    if not cnp.PyArray_IS_C_CONTIGUOUS(lut) or l.element > FPE_FLOAT64:
        raise ValueError("the lookup must be a C-contiguous float32 or float64 array")
    if src is None:
        _add_bias(&d, &d, FPE_MODE_ADD_INPLACE, &l, &lut_start[0], lut_hs, istep, block, n_threads)
    else:
        describe_ndarray(src, &s)
        _add_bias(&d, &s, FPE_MODE_ADD_TO, &l, &lut_start[0], lut_hs, istep, block, n_threads)
