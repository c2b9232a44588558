"""What the tests of fastpe.dask (tests/dask/) share: the NumPy values of Dask
arguments, chunkings of every kind, misaligned copies (as pickle protocol 5
may deliver a block to a worker process), the dtypes the eager functions take,
the comparison of a computed result with the eager call's bits and an
error with the eager call's error, and a patch under which any kernel that
runs raises (building a graph must compute nothing)."""

import numpy as np
import pytest
from optional import extra_import
from util import add_tolerance, assert_same_bits, assert_within, max_abs_position_of_add

import fastpe
from fastpe import _frontdoor, _kernels, reference

da = extra_import("dask.array", "test")


# The kernels' Python-level entry points. The front doors reach the kernels
# in C: they may run (and hand the call on, None) but must serve nothing.
KERNEL_ENTRY_POINTS = ("sinusoid_grid_rows", "sinusoid_grouped_rows", "table_grid_rows", "table_grouped_rows",
                       "rotate_vector_rows", "add_bias")
FRONT_DOORS = ("add_sinusoidal", "apply_rotary")


def forbid_kernels(patch):
    """Make every kernel entry point raise, and a front door that serves a
    call raise, until `patch` (a monkeypatch) is undone."""
    def forbidden(*args, **kwargs):
        raise AssertionError("a kernel ran while the graph was being built")

    def hands_on(front_door):
        def checked(*args):
            if front_door(*args) is not None:
                raise AssertionError("a kernel ran while the graph was being built")

        return checked

    for name in KERNEL_ENTRY_POINTS:
        patch.setattr(_kernels, name, forbidden)
    for name in FRONT_DOORS:
        patch.setattr(_frontdoor, name, hands_on(getattr(_frontdoor, name)))


def numpy_of(value):
    return value.compute() if isinstance(value, da.Array) else value


def numpy_kwargs(kwargs):
    return {name: numpy_of(value) for name, value in kwargs.items()}


def chunkings(shape):
    """{name: chunks} of an array of `shape`: one block, even blocks, uneven
    blocks on every axis, and single elements everywhere."""
    def uneven(n):
        return (n,) if n < 3 else (1, n - 3, 2) if n > 3 else (1, 2)

    def halves(n):
        return max(1, n // 2)

    return {
        "one": -1,
        "halves": tuple(halves(n) for n in shape),
        "uneven": tuple(uneven(n) for n in shape),
        "single": (1,) * len(shape),
    }


def ulp_tolerance(dtype, expected, scaled=0.0):
    """Kernel vs reference for a sum ``x * scale + term``: one ulp of dtype at
    |expected| + 1 (the reference rounds the float64 sum once, the kernel may
    round twice or fuse the multiply-add), plus the rounding of ``x * scale``
    (two ulps of its magnitude `scaled`, which may exceed the result's)."""
    # np.finfo knows ml_dtypes' bfloat16 only from NumPy 1.25 on: its eps written out
    eps = 2.0**-7 if np.dtype(dtype).name == "bfloat16" else float(np.finfo(dtype).eps)
    return eps * (1.0 + np.abs(np.asarray(expected).astype(np.float64))) + 2 * eps * np.abs(scaled)


def misaligned(arr):
    """A copy of arr at an address one byte past its dtype's alignment (a
    read-only input fastpe must read as it is, or copy)."""
    arr = np.ascontiguousarray(arr)
    raw = np.zeros(arr.nbytes + 1, np.uint8)
    view = raw[1:].view(arr.dtype).reshape(arr.shape)
    view[...] = arr
    if arr.dtype.itemsize > 1 and arr.size:
        assert not view.flags.aligned
    return view


def assert_eager_bits(result, eager, msg):
    assert isinstance(result, np.ndarray), f"{msg}: not computed ({type(result).__name__})"
    assert_same_bits(result, eager, f"{msg} vs the eager call")


def error_of(call):
    """(type, message) of the error call() raises; it must raise."""
    with pytest.raises(Exception) as info:
        call()
    return type(info.value), str(info.value)


def assert_same_error(lazy_call, eager_call, msg, *, shape_shown=False):
    """The lazy call raises when the graph is built, with the eager call's
    exception type and message. shape_shown: a message that prints the array's
    shape shows the zero-size stand-in's (docs/dask.rst), so it is compared
    up to that shape."""
    lazy, eager = error_of(lazy_call), error_of(eager_call)
    assert lazy[0] is eager[0], f"{msg}: {lazy[0].__name__}({lazy[1]}) != eager {eager[0].__name__}({eager[1]})"
    if shape_shown:
        assert lazy[1].split("got shape")[0] == eager[1].split("got shape")[0], f"{msg}: {lazy[1]!r} != {eager[1]!r}"
    else:
        assert lazy[1] == eager[1], f"{msg}: {lazy[1]!r} != eager {eager[1]!r}"


def check_add_sinusoidal(result, x, msg, **kwargs):
    """A computed fastpe.dask.add_sinusoidal result against the eager call and the reference on copies of x."""
    kwargs = numpy_kwargs(kwargs)
    expected = reference.add_sinusoidal(x.copy(), **kwargs)
    eager = fastpe.add_sinusoidal(x.copy(), **kwargs)
    scale = kwargs.get("scale")
    xs_abs = np.abs(x.astype(np.float64) * (1.0 if scale is None else scale))
    pmax = max_abs_position_of_add(x.shape, kwargs.get("offset", 0), kwargs.get("positions")) + 2
    assert result.dtype == x.dtype, msg
    assert_within(result, expected, add_tolerance(x.dtype, pmax, xs_abs), f"{msg} vs reference")
    # One position, one set of bits: a block's rows are the eager call's rows.
    assert_same_bits(result, eager, f"{msg} vs eager")
