# The checks of add_sinusoidal's fast path that apply_rotary's fast path
# (fastpe/_rotary_fastpath.pyx) shares: one implementation of each rule.
cimport numpy as cnp

cdef bint _offset_value(object offset, double *value)
cdef bint _may_overlap(cnp.ndarray a)
cdef bint _common_array(cnp.ndarray a)
