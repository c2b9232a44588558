# Part of fastpe/_kernels.pyx: bandwidth probes, the ceiling the benchmark compares with.

cdef void _probe_run(floating *x, floating value, fpe_idx n, int fill, int n_threads) noexcept nogil:
    cdef fpe_idx i, lo, hi, chunk = (n + n_threads - 1) // n_threads
    for i in prange(n_threads, schedule="static", num_threads=n_threads):
        lo = i * chunk
        hi = min(lo + chunk, n)
        if hi > lo:
            if floating is float:
                if fill:
                    fpe_probe_fill_f32(x + lo, value, hi - lo)
                else:
                    fpe_probe_add_f32(x + lo, value, hi - lo)
            else:
                if fill:
                    fpe_probe_fill_f64(x + lo, value, hi - lo)
                else:
                    fpe_probe_add_f64(x + lo, value, hi - lo)


cdef void _probe_run16(uint16_t *x, fpe_idx n, int fill, int n_threads) noexcept nogil:
    cdef fpe_idx i, lo, hi, chunk = (n + n_threads - 1) // n_threads
    for i in prange(n_threads, schedule="static", num_threads=n_threads):
        lo = i * chunk
        hi = min(lo + chunk, n)
        if hi > lo:
            if fill:
                fpe_probe_fill_u16(x + lo, 0, hi - lo)
            else:
                fpe_probe_add_u16(x + lo, 1, hi - lo)


def probe(cnp.ndarray x, double value, bint fill, int n_threads):
    """The machine's ceiling: x += value (fill=False) or x[:] = value over a
    C-contiguous array, split into one contiguous piece per thread. A 16-bit
    array gets the same traffic as integers (its bits change, not its meaning)."""
    cdef fpe_idx n = cnp.PyArray_SIZE(x)
    cdef void *data = cnp.PyArray_DATA(x)
    if x.itemsize == 2:
        with nogil:
            _probe_run16(<uint16_t *>data, n, fill, n_threads)
    elif cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32:
        with nogil:
            _probe_run(<float *>data, <float>value, n, fill, n_threads)
    else:
        with nogil:
            _probe_run(<double *>data, value, n, fill, n_threads)
