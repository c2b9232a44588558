# Part of fastpe/_kernels.pyx: the plan the sinusoid loops read.

cdef class Plan:
    """How one encoding's columns are made (read-only).

    Frequency k (w_k = freq[k] + freq_lo[k], exactly: see fastpe._formulas,
    "Exact frequencies") writes its sine to column sin_col + k*col_step when
    k < n_sin and its cosine to cos_col + k*col_step when k < n_cos;
    zero_cols lists the columns no frequency writes (they hold 0). Built by
    fastpe._plan from an encoding's frequencies and columns; the loops read
    its PlanView."""

    def __init__(self, freq, freq_lo, n_cols, *, sin_col, cos_col, col_step, n_sin, n_cos):
        """freq, freq_lo: the high and low parts of the exact frequencies (float64)."""
        # Private copies: the caller's inv_freq stays theirs (and writeable).
        self.freq = np.array(freq, dtype=np.float64, copy=True)
        self.freq_lo = np.array(freq_lo, dtype=np.float64, copy=True)
        # One position's rotation per frequency: cos and sin of w_k = hi + lo,
        # rounded once (to within an ulp or two); with lo = 0, cos(hi) and sin(hi).
        # libm's, as the seeds' are: NumPy's vector loops differ between its
        # releases and CPUs (NumPy 1.24's AVX-512 cos by up to 4 ulps), which
        # moved the float64 results by 1e-15 at small positions.
        self.step_cos, self.step_sin = _step_rotations(self.freq, self.freq_lo)
        self.n_cols = n_cols
        self.sin_col, self.cos_col, self.col_step = sin_col, cos_col, col_step
        self.n_sin, self.n_cos = n_sin, n_cos
        written = np.zeros(self.n_cols, dtype=bool)
        written[self.sin_col + np.arange(self.n_sin) * self.col_step] = True
        written[self.cos_col + np.arange(self.n_cos) * self.col_step] = True
        self.zero_cols = np.flatnonzero(~written).astype(np.intp)
        arrays = (self.freq, self.freq_lo, self.step_cos, self.step_sin, self.zero_cols)
        for a in arrays:
            a.flags.writeable = False
        self.nbytes = sum(a.nbytes for a in arrays)
        self.view.freq = <const double *>cnp.PyArray_DATA(self.freq)
        self.view.freq_lo = <const double *>cnp.PyArray_DATA(self.freq_lo)
        self.view.step_cos = <const double *>cnp.PyArray_DATA(self.step_cos)
        self.view.step_sin = <const double *>cnp.PyArray_DATA(self.step_sin)
        self.view.n_freq = self.freq.shape[0]
        self.view.n_sin, self.view.n_cos = self.n_sin, self.n_cos
        self.view.sin_col, self.view.cos_col, self.view.col_step = self.sin_col, self.cos_col, self.col_step
        self.view.zero_cols = <const fpe_idx *>cnp.PyArray_DATA(self.zero_cols)
        self.view.n_zero = self.zero_cols.shape[0]
        self.view.n_cols = self.n_cols
        self.view.zero_pos = NAN
        self.view.zeros = NULL


cdef tuple _step_rotations(const double[::1] hi, const double[::1] lo):
    """(cos w_k, sin w_k) of w_k = hi[k] + lo[k] by libm's cos and sin of each part and the angle-sum rule."""
    cdef Py_ssize_t k, n = hi.shape[0]
    step_cos, step_sin = np.empty(n), np.empty(n)
    cdef double[::1] c = step_cos, s = step_sin
    cdef double ch, sh, cl, sl
    for k in range(n):
        ch, sh, cl, sl = libm_cos(hi[k]), libm_sin(hi[k]), libm_cos(lo[k]), libm_sin(lo[k])
        c[k] = ch * cl - sh * sl
        s[k] = sh * cl + ch * sl
    return step_cos, step_sin
