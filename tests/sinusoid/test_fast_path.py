"""add_sinusoidal's compiled front door (fastpe/_frontdoor_sinusoid.pxi).

Every common call (an exact ndarray of native float32/float64, a scalar
offset, default options) must take it and give the general path's bits;
every other call must take the general path and return or raise exactly
what it did before. fastpe._frontdoor.sinusoid_calls() tells which path ran;
the general path alone is run by switching the front door off in fastpe._frontdoor.
"""

import fractions

import numpy as np
import pytest
from optional import conformance_import, extra_import
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastpe
from fastpe import _frontdoor
from fastpe._validation import Encoding
from fastpath import fast_and_general, general_path_only
from util import (ALL_KINDS, array_variants, assert_same_bits, check_add_against_reference, outcome,
                  random_values, rng_for)


SHAPES = [(1, 16, 64), (1, 128, 768), (3, 33, 7), (2, 3, 17, 1), (5, 2), (1, 1), (40, 64, 24)]
OFFSETS = [0, 5, -3, 2.5, np.int64(7), np.uint8(200), np.int8(-4), np.float32(1.5), np.float16(2.0),
           np.float64(-0.25), 4095,
           # 0-d arrays (a 0-d tensor's view): what their one value is as a scalar
           np.array(3), np.array(3.5), np.array(-4, np.int8), np.array(200, np.uint8), np.array(2.0, np.float16),
           np.array(1.5, np.float32), np.array(9, ">i8")]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_common_calls_take_the_fast_path_with_the_general_bits(shape, dtype):
    rng = rng_for("fast path", shape, np.dtype(dtype).name)
    for offset in OFFSETS:
        for kind, x in array_variants(shape, dtype, rng):
            msg = f"shape={shape} {np.dtype(dtype).name} {kind} offset={offset!r}"
            x_fast, x_general, taken = fast_and_general(x, offset=offset)
            assert taken == 1, f"{msg}: the common call did not take the fast path"
            assert_same_bits(x_fast, x_general, msg)
            before = _frontdoor.sinusoid_calls()
            check_add_against_reference(x.copy(), msg, offset=offset)
            assert _frontdoor.sinusoid_calls() == before + 1


@pytest.mark.parametrize("num_threads", [1, 2, 3, 64, 2**70])
@pytest.mark.parametrize("shape", [(1, 16, 64), (4, 300, 40), (1, 3000, 64)], ids=str)
def test_num_threads_keeps_the_fast_path(shape, num_threads):
    """An int num_threads is common too (a benchmark or a pipeline pins it):
    the same bits as the general path, which caps the team as usual."""
    x = random_values(shape, np.float32, rng_for("num_threads", shape), 3.0)
    for offset in (0, 77, -300):
        x_fast, x_general, taken = fast_and_general(x, offset=offset, num_threads=num_threads)
        assert taken == 1
        assert_same_bits(x_fast, x_general, f"{shape} offset={offset} num_threads={num_threads}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_offsets_at_the_position_limit(dtype):
    """The last offset whose positions stay below 2**53 is common; one more is
    refused by the general path, with its message."""
    x = random_values((2, 9, 6), dtype, rng_for("limit"), 3.0)
    T = x.shape[-2]
    for offset in (2**53 - T, -(2**53) + 1, float(2**53 - T)):
        x_fast, x_general, taken = fast_and_general(x, offset=offset)
        assert taken == 1, offset
        assert_same_bits(x_fast, x_general, f"offset={offset}")
    for offset in (2**53 - T + 1, -(2**53), 2**53, float(2**53), np.uint64(2**63), 2**70):
        check_same_outcome(x.copy, 0, offset=offset)


def check_same_outcome(make_x, expected_fast_calls, **kwargs):
    """add_sinusoidal(make_x(), **kwargs) with and without the fast path: the
    same result or the same error, and x untouched by an error. make_x builds
    a fresh x each time (a copy could change its memory layout)."""
    x_fast, x_general = make_x(), make_x()
    kwargs_general = dict(kwargs)
    if "out" in kwargs:
        kwargs_general["out"] = kwargs["out"].copy()
    before = _frontdoor.sinusoid_calls()
    got = outcome(lambda: fastpe.add_sinusoidal(x_fast, **kwargs))
    taken = _frontdoor.sinusoid_calls() - before
    with general_path_only():
        expected = outcome(lambda: fastpe.add_sinusoidal(x_general, **kwargs_general))
    msg = f"{type(x_fast).__name__} {getattr(x_fast, 'dtype', '')} {kwargs!r}"
    assert taken == expected_fast_calls, f"{msg}: fast calls {taken}"
    assert got[0] == expected[0], f"{msg}: {got} vs {expected}"
    if got[0] == "error":
        assert got[1:] == expected[1:], msg
        assert _bytes(x_fast) == _bytes(make_x()), f"{msg}: a refused call wrote into x"
    else:
        result, result_general = got[1], expected[1]
        assert (result is x_fast) == (result_general is x_general), msg
        assert_same_bits(np.asarray(result), np.asarray(result_general), msg)


def _bytes(a):
    return np.asarray(a).tobytes() if isinstance(a, np.ndarray) or hasattr(a, "__array__") else repr(a)


X = random_values((2, 5, 8), np.float32, rng_for("uncommon"), 3.0)

UNCOMMON_ARGUMENTS = [
    {"positions": np.arange(5)},
    {"positions": np.arange(5), "offset": 1},
    {"scale": True},
    {"scale": np.bool_(True)},
    {"scale": float("nan")},
    {"scale": float("inf")},
    {"scale": np.array(2.0)},
    {"scale": fractions.Fraction(1, 2)},
    {"scale": "2"},
    {"scale": 2**2000},
    {"scale": 1 + 0j},
    {"base": 10000},
    {"base": -1.0},
    {"layout": "interleaved"},
    {"layout": "concat"},
    {"layout": "bad"},
    {"out": np.zeros((2, 5, 8), np.float64)},
    {"out": np.zeros((2, 5, 9), np.float32)},
    {"out": np.zeros((2, 5, 8), np.float32).view(np.ndarray).tolist()},
    {"num_threads": 0},
    {"num_threads": -1},
    {"num_threads": True},
    {"num_threads": 2.0},
    {"num_threads": np.int64(2)},
    {"inv_freq": np.ones(4)},
    {"inv_freq": np.ones(3)},
    {"preset": "vaswani"},
    {"preset": "fairseq"},
    {"preset": "nope"},
    {"padding_idx": 1},
    {"min_timescale": 1.0},
    {"max_timescale": 1e4},
]


@pytest.mark.parametrize("kwargs", UNCOMMON_ARGUMENTS, ids=lambda k: ",".join(sorted(k)))
def test_every_other_argument_takes_the_general_path(kwargs):
    check_same_outcome(X.copy, 0, **kwargs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", [(1, 16, 64), (3, 33, 7), (2, 3, 17, 1)], ids=str)
def test_out_apart_takes_the_fast_path(shape, dtype):
    """out= an array of x's dtype and shape, in any layout, sharing no memory
    with x: one pass from x into out with the general path's bits, x (which
    may be read-only) left as it was."""
    rng = rng_for("fast path out", shape, np.dtype(dtype).name)
    x = random_values(shape, dtype, rng, 3.0)
    for kind, target in array_variants(shape, dtype, rng):
        for offset in (0, 77, 2.5, np.array(300)):
            msg = f"shape={shape} {np.dtype(dtype).name} out {kind} offset={offset!r}"
            source = x.copy()
            source.flags.writeable = False
            out = target.copy() if kind == "C" else target
            before = _frontdoor.sinusoid_calls()
            assert fastpe.add_sinusoidal(source, offset=offset, out=out) is out
            assert _frontdoor.sinusoid_calls() == before + 1, f"{msg}: the common call did not take the fast path"
            assert_same_bits(source, x, f"{msg}: x was written")
            expected = x.copy()
            with general_path_only():
                fastpe.add_sinusoidal(expected, offset=offset)
            assert_same_bits(out, expected, msg)


SCALES = [1.0, 2.0, 27.712812921102035, 0.1, -3, np.float32(0.7), 3, np.int64(2), np.float16(1.5), 1e-30, 1e30,
          -0.0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, "bfloat16"], ids=str)
def test_a_scale_keeps_the_fast_path_with_the_general_bits(dtype):
    """x * scale + PE: a finite int or float scale is common too (sqrt(D) in most models), in place and
    into out, with the general path's bits: cached rows times a scale whose products round (0.1, sqrt(768))
    give the bits the generating kernel gives."""
    if dtype == "bfloat16":
        dtype = extra_import("ml_dtypes", "bfloat16").bfloat16
    rng = rng_for("fast path scale", np.dtype(dtype).name)
    for shape in ((1, 1, 768), (2, 40, 24), (3, 7, 9)):
        for kind, x in array_variants(shape, dtype, rng, kinds=("C", "F", "D-reversed")):
            for scale in SCALES:
                for offset in (0, 300, 2.5):
                    msg = f"{shape} {np.dtype(dtype).name} {kind} scale={scale!r} offset={offset}"
                    x_fast, x_general, taken = fast_and_general(x, offset=offset, scale=scale)
                    assert taken == 1, f"{msg}: the common call did not take the fast path"
                    assert_same_bits(x_fast, x_general, msg)
                    out = np.zeros_like(x)
                    before = _frontdoor.sinusoid_calls()
                    fastpe.add_sinusoidal(x, offset=offset, scale=scale, out=out)
                    assert _frontdoor.sinusoid_calls() == before + 1
                    assert_same_bits(out, x_general, f"{msg} out=")


def test_out_sharing_memory_with_x_takes_the_general_path():
    """out that is x takes the front door in place; out overlapping x in another way is the general
    path's (it reads every input first), and so is a read-only out (refused)."""
    buffer = np.zeros(2 * 5 * 8 + 8, np.float32)

    def shifted_x():
        buffer[:] = np.arange(buffer.size, dtype=np.float32)
        return buffer[8:].reshape(2, 5, 8)

    for out in (lambda: buffer[:-8].reshape(2, 5, 8), lambda: shifted_x()[::-1]):
        x_fast = shifted_x()
        before = _frontdoor.sinusoid_calls()
        fast = fastpe.add_sinusoidal(x_fast, offset=3, out=out()).copy()
        assert _frontdoor.sinusoid_calls() == before
        x_general = shifted_x()
        with general_path_only():
            general = fastpe.add_sinusoidal(x_general, offset=3, out=out()).copy()
        assert_same_bits(fast, general, "overlapping out")
    x = X.copy()
    before = _frontdoor.sinusoid_calls()
    assert fastpe.add_sinusoidal(x, offset=3, out=x) is x
    assert _frontdoor.sinusoid_calls() == before + 1
    read_only = np.zeros_like(X)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        fastpe.add_sinusoidal(X.copy(), offset=3, out=read_only)
    assert _frontdoor.sinusoid_calls() == before + 1
    assert not read_only.any()


class Subclass(np.ndarray):
    pass


def _unaligned(shape, dtype):
    dtype = np.dtype(dtype)
    buf = np.zeros(int(np.prod(shape)) * dtype.itemsize + 1, np.uint8)
    a = buf[1:].view(dtype).reshape(shape)
    assert not a.flags.aligned
    return a


def _read_only():
    a = X.copy()
    a.flags.writeable = False
    return a


UNCOMMON_X = {
    "subclass": lambda: X.copy().view(Subclass),
    "read-only": _read_only,
    "big-endian": lambda: X.astype(">f4"),
    "big-endian-f8": lambda: X.astype(">f8"),
    "unaligned": lambda: _unaligned((2, 5, 8), np.float32),
    "0-size": lambda: np.zeros((0, 5, 8), np.float32),
    "T=0": lambda: np.zeros((2, 0, 8), np.float32),
    "D=0": lambda: np.zeros((2, 5, 0), np.float64),
    "big-endian float16": lambda: X.astype(">f2"),
    "int": lambda: np.zeros((2, 5, 8), np.int32),
    "1-d": lambda: np.zeros(8, np.float32),
    "0-d": lambda: np.zeros((), np.float64),
    "overlapping": lambda: np.lib.stride_tricks.as_strided(np.zeros(64, np.float32), (2, 5, 8), (0, 32, 4),
                                                           writeable=True),
    "list": lambda: X.tolist(),
}


@pytest.mark.parametrize("name", sorted(UNCOMMON_X))
def test_every_other_x_takes_the_general_path(name):
    check_same_outcome(UNCOMMON_X[name], 0, offset=3)


def test_a_tensor_takes_the_front_door_through_its_view():
    """A CPU tensor written in place: its NumPy view takes the front door, with the general path's
    bits, and the tensor's version counter is bumped; a tensor the general path refuses is refused."""
    torch = conformance_import("torch")
    check_same_outcome(lambda: torch.zeros(2, 5, 8), 1, offset=3)
    x = torch.zeros(2, 5, 8)
    version = x._version
    assert fastpe.add_sinusoidal(x, offset=3) is x and x._version > version
    before = _frontdoor.sinusoid_calls()
    with pytest.raises(ValueError, match="requires grad.*fastpe.torch"):
        fastpe.add_sinusoidal(torch.zeros(2, 5, 8, requires_grad=True), offset=3)
    assert _frontdoor.sinusoid_calls() == before
    check_same_outcome(lambda: torch.zeros(2, 5, 8, dtype=torch.int32), 0, offset=3)


UNCOMMON_OFFSETS = [True, np.bool_(False), np.array(True), np.array(3, np.longdouble), np.array(3, object),
                    np.array(2**60), np.array(2**63, np.uint64), np.array(np.nan), np.array(1 + 0j),
                    np.array([1, 2]), np.array([1.0]),
                    float("nan"), float("inf"), -float("inf"), np.float32("nan"), np.float64("inf"),
                    np.longdouble(3), fractions.Fraction(1, 2), "3", None, 1 + 0j, [1, 2]]


@pytest.mark.parametrize("offset", UNCOMMON_OFFSETS, ids=repr)
def test_every_other_offset_takes_the_general_path(offset):
    check_same_outcome(X.copy, 0, offset=offset)


def _cache_trace(calls):
    fastpe.cache_clear()
    trace = []
    for dim in calls:
        fastpe.add_sinusoidal(np.zeros((2, 3, dim), np.float32), offset=1)
        trace.append(fastpe.cache_info())
    return trace


def test_the_cache_counts_fast_calls_as_general_ones_plus_their_rows(fresh_cache):
    """Each dim's plan is counted as the general path counts it; a fast call
    also reads block 0 of its cached rows (256 rows of float32), built once."""
    dims = [8, 8, 6, 8, 6]
    before = _frontdoor.sinusoid_calls()
    fast_trace = _cache_trace(dims)
    assert _frontdoor.sinusoid_calls() == before + len(dims)
    with general_path_only():
        general_trace = _cache_trace(dims)
    for k, (fast, general) in enumerate(zip(fast_trace, general_trace)):
        seen = dims[:k + 1]
        block_bytes = sum(256 * d * 4 for d in set(seen))
        assert fast.misses == 2 * general.misses  # each new dim: its plan and its block
        assert fast.entries == 2 * general.entries
        assert fast.hits == general.hits  # a repeated dim: its block instead of its plan
        assert fast.nbytes == general.nbytes + block_bytes


def test_with_no_cache_fast_calls_count_as_general_ones(fresh_cache):
    fastpe.set_cache_limit(0)
    dims = [8, 8, 6, 8, 6]
    fast_trace = _cache_trace(dims)
    with general_path_only():
        general_trace = _cache_trace(dims)
    assert fast_trace == general_trace
    assert fast_trace[-1].entries == 0 and fast_trace[-1].hits == 0


def test_the_fast_path_shares_the_general_plan(fresh_cache):
    """The front door's plan of the defaults is the entry encoding_plan gives them."""
    for dim in (1, 7, 64):
        before = _frontdoor.sinusoid_calls()
        fastpe.add_sinusoidal(np.zeros((1, 300, dim)), offset=0.5)  # generated (a fractional offset): its plan alone
        assert _frontdoor.sinusoid_calls() == before + 1
        misses = fastpe.cache_info().misses
        _frontdoor.encoding_plan(Encoding(dim, None, None, None))
        assert fastpe.cache_info().misses == misses
    assert fastpe.cache_info().misses == 3 and fastpe.cache_info().entries == 3


def test_cache_clear_between_fast_calls(fresh_cache):
    x = np.zeros((1, 4, 10), np.float64)
    a = fastpe.add_sinusoidal(x.copy(), offset=2)
    fastpe.cache_clear()
    b = fastpe.add_sinusoidal(x.copy(), offset=2)
    assert fastpe.cache_info().misses == 2  # the block of cached rows and, to build it, the plan
    with general_path_only():
        c = fastpe.add_sinusoidal(x.copy(), offset=2)
    assert_same_bits(a, b, "after cache_clear")
    assert_same_bits(a, c, "general path")


@settings(max_examples=80, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    lead=st.lists(st.integers(1, 4), min_size=0, max_size=2),
    T=st.integers(1, 40),
    D=st.integers(1, 70),
    dtype=st.sampled_from([np.float32, np.float64, np.float16]),
    kind=st.sampled_from(ALL_KINDS),
    scale=st.one_of(st.none(), st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)),
    offset=st.one_of(
        st.integers(-(2**40), 2**40),
        st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False),
        st.integers(-(2**31), 2**31 - 1).map(np.int32),
        st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=32).map(np.float32),
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_fast_and_general_paths_give_the_same_bits(lead, T, D, dtype, kind, scale, offset, seed):
    shape = tuple(lead) + (T, D)
    variants = dict(array_variants(shape, dtype, np.random.default_rng(seed), kinds=(kind,)))
    if kind not in variants:
        kind = "C"
        variants = dict(array_variants(shape, dtype, np.random.default_rng(seed), kinds=("C",)))
    x_fast, x_general, taken = fast_and_general(variants[kind], offset=offset, scale=scale)
    assert taken == 1
    assert_same_bits(x_fast, x_general, f"shape={shape} {kind} offset={offset!r} scale={scale!r}")


def test_many_shapes_keep_the_general_blocking():
    """More (T, D, dtype) shapes than the fast path keeps blockings for: the
    bits stay the general path's after its table is emptied and refilled."""
    rng = rng_for("many shapes")
    for T in range(1, 301):
        x = random_values((2, T, 3), np.float32, rng, 3.0)
        x_fast, x_general, taken = fast_and_general(x, offset=T)
        assert taken == 1
        assert_same_bits(x_fast, x_general, f"T={T}")
