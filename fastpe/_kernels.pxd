# cython: language_level=3
# What fastpe._kernels offers the other compiled module (fastpe._frontdoor):
# the description of an array, the plan, the work of each kernel as named
# structures, and the entry points that take them. The Python-level entry
# points of _kernels.pyx build the same structures from NumPy arrays, so both
# modules reach one set of loops.
cimport numpy as cnp

ctypedef Py_ssize_t fpe_idx

cdef enum:
    # NumPy's NPY_MAXDIMS: the most axes an array description holds.
    FPE_MAX_DIMS = 64
    # Positions between libm seeds (the canonical seed points are its multiples, see _kernels.pyx).
    FPE_SEED_GRID = 256

# How an array's elements are stored.
cdef enum Element:
    FPE_FLOAT32 = 0
    FPE_FLOAT64 = 1
    FPE_FLOAT16 = 2
    FPE_BFLOAT16 = 3

# Which channels a rotation pairs (fastpe's rotary layouts).
cdef enum PairLayout:
    FPE_PAIRS_HALF = 0         # channel k with k + rotary_dim / 2 (GPT-NeoX, HF's rotate_half)
    FPE_PAIRS_INTERLEAVED = 1  # channel 2k with 2k + 1 (GPT-J)


cdef struct ArrayDesc:
    # An array as the kernels see it: where its first element is, its element
    # type and its axes (byte strides). Built from an ndarray by
    # describe_ndarray; any other source of the same facts (a tensor's data
    # pointer, shape, strides and dtype) can fill one too.
    char *data
    int element                # Element
    int ndim
    fpe_idx itemsize
    fpe_idx size
    fpe_idx shape[FPE_MAX_DIMS]
    fpe_idx strides[FPE_MAX_DIMS]


cdef struct PlanView:
    # What the sinusoid loops read of a Plan.
    const double *freq        # the pair frequencies w_k = freq[k] + freq_lo[k] (a double-double)
    const double *freq_lo
    const double *step_cos    # cos(w_k), sin(w_k): one position's rotation
    const double *step_sin
    fpe_idx n_freq
    fpe_idx n_sin             # frequencies 0..n_sin-1 have a sine column,
    fpe_idx n_cos             # 0..n_cos-1 a cosine column
    fpe_idx sin_col           # column of frequency k's sine: sin_col + k * col_step
    fpe_idx cos_col           # column of its cosine:        cos_col + k * col_step
    fpe_idx col_step
    const fpe_idx *zero_cols  # columns no frequency writes: they hold 0
    fpe_idx n_zero
    fpe_idx n_cols
    # Set per call on a copy: a position whose encoding is all zeros (NaN:
    # none), and n_cols zeros (of any storage type) applied there.
    double zero_pos
    const void *zeros


cdef class Plan:
    """How one encoding's columns are made (read-only)."""
    cdef readonly object freq
    cdef readonly object freq_lo
    cdef readonly object step_cos
    cdef readonly object step_sin
    cdef readonly object zero_cols
    cdef readonly fpe_idx n_cols, n_sin, n_cos, sin_col, cos_col, col_step
    cdef readonly Py_ssize_t nbytes
    cdef PlanView view


cdef struct Positions:
    # Consecutive positions p0[seq] + t, t < T, for each sequence seq, whose
    # rows are the targets seq_ptr[seq] .. seq_ptr[seq + 1].
    const double *p0
    const fpe_idx *seq_ptr
    fpe_idx n_seq
    fpe_idx T


cdef struct BlockedTable:
    # A table of float32 or float64 rows held in blocks of rows_per_block
    # rows (one block: an ordinary table): row j is row j % rows_per_block
    # of block j // rows_per_block.
    const char **blocks
    fpe_idx n_blocks
    fpe_idx rows_per_block
    fpe_idx row_stride        # bytes between the rows of a block
    fpe_idx n_cols
    int element               # FPE_FLOAT32 or FPE_FLOAT64 (or x's own 16-bit type: _one_block)


cdef struct CosSin:
    # Float64 cos and sin rows of one row stride, and the channel pairs they rotate.
    const char *cos
    const char *sin
    fpe_idx row_stride
    fpe_idx n_pairs
    int layout                # PairLayout


# ------------------------------------------------------------ arrays

cdef int describe_ndarray(cnp.ndarray a, ArrayDesc *d) except -1
cdef fpe_idx column_step(const ArrayDesc *a) noexcept
cdef bint internal_overlap(const ArrayDesc *a) noexcept
cdef void memory_bounds(const ArrayDesc *a, char **low, char **high) noexcept
cdef void row_offsets_into(const ArrayDesc *a, int n_axes, fpe_idx *out) noexcept
cdef bint shared_rows_prepared(int element, double scale) noexcept nogil
cdef void sequence_index_into(const fpe_idx *shape, int ndim, int seq_axis, fpe_idx *out) noexcept

# ------------------------------------------------------------ kernels
# dst: the array written; src: the array read (NULL: dst itself, in place);
# dst_rows / src_rows: byte offsets of the rows each kernel walks (see each
# entry point in _kernels.pyx). n_threads: the team size (fastpe._runtime).

cdef int sinusoid_grid(const ArrayDesc *dst, const fpe_idx *dst_rows, const ArrayDesc *src,
                       const fpe_idx *src_rows, Plan plan, const Positions *at, bint store, double scale,
                       double zero_pos, int n_threads) except -1
cdef int table_grid(const ArrayDesc *dst, const fpe_idx *dst_rows, const ArrayDesc *src, const fpe_idx *src_rows,
                    const BlockedTable *table, const fpe_idx *p0, const fpe_idx *seq_ptr, fpe_idx n_seq, fpe_idx T,
                    double scale, int n_threads) except -1
cdef int rotate_rows(const ArrayDesc *dst, const fpe_idx *dst_rows, const ArrayDesc *src, const fpe_idx *src_rows,
                     fpe_idx n_rows, const fpe_idx *table_idx, const CosSin *rot, int n_threads) except -1
