"""The memory a call reads and writes.

Aliasing (docs/aliasing.rst): any array a call reads may share memory with an
array it writes, and the result is what it would be had every input been
read before anything was written. An input that overlaps an output is read
from a private copy; outputs that partly overlap one another have no defined
result and are refused before anything is written. The common case, arrays
far apart, costs one bounds comparison per pair.

Sizes: every array whose size the caller chooses (tables, encodings, grids)
is allocated by new_array, so a size that cannot be held raises MemoryError
(or ValueError when its byte count overflows the index type) with the shape
and the bytes asked for.
"""

import math

import numpy as np

# Work bound of NumPy's exact overlap solver. Strided views of one buffer
# (heads, fused q/k/v columns, reversed or shifted rows) are settled far
# below it; a problem it cannot settle counts as an overlap.
_OVERLAP_MAX_WORK = 1 << 20
_MAX_BYTES = np.iinfo(np.intp).max


def shares_memory(a, b):
    """True if a and b have an element in common (True too when NumPy's solver gives up)."""
    if not np.may_share_memory(a, b):  # bounds only: the common, cheap answer
        return False
    try:
        return np.shares_memory(a, b, max_work=_OVERLAP_MAX_WORK)
    except np.exceptions.TooHardError:
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


def _size_error(what, shape, dtype, error):
    """The error for an array NumPy could not create: ValueError when its bytes
    overflow the index type, MemoryError when they cannot be had, else `error`."""
    shape = tuple(int(s) for s in shape)
    # NumPy refuses an array whose bytes, counting empty axes as length 1
    # (its strides), exceed the index type, even when it holds no element.
    span = math.prod(max(s, 1) for s in shape) * dtype.itemsize
    if span > _MAX_BYTES:
        return ValueError(f"{what} of shape {shape} and dtype {dtype.name} would span {span} bytes, more than an "
                          f"array can index ({_MAX_BYTES} bytes)")
    if isinstance(error, MemoryError):
        nbytes = math.prod(shape) * dtype.itemsize
        return MemoryError(f"{what} of shape {shape} and dtype {dtype.name} needs {nbytes} bytes "
                           f"({nbytes / 2**30:.3g} GiB), which cannot be allocated")
    return error


def new_array(shape, dtype, what):
    """np.empty(shape, dtype), or MemoryError/ValueError naming `what`, the shape and the bytes."""
    try:
        return np.empty(shape, dtype=dtype)
    except (MemoryError, OverflowError, ValueError) as exc:
        error = _size_error(what, shape, np.dtype(dtype), exc)
    raise error


def float_range(n, what):
    """np.arange(n) in float64 (frequency and position indices), with new_array's errors."""
    try:
        return np.arange(n, dtype=np.float64)
    except (MemoryError, OverflowError, ValueError) as exc:
        error = _size_error(what, (n,), np.dtype(np.float64), exc)
    raise error
