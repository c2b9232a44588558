"""Rejected arguments: the right exception type, a message naming the argument,
the same exception type from the NumPy reference, and not one byte written.

Every case is built fresh (builders), run against fastpe and the reference,
and every array involved (and the buffer under it) is compared bytewise
before and after.
"""

import numpy as np
import pytest

import fastpe
from fastpe import reference
from util import assert_unchanged, assert_within, snapshot

as_strided = np.lib.stride_tricks.as_strided


def X(shape=(3, 5, 4), dtype=np.float32):
    rng = np.random.default_rng(sum(shape) + np.dtype(dtype).itemsize)
    return rng.uniform(-2, 2, shape).astype(dtype)


def readonly(a):
    a.flags.writeable = False
    return a


def zero_stride_x():
    buf = X((5, 4))
    return as_strided(buf, shape=(3, 5, 4), strides=(0,) + buf.strides, writeable=True)


def crossing_stride_x():
    buf = X((20,), np.float64)
    return as_strided(buf, shape=(4, 4), strides=(8, 8), writeable=True)


def ragged():
    return [[1.0, 2.0], [3.0]]


# (id, exception, argument name that the message must contain, builder -> (function name, args, kwargs))
ADD = "add_sinusoidal"
TABLE = "sinusoidal_table"
ENCODE = "sinusoidal_encode"

CASES = [
    # ----------------------------------------------------- add_sinusoidal: TypeError
    ("x-int32", TypeError, "x", lambda: (ADD, (X().astype(np.int32),), {})),
    ("x-int64", TypeError, "x", lambda: (ADD, (X().astype(np.int64),), {})),
    ("x-uint8", TypeError, "x", lambda: (ADD, (X().astype(np.uint8),), {})),
    ("x-complex", TypeError, "x", lambda: (ADD, (X().astype(np.complex128),), {})),
    ("x-object", TypeError, "x", lambda: (ADD, (X().astype(object),), {})),
    ("x-longdouble", TypeError, "x", lambda: (ADD, (X().astype(np.longdouble),), {})),
    ("x-big-endian-float16", TypeError, "x", lambda: (ADD, (X().astype(">f2"),), {})),
    ("x-longdouble", TypeError, "x", lambda: (ADD, (X().astype(np.longdouble),), {})),
    ("x-bool", TypeError, "x", lambda: (ADD, (X() > 0,), {})),
    ("x-big-endian-f4", TypeError, "x", lambda: (ADD, (X().astype(">f4"),), {})),
    ("x-big-endian-f8", TypeError, "x", lambda: (ADD, (X().astype(">f8"),), {})),
    ("x-int-with-out", TypeError, "x", lambda: (ADD, (X().astype(np.int32),), {"out": X()})),
    ("x-list-in-place", TypeError, "x", lambda: (ADD, (X().tolist(),), {})),
    ("x-tuple-in-place", TypeError, "x", lambda: (ADD, (((1.0, 2.0), (3.0, 4.0)),), {})),
    ("x-matrix-memoryview", TypeError, "x", lambda: (ADD, (memoryview(X((2, 3))),), {})),
    ("x-ragged-with-out", TypeError, "x", lambda: (ADD, (ragged(),), {"out": X((2, 2), np.float64)})),
    ("x-string-with-out", TypeError, "x", lambda: (ADD, ("abc",), {"out": X((2, 2), np.float64)})),
    ("out-int", TypeError, "out", lambda: (ADD, (X(),), {"out": X().astype(np.int32)})),
    ("out-big-endian", TypeError, "out", lambda: (ADD, (X(),), {"out": X().astype(">f4")})),
    ("out-list", TypeError, "out", lambda: (ADD, (X(),), {"out": X().tolist()})),
    ("positions-ragged", TypeError, "positions", lambda: (ADD, (X((2, 2)),), {"positions": ragged()})),
    ("positions-strings", TypeError, "positions", lambda: (ADD, (X(),), {"positions": np.array(["a"] * 5)})),
    ("positions-bool", TypeError, "positions", lambda: (ADD, (X(),), {"positions": np.ones(5, bool)})),
    ("positions-complex", TypeError, "positions", lambda: (ADD, (X(),), {"positions": np.arange(5) + 1j})),
    ("positions-object", TypeError, "positions", lambda: (ADD, (X(),), {"positions": np.array([object()] * 5)})),
    ("offset-object", TypeError, "offset", lambda: (ADD, (X(),), {"offset": object()})),
    ("offset-string", TypeError, "offset", lambda: (ADD, (X(),), {"offset": "3"})),
    ("offset-ragged", TypeError, "offset", lambda: (ADD, (X((2, 3, 4, 2)),), {"offset": ragged()})),
    ("scale-string", TypeError, "scale", lambda: (ADD, (X(),), {"scale": "2"})),
    ("scale-complex", TypeError, "scale", lambda: (ADD, (X(),), {"scale": 1j})),
    ("scale-bool", TypeError, "scale", lambda: (ADD, (X(),), {"scale": True})),
    ("base-string", TypeError, "base", lambda: (ADD, (X(),), {"base": "10000"})),
    ("base-bool", TypeError, "base", lambda: (ADD, (X(),), {"base": True})),  # base=None is the default (10000)
    ("num_threads-float", TypeError, "num_threads", lambda: (ADD, (X(),), {"num_threads": 2.0})),
    ("num_threads-string", TypeError, "num_threads", lambda: (ADD, (X(),), {"num_threads": "2"})),
    ("num_threads-bool", TypeError, "num_threads", lambda: (ADD, (X(),), {"num_threads": True})),
    ("num_threads-np-float", TypeError, "num_threads", lambda: (ADD, (X(),), {"num_threads": np.float64(2)})),
    ("inv_freq-strings", TypeError, "inv_freq", lambda: (ADD, (X(),), {"inv_freq": ["a", "b"]})),
    ("inv_freq-complex", TypeError, "inv_freq", lambda: (ADD, (X(),), {"inv_freq": np.ones(2) * 1j})),
    # ---------------------------------------------------- add_sinusoidal: ValueError
    ("x-1d", ValueError, "x", lambda: (ADD, (X((5,)),), {})),
    ("x-0d", ValueError, "x", lambda: (ADD, (np.array(1.0),), {})),
    ("x-1d-with-out", ValueError, "x", lambda: (ADD, (X((5,)),), {"out": X((5,))})),
    ("x-read-only", ValueError, "x", lambda: (ADD, (readonly(X()),), {})),
    ("x-read-only-view", ValueError, "x", lambda: (ADD, (np.broadcast_to(X((5, 4)), (3, 5, 4)),), {})),
    ("x-zero-stride-writeable", ValueError, "x", lambda: (ADD, (zero_stride_x(),), {})),
    ("x-crossing-strides", ValueError, "x", lambda: (ADD, (crossing_stride_x(),), {})),
    ("out-wrong-shape", ValueError, "out", lambda: (ADD, (X(),), {"out": X((3, 5, 5))})),
    ("out-transposed-shape", ValueError, "out", lambda: (ADD, (X(),), {"out": X((4, 5, 3))})),
    ("out-wrong-ndim", ValueError, "out", lambda: (ADD, (X(),), {"out": X((15, 4))})),
    ("out-float64-for-float32", ValueError, "out", lambda: (ADD, (X(),), {"out": X(dtype=np.float64)})),
    ("out-float32-for-float64", ValueError, "out", lambda: (ADD, (X(dtype=np.float64),), {"out": X()})),
    ("out-read-only", ValueError, "out", lambda: (ADD, (X(),), {"out": readonly(X())})),
    ("out-zero-stride", ValueError, "out", lambda: (ADD, (X(),), {"out": zero_stride_x()})),
    ("positions-too-long", ValueError, "positions", lambda: (ADD, (X(),), {"positions": np.arange(6)})),
    ("positions-wrong-batch", ValueError, "positions", lambda: (ADD, (X(),), {"positions": np.zeros((4, 5))})),
    ("positions-too-many-dims", ValueError, "positions", lambda: (ADD, (X(),), {"positions": np.zeros((1, 3, 5))})),
    ("positions-per-column", ValueError, "positions", lambda: (ADD, (X(),), {"positions": np.zeros((3, 5, 4))})),
    ("positions-nan", ValueError, "positions", lambda: (ADD, (X(),), {"positions": np.array([0, 1, np.nan, 3, 4])})),
    ("positions-inf", ValueError, "positions", lambda: (ADD, (X(),), {"positions": np.array([0, 1, 2, 3, np.inf])})),
    ("positions-neg-inf-2d", ValueError, "positions", lambda: (ADD, (X(),), {"positions": np.full((3, 5), -np.inf)})),
    ("offset-wrong-batch", ValueError, "offset", lambda: (ADD, (X(),), {"offset": np.arange(4)})),
    ("offset-per-token", ValueError, "offset", lambda: (ADD, (X(),), {"offset": np.zeros((3, 5))})),
    ("offset-array-for-2d", ValueError, "offset", lambda: (ADD, (X((5, 4)),), {"offset": np.array([1])})),
    ("offset-4d-wrong", ValueError, "offset", lambda: (ADD, (X((2, 3, 5, 4)),), {"offset": np.zeros((3, 2))})),
    ("offset-nan", ValueError, "offset", lambda: (ADD, (X(),), {"offset": np.nan})),
    ("offset-inf", ValueError, "offset", lambda: (ADD, (X(),), {"offset": np.inf})),
    ("offset-array-nan", ValueError, "offset", lambda: (ADD, (X(),), {"offset": np.array([0, np.nan, 1])})),
    ("offset-and-positions", ValueError, "offset", lambda: (ADD, (X(),), {"offset": 1, "positions": np.arange(5)})),
    ("offset-array-and-positions", ValueError, "offset",
     lambda: (ADD, (X(),), {"offset": np.array([0, 0, 2]), "positions": np.arange(5)})),
    ("scale-nan", ValueError, "scale", lambda: (ADD, (X(),), {"scale": float("nan")})),
    ("scale-inf", ValueError, "scale", lambda: (ADD, (X(),), {"scale": -np.inf})),
    ("base-zero", ValueError, "base", lambda: (ADD, (X(),), {"base": 0.0})),
    ("base-negative", ValueError, "base", lambda: (ADD, (X(),), {"base": -10000})),
    ("base-nan", ValueError, "base", lambda: (ADD, (X(),), {"base": np.nan})),
    ("base-inf", ValueError, "base", lambda: (ADD, (X(),), {"base": np.inf})),
    ("layout-unknown", ValueError, "layout", lambda: (ADD, (X(),), {"layout": "rotary"})),
    ("layout-case", ValueError, "layout", lambda: (ADD, (X(),), {"layout": "Interleaved"})),
    ("layout-int", TypeError, "layout", lambda: (ADD, (X(),), {"layout": 0})),  # a number where a name is needed
    ("layout-two", TypeError, "layout", lambda: (ADD, (X(),), {"layout": 2})),  # layout=None is the default ("interleaved")
    ("num_threads-zero", ValueError, "num_threads", lambda: (ADD, (X(),), {"num_threads": 0})),
    ("num_threads-negative", ValueError, "num_threads", lambda: (ADD, (X(),), {"num_threads": -2})),
    ("inv_freq-too-long-interleaved", ValueError, "inv_freq", lambda: (ADD, (X(),), {"inv_freq": np.ones(3)})),
    ("inv_freq-too-short-interleaved-odd", ValueError, "inv_freq",
     lambda: (ADD, (X((3, 5, 5)),), {"inv_freq": np.ones(2)})),
    ("inv_freq-interleaved-length-for-concat-odd", ValueError, "inv_freq",
     lambda: (ADD, (X((3, 5, 5)),), {"inv_freq": np.ones(3), "layout": "concat"})),
    ("inv_freq-2d", ValueError, "inv_freq", lambda: (ADD, (X(),), {"inv_freq": np.ones((1, 2))})),
    ("inv_freq-scalar", ValueError, "inv_freq", lambda: (ADD, (X((3, 5, 2)),), {"inv_freq": 1.0})),
    ("inv_freq-nan", ValueError, "inv_freq", lambda: (ADD, (X(),), {"inv_freq": np.array([1.0, np.nan])})),
    # errors are raised for empty inputs too
    ("empty-x-int", TypeError, "x", lambda: (ADD, (np.zeros((0, 4), np.int64),), {})),
    ("empty-x-read-only", ValueError, "x", lambda: (ADD, (readonly(X((0, 4))),), {})),
    ("empty-x-bad-layout", ValueError, "layout", lambda: (ADD, (X((3, 0, 4)),), {"layout": "nope"})),
    ("empty-x-bad-positions", ValueError, "positions", lambda: (ADD, (X((0, 4)),), {"positions": np.zeros(2)})),
    ("empty-x-nan-offset", ValueError, "offset", lambda: (ADD, (X((2, 0, 4)),), {"offset": np.nan})),
    ("empty-x-bad-out", ValueError, "out", lambda: (ADD, (X((2, 0, 4)),), {"out": X((2, 1, 4))})),
    # ------------------------------------------------------------ sinusoidal_table
    ("table-n-negative", ValueError, "n_positions", lambda: (TABLE, (-1, 4), {})),
    ("table-dim-negative", ValueError, "dim", lambda: (TABLE, (4, -1), {})),
    ("table-n-float", TypeError, "n_positions", lambda: (TABLE, (4.0, 4), {})),
    ("table-n-string", TypeError, "n_positions", lambda: (TABLE, ("4", 4), {})),
    ("table-n-bool", TypeError, "n_positions", lambda: (TABLE, (True, 4), {})),
    ("table-n-none", TypeError, "n_positions", lambda: (TABLE, (None, 4), {})),
    ("table-dim-float", TypeError, "dim", lambda: (TABLE, (4, 4.0), {})),
    ("table-dim-array", TypeError, "dim", lambda: (TABLE, (4, np.array([4])), {})),
    ("table-dtype-int", TypeError, "dtype", lambda: (TABLE, (4, 4), {"dtype": np.int32})),
    ("table-dtype-longdouble", TypeError, "dtype", lambda: (TABLE, (4, 4), {"dtype": np.longdouble})),
    ("table-dtype-complex", TypeError, "dtype", lambda: (TABLE, (4, 4), {"dtype": np.complex64})),
    ("table-dtype-bool", TypeError, "dtype", lambda: (TABLE, (4, 4), {"dtype": bool})),
    ("table-dtype-object", TypeError, "dtype", lambda: (TABLE, (4, 4), {"dtype": object})),
    ("table-dtype-big-endian", TypeError, "dtype", lambda: (TABLE, (4, 4), {"dtype": ">f8"})),
    ("table-dtype-garbage", TypeError, "dtype", lambda: (TABLE, (4, 4), {"dtype": "notadtype"})),
    ("table-offset-nan", ValueError, "offset", lambda: (TABLE, (4, 4), {"offset": np.nan})),
    ("table-offset-inf", ValueError, "offset", lambda: (TABLE, (4, 4), {"offset": -np.inf})),
    ("table-offset-string", TypeError, "offset", lambda: (TABLE, (4, 4), {"offset": "1"})),
    ("table-offset-array", TypeError, "offset", lambda: (TABLE, (4, 4), {"offset": np.array([1, 2])})),
    ("table-base-zero", ValueError, "base", lambda: (TABLE, (4, 4), {"base": 0})),
    ("table-base-negative", ValueError, "base", lambda: (TABLE, (4, 4), {"base": -1.0})),
    ("table-base-nan", ValueError, "base", lambda: (TABLE, (4, 4), {"base": np.nan})),
    ("table-layout", ValueError, "layout", lambda: (TABLE, (4, 4), {"layout": "concatenated"})),
    ("table-num_threads-zero", ValueError, "num_threads", lambda: (TABLE, (4, 4), {"num_threads": 0})),
    ("table-num_threads-float", TypeError, "num_threads", lambda: (TABLE, (4, 4), {"num_threads": 1.5})),
    ("table-inv_freq-length", ValueError, "inv_freq", lambda: (TABLE, (4, 5), {"inv_freq": np.ones(2)})),
    ("table-inv_freq-length-concat", ValueError, "inv_freq",
     lambda: (TABLE, (4, 5), {"inv_freq": np.ones(3), "layout": "concat"})),
    ("table-inv_freq-inf", ValueError, "inv_freq", lambda: (TABLE, (4, 4), {"inv_freq": np.array([1.0, np.inf])})),
    ("table-out-shape", ValueError, "out", lambda: (TABLE, (4, 4), {"out": X((4, 5))})),
    ("table-out-read-only", ValueError, "out", lambda: (TABLE, (4, 4), {"out": readonly(X((4, 4)))})),
    ("table-out-int", TypeError, "out", lambda: (TABLE, (4, 4), {"out": np.zeros((4, 4), np.int32)})),
    ("table-out-big-endian", TypeError, "out", lambda: (TABLE, (4, 4), {"out": np.zeros((4, 4), ">f8")})),
    ("table-out-list", TypeError, "out", lambda: (TABLE, (2, 2), {"out": [[0.0, 0.0], [0.0, 0.0]]})),
    ("table-out-zero-stride", ValueError, "out",
     lambda: (TABLE, (3, 5), {"out": as_strided(X((5,)), shape=(3, 5), strides=(0, 4), writeable=True)})),
    ("table-empty-bad-layout", ValueError, "layout", lambda: (TABLE, (0, 4), {"layout": "x"})),
    # ----------------------------------------------------------- sinusoidal_encode
    ("encode-positions-nan", ValueError, "positions", lambda: (ENCODE, (np.array([1.0, np.nan]), 4), {})),
    ("encode-positions-inf", ValueError, "positions", lambda: (ENCODE, (np.inf, 4), {})),
    ("encode-positions-strings", TypeError, "positions", lambda: (ENCODE, (["1", "2"], 4), {})),
    ("encode-positions-ragged", TypeError, "positions", lambda: (ENCODE, (ragged(), 4), {})),
    ("encode-positions-bool", TypeError, "positions", lambda: (ENCODE, (np.array([True]), 4), {})),
    ("encode-positions-complex", TypeError, "positions", lambda: (ENCODE, (np.array([1j]), 4), {})),
    ("encode-dim-negative", ValueError, "dim", lambda: (ENCODE, (np.arange(3), -2), {})),
    ("encode-dim-float", TypeError, "dim", lambda: (ENCODE, (np.arange(3), 2.0), {})),
    ("encode-dtype", TypeError, "dtype", lambda: (ENCODE, (np.arange(3), 4), {"dtype": np.int16})),
    ("encode-out-shape", ValueError, "out", lambda: (ENCODE, (np.arange(3), 4), {"out": X((4, 3))})),
    ("encode-out-read-only", ValueError, "out", lambda: (ENCODE, (np.arange(3), 4), {"out": readonly(X((3, 4)))})),
    ("encode-base", ValueError, "base", lambda: (ENCODE, (np.arange(3), 4), {"base": -2})),
    ("encode-layout", ValueError, "layout", lambda: (ENCODE, (np.arange(3), 4), {"layout": ""})),
    ("encode-inv_freq", ValueError, "inv_freq", lambda: (ENCODE, (np.arange(3), 4), {"inv_freq": [1.0]})),
    ("encode-num_threads", ValueError, "num_threads", lambda: (ENCODE, (np.arange(3), 4), {"num_threads": -1})),
]


def _arrays_of(args, kwargs):
    return [a for a in list(args) + list(kwargs.values()) if isinstance(a, np.ndarray)]


@pytest.mark.parametrize("impl", ["fastpe", "reference"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_rejected(case, impl):
    label, exc, name, build = case
    fname, args, kwargs = build()
    func = getattr(fastpe if impl == "fastpe" else reference, fname)
    snaps = snapshot(*_arrays_of(args, kwargs))
    with pytest.raises(exc, match=rf"(?<![A-Za-z_]){name}(?![A-Za-z_])") as info:
        func(*args, **kwargs)
    assert type(info.value) is exc, f"{impl} {label}: raised {type(info.value).__name__}, expected exactly {exc.__name__}"
    assert_unchanged(snaps, f"{impl} {label}")


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_reference_raises_same_as_kernel(case):
    """Same exception type and message from both implementations."""
    label, exc, name, build = case
    results = []
    for mod in (fastpe, reference):
        fname, args, kwargs = build()
        try:
            getattr(mod, fname)(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - we compare whatever is raised
            results.append((type(e), str(e)))
        else:
            results.append((None, ""))
    assert results[0] == results[1], f"{label}: fastpe raised {results[0]}, reference raised {results[1]}"


def test_failed_call_with_out_writes_neither_x_nor_out():
    """A bad argument after valid x and out: both untouched (the kernel never starts)."""
    for kwargs in ({"positions": np.arange(6)}, {"offset": np.nan}, {"layout": "bad"}, {"inv_freq": np.ones(5)},
                   {"scale": np.inf}, {"num_threads": 0}, {"base": -1}):
        x = X()
        out = X() + 10
        snaps = snapshot(x, out)
        with pytest.raises((TypeError, ValueError)):
            fastpe.add_sinusoidal(x, out=out, **kwargs)
        assert_unchanged(snaps, f"add_sinusoidal(x, out=out, {kwargs})")


def test_overlap_detection_accepts_ordinary_views():
    """The overlap check must not reject what NumPy itself hands out: transposes,
    negative strides, slices with gaps, size-1 axes with odd strides."""
    base = X((4, 6, 8), np.float64)
    views = [base, base.transpose(1, 0, 2), base[::-1, ::2, ::-3], base[:, 3:4, :], base[:, :, :1],
             np.swapaxes(base, 1, 2), as_strided(base, shape=(4, 1, 8), strides=(384, 0, 8), writeable=True)]
    for v in views:
        expected = reference.add_sinusoidal(v.copy(), offset=1)
        got = fastpe.add_sinusoidal(v, offset=1)
        assert np.abs(got - expected).max() <= 1e-12, f"strides {v.strides}"


HUGE = 10**400  # a Python int no float64 can hold


@pytest.mark.parametrize("impl", ["fastpe", "reference"])
@pytest.mark.parametrize(
    "fname, args, kwargs, name",
    [
        (ADD, ((3, 4),), {"offset": HUGE}, "offset"),
        (ADD, ((3, 4),), {"scale": HUGE}, "scale"),
        (ADD, ((3, 4),), {"base": HUGE}, "base"),
        (ADD, ((3, 4),), {"positions": [HUGE] * 3}, "positions"),
        (ADD, ((2, 3, 4),), {"offset": [HUGE, 1]}, "offset"),
        (TABLE, (3, 4), {"offset": HUGE}, "offset"),
        (TABLE, (3, 4), {"base": -HUGE}, "base"),
        (ENCODE, ([HUGE], 4), {}, "positions"),
    ],
    ids=["add-offset", "add-scale", "add-base", "add-positions", "add-offset-list", "table-offset", "table-base",
         "encode-positions"],
)
def test_regression_huge_int_arguments(impl, fname, args, kwargs, name):
    """An int too large for float64 is rejected like any other bad number: TypeError or
    ValueError naming the argument, nothing written. fastpe 0.1.0 lets float() raise a bare
    OverflowError ("int too large to convert to float") for scalar offset, scale and base."""
    if fname == ADD:
        x = X(args[0], np.float64)
        args = (x,)
    func = getattr(fastpe if impl == "fastpe" else reference, fname)
    snaps = snapshot(*_arrays_of(args, kwargs))
    with pytest.raises((TypeError, ValueError), match=rf"(?<![A-Za-z_]){name}(?![A-Za-z_])"):
        func(*args, **kwargs)
    assert_unchanged(snaps, f"{impl} {fname} {name}=huge int")


def _unaligned(a):
    """A copy of a whose data starts one byte off its dtype's alignment."""
    raw = np.zeros(a.nbytes + 1, dtype=np.uint8)
    b = raw[1:].view(a.dtype).reshape(a.shape)
    b[...] = a
    assert not b.flags.aligned
    return b


def test_regression_unaligned_read_only_inputs():
    """Regression: inputs that are only read (x with out=, positions, offsets,
    tables) were handed to the kernels unaligned, which UBSan reported as
    misaligned loads in Dask workers (unpickled out-of-band buffers). They are
    now read through an aligned copy (misaligned outputs: tests/interop/test_misaligned.py)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 7, 6))
    positions = rng.uniform(0, 100, (2, 7))
    table = rng.standard_normal((30, 6))
    scores = rng.standard_normal((1, 2, 3, 4))
    bias_table = rng.standard_normal((8, 2))
    cases = [
        ("x with out=", lambda m, u: m.add_sinusoidal(u(x), out=np.empty_like(x), offset=3)),
        ("positions", lambda m, u: m.add_sinusoidal(x.copy(), positions=u(positions))),
        ("offset", lambda m, u: m.add_sinusoidal(x.copy(), offset=u(np.array([2.5, 7.0])))),
        ("table", lambda m, u: m.add_table(x.copy(), u(table), offset=4)),
        ("x and table", lambda m, u: m.add_table(u(x), u(table), out=np.empty_like(x))),
        ("scores with out=", lambda m, u: m.add_alibi(u(scores), out=np.empty_like(scores))),
        ("bias_table", lambda m, u: m.add_relative_bias(scores.copy(), u(bias_table), bidirectional=True,
                                                       num_buckets=8, max_distance=16)),
        ("rotary x with out=", lambda m, u: m.apply_rotary(u(x), out=[np.empty_like(x)], offset=1)),
    ]
    for name, call in cases:
        expected = call(reference, lambda a: a.copy())
        got = call(fastpe, _unaligned)
        assert_within(got, expected, 1e-9, f"unaligned {name}")
