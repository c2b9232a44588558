"""fastpe.dask's sinusoid functions against the eager kernel and
fastpe.reference, for every way of chunking (..., T, D), on the local
schedulers. (The same on a process cluster: test_dask_cluster.py.)"""

import numpy as np
import pytest
from optional import extra_import

da = extra_import("dask.array", "test")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import fastpe  # noqa: E402
import fastpe.dask as fpd  # noqa: E402
from dask_checks import check_add_sinusoidal as check  # noqa: E402
from dask_checks import forbid_kernels  # noqa: E402
from fastpe import reference  # noqa: E402
from processes import run_python  # noqa: E402
from util import add_tolerance, assert_same_bits, assert_within, rng_for  # noqa: E402

SHAPE = (2, 3, 40, 10)

# Chunkings of SHAPE: T only, leading axes only, D split evenly, D split at
# odd columns, irregular everywhere, one block.
CHUNKINGS = {
    "T": (2, 3, 16, 10),
    "lead": (1, 2, 40, 10),
    "D-even": (2, 3, 40, (4, 6)),
    "D-odd": (2, 3, 40, (3, 5, 2)),
    "irregular": ((1, 1), (2, 1), (7, 20, 13), (1, 8, 1)),
    "one": -1,
}


def data(shape=SHAPE, dtype=np.float64, key="x"):
    return rng_for(key, shape, np.dtype(dtype).name).uniform(-3, 3, size=shape).astype(dtype)


# --------------------------------------------------------------------------
# add_sinusoidal


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("chunking", list(CHUNKINGS))
def test_chunkings(chunking, dtype):
    x = data(dtype=dtype)
    check(fpd.add_sinusoidal(da.from_array(x, chunks=CHUNKINGS[chunking]), offset=7).compute(), x,
          f"chunks={chunking}", offset=7)


@pytest.mark.parametrize("chunking", ["T", "D-odd", "irregular"])
@pytest.mark.parametrize("kind", ["numpy", "numpy-broadcast", "dask", "fractional"])
def test_per_sequence_offset(kind, chunking):
    x = data()
    rng = rng_for("offset", kind)
    offset = {
        "numpy": rng.integers(0, 500, size=(2, 3)),
        "numpy-broadcast": rng.integers(0, 500, size=(2, 1)),
        "dask": da.from_array(rng.integers(0, 500, size=(2, 3)), chunks=(1, 3)),
        "fractional": rng.uniform(-50, 50, size=(3,)),
    }[kind]
    check(fpd.add_sinusoidal(da.from_array(x, chunks=CHUNKINGS[chunking]), offset=offset).compute(), x,
          f"offset {kind}, chunks={chunking}", offset=offset)


def positions_of(kind):
    rng = rng_for("positions", kind)
    return {
        "int-T": rng.permutation(40),
        "int": rng.integers(-100, 3000, size=SHAPE[:-1]),
        "fractional": rng.uniform(-100, 100, size=(3, 40)),
        "dask-int": da.from_array(rng.integers(0, 50, size=SHAPE[:-1]), chunks=(1, 3, 11)),
        "dask-fractional": da.from_array(rng.uniform(0, 50, size=(3, 1)), chunks=(2, 1)),
    }[kind]


@pytest.mark.parametrize("chunking", ["T", "lead", "D-even", "irregular"])
@pytest.mark.parametrize("kind", ["int-T", "int", "fractional", "dask-int", "dask-fractional"])
def test_positions(kind, chunking):
    x = data()
    positions = positions_of(kind)
    check(fpd.add_sinusoidal(da.from_array(x, chunks=CHUNKINGS[chunking]), positions=positions).compute(), x,
          f"positions {kind}, chunks={chunking}", positions=positions)


@pytest.mark.parametrize("chunking", ["T", "D-odd"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scale_and_layout(dtype, chunking):
    x = data(dtype=dtype)
    kwargs = {"scale": np.sqrt(10), "layout": "concat", "base": 500.0, "offset": -20}
    check(fpd.add_sinusoidal(da.from_array(x, chunks=CHUNKINGS[chunking]), **kwargs).compute(), x,
          f"chunks={chunking}", **kwargs)


@pytest.mark.parametrize("chunking", ["T", "D-odd", "irregular"])
def test_fairseq_preset(chunking):
    x = data()
    ids = rng_for("ids").integers(1, 4, size=SHAPE[:-1])  # 1 = padding_idx
    positions = fastpe.make_positions(ids, padding_idx=1)
    chunks = CHUNKINGS[chunking]
    cases = [
        {"preset": "fairseq", "positions": positions, "scale": 2.0},
        {"preset": "fairseq", "offset": 5},  # implicit positions start after padding_idx
        {"preset": "fairseq", "padding_idx": 3, "offset": np.array([-6, 0, 2])},  # position 3 encodes to zero
        {"preset": "tensor2tensor", "max_timescale": 100.0, "offset": 3},
    ]
    for kwargs in cases:
        check(fpd.add_sinusoidal(da.from_array(x, chunks=chunks), **kwargs).compute(), x,
              f"chunks={chunking} {kwargs}", **kwargs)


def test_inv_freq_and_odd_width():
    x = data((4, 33, 7))
    inv_freq = np.linspace(1.0, 0.01, 4)
    for chunks in [(2, 10, 7), (4, 33, (2, 3, 2)), (1, 33, 1)]:
        check(fpd.add_sinusoidal(da.from_array(x, chunks=chunks), inv_freq=inv_freq).compute(), x,
              f"chunks={chunks}", inv_freq=inv_freq)


def half_dtypes():
    """(dtype, machine epsilon) of the 16-bit floats at hand."""
    dtypes = [(np.dtype(np.float16), 2.0**-10)]
    try:
        import ml_dtypes
    except ImportError:
        return dtypes
    return dtypes + [(np.dtype(ml_dtypes.bfloat16), 2.0**-7)]


@pytest.mark.parametrize("chunks", [(2, 8, 8), (3, 20, (3, 5)), (1, 7, (2, 2, 4))], ids=str)
@pytest.mark.parametrize("dtype, eps", half_dtypes(), ids=str)
def test_16_bit_dtypes(dtype, eps, chunks):
    """float16/bfloat16 blocks, D split or not, round the float64 sum once, as
    the eager call does: within one ulp of the reference, and almost always
    equal to it. (Regression: blocks that split D added an encoding already
    rounded to 16 bits, a second rounding that changed ~20% of the values.)"""
    x = data((3, 20, 8)).astype(dtype)
    expected = reference.add_sinusoidal(x.copy(), offset=4, scale=1.5).astype(np.float64)
    result = fpd.add_sinusoidal(da.from_array(x, chunks=chunks), offset=4, scale=1.5).compute()
    assert result.dtype == dtype
    got = result.astype(np.float64)
    ulp = eps * 2.0 ** np.floor(np.log2(np.maximum(np.abs(expected), 2.0**-14)))
    assert_within(got, expected, ulp, f"{dtype} chunks={chunks}")
    assert np.count_nonzero(got != expected) <= 0.01 * got.size, f"{dtype} chunks={chunks}: rounded twice?"
    eager = fastpe.add_sinusoidal(x.copy(), offset=4, scale=1.5)
    assert_same_bits(result.view(np.uint16), eager.view(np.uint16), f"{dtype} chunks={chunks} vs eager")


@pytest.mark.parametrize("shape", [(0, 5, 4), (3, 0, 4), (3, 5, 0), (0, 0)])
def test_size_zero(shape):
    x = np.zeros(shape, np.float32)
    result = fpd.add_sinusoidal(da.from_array(x), offset=np.zeros(shape[:-2]))
    assert result.shape == shape and result.dtype == np.float32
    assert result.compute().shape == shape


def test_two_dimensional_and_numpy_input():
    x = data((50, 6))
    check(fpd.add_sinusoidal(x, offset=3).compute(), x, "NumPy input", offset=3)
    check(fpd.add_sinusoidal(da.from_array(x, chunks=(9, 4)), positions=np.arange(50) * 0.5).compute(), x,
          "2-D, positions", positions=np.arange(50) * 0.5)


@pytest.fixture
def kernels_forbidden(monkeypatch):
    """Every compiled kernel raises: building a graph must not run any."""
    forbid_kernels(monkeypatch)
    return monkeypatch


def test_lazy(kernels_forbidden):
    x = da.from_array(data(), chunks=(1, 3, 16, (4, 6)))
    pos = da.from_array(np.arange(40) * 1.5, chunks=7)
    lazies = [
        fpd.add_sinusoidal(x, offset=np.arange(3), scale=2.0),
        fpd.add_sinusoidal(x, positions=pos, preset="fairseq"),
        fpd.sinusoidal_table(100, 8, chunks=(30, 3)),
        fpd.sinusoidal_encode(pos, 9),
    ]
    kernels_forbidden.undo()
    for lazy in lazies:
        assert isinstance(lazy, da.Array)
        assert lazy.compute().shape == lazy.shape


def test_input_blocks_left_unchanged():
    # from_array hands out views of x as blocks, so writing into a block would change x.
    x = data()
    before = x.copy()
    dx = da.from_array(x, chunks=(1, 3, 16, 10))
    for kwargs in ({"offset": 3}, {"positions": np.arange(40)}, {"scale": 3.0}):
        fpd.add_sinusoidal(dx, **kwargs).compute()
    fpd.add_sinusoidal(da.from_array(x, chunks=(1, 3, 16, 3)), scale=3.0).compute()
    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(dx.compute(), before)


# --------------------------------------------------------------------------
# Tables and encodings


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("chunks", [None, (30, 9), (25, (4, 5)), ((1, 60, 39), (3, 3, 3))])
def test_table(chunks, dtype):
    for kwargs in ({"offset": 11}, {"offset": 2.5, "layout": "concat"}, {"preset": "fairseq", "offset": -3}):
        lazy = fpd.sinusoidal_table(100, 9, chunks=chunks, dtype=dtype, **kwargs)
        expected = reference.sinusoidal_table(100, 9, dtype=dtype, **kwargs)
        assert lazy.dtype == dtype and lazy.shape == (100, 9)
        result = lazy.compute()
        assert result.dtype == dtype
        assert_within(result, expected, add_tolerance(dtype, 120, 0), f"table chunks={chunks} {kwargs}")
        assert_same_bits(result, fastpe.sinusoidal_table(100, 9, dtype=dtype, **kwargs),
                         f"table vs eager, chunks={chunks} {kwargs}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("chunks", [None, (2, 3, 9), (3, 4, (2, 7)), (4, 6, 1)])
def test_encode(chunks, dtype):
    positions = rng_for("encode").uniform(-200, 200, size=(4, 6))
    positions[0, :3] = 1  # fairseq's padding_idx, and repeated positions within a block
    for kwargs in ({}, {"preset": "fairseq"}, {"layout": "concat", "padding_idx": 1}):
        for pos in (positions, da.from_array(positions, chunks=(3, 2))):
            lazy = fpd.sinusoidal_encode(pos, 9, chunks=chunks, dtype=dtype, **kwargs)
            assert lazy.dtype == dtype and lazy.shape == (4, 6, 9)
            result = lazy.compute()
            tol = add_tolerance(dtype, 200, 0)
            assert_within(result, reference.sinusoidal_encode(positions, 9, dtype=dtype, **kwargs), tol,
                          f"encode chunks={chunks} {kwargs}")
            assert_same_bits(result, fastpe.sinusoidal_encode(positions, 9, dtype=dtype, **kwargs),
                             f"encode vs eager, chunks={chunks} {kwargs}")


def test_encode_keeps_the_chunks_of_positions():
    pos = da.from_array(np.arange(12).reshape(3, 4), chunks=(2, 3))
    assert fpd.sinusoidal_encode(pos, 8).chunks == ((2, 1), (3, 1), (8,))
    assert fpd.sinusoidal_encode(np.arange(5), 8).shape == (5, 8)
    assert fpd.sinusoidal_table(0, 8).compute().shape == (0, 8)
    assert fpd.sinusoidal_encode(np.zeros((0, 3)), 8).compute().shape == (0, 3, 8)


# --------------------------------------------------------------------------
# Bad arguments raise when the graph is built, naming the argument.

X = da.zeros((2, 5, 8), chunks=(1, 5, 4))

BAD_CALLS = [
    (lambda: fpd.add_sinusoidal(da.zeros((5,))), ValueError, "at least 2 dimensions"),
    (lambda: fpd.add_sinusoidal(da.zeros((2, 5, 8), dtype=np.int32)), TypeError, "x must"),
    (lambda: fpd.add_sinusoidal(X, layout="diagonal"), ValueError, "layout"),
    (lambda: fpd.add_sinusoidal(X, preset="bert"), ValueError, "preset"),
    (lambda: fpd.add_sinusoidal(da.zeros((2, 5, 3)), preset="fairseq"), ValueError, "dim"),
    (lambda: fpd.add_sinusoidal(X, preset="fairseq", layout="concat"), ValueError, "layout"),
    (lambda: fpd.add_sinusoidal(X, offset=np.zeros(3)), ValueError, "offset"),
    (lambda: fpd.add_sinusoidal(X, offset=da.zeros(3)), ValueError, "offset"),
    (lambda: fpd.add_sinusoidal(X, offset=np.nan), ValueError, "offset"),
    (lambda: fpd.add_sinusoidal(X, positions=np.zeros((2, 4))), ValueError, "positions"),
    (lambda: fpd.add_sinusoidal(X, positions=da.zeros((3, 5))), ValueError, "positions"),
    (lambda: fpd.add_sinusoidal(X, positions=da.zeros(5, dtype=bool)), TypeError, "positions"),
    (lambda: fpd.add_sinusoidal(X, positions=np.arange(5), offset=2), ValueError, "offset"),
    (lambda: fpd.add_sinusoidal(X, positions=np.arange(5), offset=da.zeros(2)), ValueError, "offset"),
    (lambda: fpd.add_sinusoidal(X, scale="2"), TypeError, "scale"),
    (lambda: fpd.add_sinusoidal(X, base=-1.0), ValueError, "base"),
    (lambda: fpd.add_sinusoidal(X, inv_freq=np.ones(3)), ValueError, "inv_freq"),
    (lambda: fpd.add_sinusoidal(X, num_threads=0), ValueError, "num_threads"),
    (lambda: fpd.add_sinusoidal(X[X[:, 0, 0] > 0]), ValueError, "unknown chunk sizes"),
    (lambda: fpd.sinusoidal_table(-1, 8), ValueError, "n_positions"),
    (lambda: fpd.sinusoidal_table(10, 8.0), TypeError, "dim"),
    (lambda: fpd.sinusoidal_table(10, 8, offset=np.inf), ValueError, "offset"),
    (lambda: fpd.sinusoidal_table(10, 8, dtype=np.int64), TypeError, "dtype"),
    (lambda: fpd.sinusoidal_table(10, 6, preset="whisper", max_timescale=0.0), ValueError, "max_timescale"),
    (lambda: fpd.sinusoidal_encode(np.array([1.0, np.nan]), 8), ValueError, "positions"),
    (lambda: fpd.sinusoidal_encode(da.zeros(3, dtype=complex), 8), TypeError, "positions"),
    (lambda: fpd.sinusoidal_encode(np.arange(3), -2), ValueError, "dim"),
    (lambda: fpd.sinusoidal_encode(np.arange(3), 8, layout="x"), ValueError, "layout"),
]


@pytest.mark.parametrize("index", range(len(BAD_CALLS)))
def test_bad_arguments_raise_at_call_time(index):
    call, error, match = BAD_CALLS[index]
    with pytest.raises(error, match=match):
        call()


def test_import_does_not_need_dask():
    """`import fastpe` leaves Dask alone; without Dask, fastpe.dask says what to install."""
    code = (
        "import sys, fastpe\n"
        "assert not any(m == 'dask' or m.startswith('dask.') for m in sys.modules), 'fastpe imported dask'\n"
        "sys.modules['dask'] = None\n"
        "try:\n"
        "    import fastpe.dask\n"
        "except ImportError as exc:\n"
        "    assert 'pip install fastpe[dask]' in str(exc), exc\n"
        "else:\n"
        "    raise AssertionError('no ImportError')\n"
    )
    proc = run_python(code)  # from a temporary directory: never the uncompiled sources
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------
# Random shapes and chunkings, on the local scheduler.


@st.composite
def chunked_cases(draw):
    ndim = draw(st.integers(2, 4))
    shape = tuple(draw(st.integers(0 if ax < ndim - 2 else 1, 5 if ax < ndim - 2 else 30)) for ax in range(ndim))
    chunks = tuple(draw(st.integers(1, max(n, 1))) for n in shape)
    kwargs = {}
    kind = draw(st.sampled_from(["offset", "offsets", "positions"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "offset":
        kwargs["offset"] = draw(st.integers(-1000, 1000))
    elif kind == "offsets":
        kwargs["offset"] = rng.uniform(-100, 100, size=shape[:-2])
    else:
        kwargs["positions"] = rng.integers(-50, 2000, size=shape[:-1])
    if draw(st.booleans()):
        kwargs["scale"] = draw(st.floats(-4, 4, allow_nan=False))
    kwargs.update(draw(st.sampled_from([{}, {"layout": "concat"}, {"preset": "marian"}])))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    x = rng.uniform(-3, 3, size=shape).astype(dtype)
    return x, chunks, kwargs


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunked_cases())
def test_random_chunkings(case):
    x, chunks, kwargs = case
    lazy = fpd.add_sinusoidal(da.from_array(x, chunks=chunks), **kwargs)
    check(lazy.compute(scheduler="threads"), x, f"shape={x.shape} chunks={chunks} {sorted(kwargs)}", **kwargs)
