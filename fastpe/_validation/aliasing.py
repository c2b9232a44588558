"""Aliasing (docs/aliasing.rst): inputs and outputs that share memory.

Any array a call reads may share memory with an array it writes, and the
result is what it would be had every input been read before anything was
written. An input that overlaps an output is read from a private copy
(read_apart); outputs that partly overlap one another have no defined result
and are refused before anything is written. The common case, arrays far
apart, costs one bounds comparison per pair. An array written in place must
not overlap itself (has_internal_overlap).
"""

import numpy as np

from .. import _kernels

# Work bound of NumPy's exact overlap solver. Strided views of one buffer
# (heads, fused q/k/v columns, reversed or shifted rows) are settled far
# below it; a problem it cannot settle counts as an overlap.
_OVERLAP_MAX_WORK = 1 << 20
# NumPy 1.25 moved its exceptions to np.exceptions; older ones have it in numpy itself.
_TooHardError = np.exceptions.TooHardError if hasattr(np, "exceptions") else np.TooHardError


def shares_memory(a, b):
    """True if a and b have an element in common (True too when NumPy's solver gives up)."""
    if not np.may_share_memory(a, b):  # bounds only: the common, cheap answer
        return False
    try:
        return np.shares_memory(a, b, max_work=_OVERLAP_MAX_WORK)
    except _TooHardError:
        return True


def same_view(a, b):
    """a and b are the same elements in the same order (x written in place as out).
    The stride of an axis of length 1 is never used, so it may differ."""
    if a is b:
        return True
    if a.shape != b.shape or a.dtype != b.dtype or not np.may_share_memory(a, b):
        return False  # the cheap tests first: building __array_interface__ costs microseconds
    if not all(n == 1 or sa == sb for n, sa, sb in zip(a.shape, a.strides, b.strides)):
        return False
    return a.__array_interface__["data"][0] == b.__array_interface__["data"][0]


def read_apart(value, outputs):
    """value, or a private copy of it when it shares memory with one of `outputs`.

    For inputs that are read while the outputs are written (tables,
    positions, offsets, frequencies, slopes): a copy taken before the first
    write makes the call see every input as it was."""
    if isinstance(value, np.ndarray) and value.size:
        for dst in outputs:
            if dst is not None and shares_memory(value, dst):
                return value.copy()
    return value


def has_internal_overlap(a):
    """True if two elements of `a` may share memory (zero or crossing strides):
    the kernels' own test (_kernels_arrays.pxi, internal_overlap), which the
    front doors apply too. Rejects nothing NumPy itself allocates."""
    return _kernels.has_internal_overlap(a)
