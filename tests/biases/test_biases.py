"""ALiBi and T5 relative attention biases: kernels vs the NumPy reference, the
reference vs independent formulas, and every bad input. (Hugging Face's
BLOOM, MPT and T5: conformance/test_conformance_biases.py.)"""

import math

import numpy as np
import pytest

from fastpe import _bias as fast
from fastpe import _reference_bias as ref
from util import (ALL_KINDS, array_variants, assert_unchanged, assert_within, describe, exact_bucket, out_variants,
                  rng_for, snapshot)

DTYPES = (np.float32, np.float64)


def tol_of(expected, dtype, bias_abs=0.0):
    """Kernel vs reference. Both form the bias in float64, round it once to
    dtype and add in dtype, the same IEEE operations, so they should agree bit
    for bit; one ulp of dtype (and float64 ulps of the bias) is allowed so that
    a compiler reassociating the float64 bias (e.g. -march=native contracting
    into an FMA) is not mistaken for a bug. Any indexing error is far larger."""
    eps = float(np.finfo(dtype).eps)
    return eps * np.abs(np.asarray(expected, dtype=np.float64)) + 4 * 2.0**-52 * bias_abs + 1e-300


def check(fn_fast, fn_ref, scores, msg, *, out=None, **kw):
    """Run kernel and reference on copies; compare; check return value and untouched inputs."""
    before = scores.copy()
    expected = fn_ref(np.array(scores, copy=True), **kw)
    side = snapshot(*[v for v in kw.values() if isinstance(v, np.ndarray)])
    got = fn_fast(scores, out=out, **kw)
    full = f"{msg} [scores {describe(before)}; out {describe(out)}; {sorted(kw)}]"
    assert got is (scores if out is None else out), f"{full}: wrong array returned"
    if out is not None and not np.shares_memory(out, scores):
        assert scores.tobytes() == before.tobytes(), f"{full}: scores changed although out= was given"
    assert got.dtype == before.dtype
    assert_unchanged(side, f"{full}: an argument array")
    bias_abs = np.abs(expected.astype(np.float64) - before.astype(np.float64))
    assert_within(got, expected, tol_of(expected, before.dtype, bias_abs), full)
    return got


# ------------------------------------------------------------------ slopes

def paper_get_slopes(n):
    """The ALiBi paper's reference code, verbatim (ofirpress/attention_with_linear_biases)."""
    def get_slopes_power_of_2(n):
        start = 2 ** (-2 ** -(math.log2(n) - 3))
        ratio = start
        return [start * ratio**i for i in range(n)]

    if math.log2(n).is_integer():
        return get_slopes_power_of_2(n)
    closest_power_of_2 = 2 ** math.floor(math.log2(n))
    return get_slopes_power_of_2(closest_power_of_2) + paper_get_slopes(2 * closest_power_of_2)[0::2][
        : n - closest_power_of_2]


@pytest.mark.parametrize("n", list(range(1, 70)) + [96, 128, 255])
def test_slopes_match_paper_code(n):
    got = fast.alibi_slopes(n)
    assert got.dtype == np.float64 and got.shape == (n,)
    # The paper multiplies rounded powers (start * ratio**i): ratio's rounding
    # is raised to the power i, so its error grows ~i ulps along the list.
    np.testing.assert_allclose(got, paper_get_slopes(n), rtol=2.3e-16 * (n + 4), atol=0)


def test_slopes_exact_for_small_powers_of_two():
    assert fast.alibi_slopes(8).tolist() == [2.0**-k for k in range(1, 9)]
    assert fast.alibi_slopes(4).tolist() == [2.0**-k for k in (2, 4, 6, 8)]
    assert fast.alibi_slopes(1).tolist() == [2.0**-8]
    # 12 heads: the 8-head set, then every other slope of the 16-head set.
    assert fast.alibi_slopes(12).tolist() == [2.0**-k for k in range(1, 9)] + [2.0**-k for k in (0.5, 1.5, 2.5, 3.5)]


@pytest.mark.parametrize("max_bias", [1.0, 4.0, 8.0, 12.5, 16.0])
@pytest.mark.parametrize("n", [1, 2, 3, 5, 6, 7, 8, 12, 20, 32, 40])
def test_slopes_max_bias_independent(n, max_bias):
    m = 2 ** math.floor(math.log2(n))
    want = [math.pow(2.0, -max_bias * (h + 1) / m) for h in range(m)]
    want += [math.pow(2.0, -max_bias * (2 * k + 1) / (2 * m)) for k in range(n - m)]
    np.testing.assert_allclose(fast.alibi_slopes(n, max_bias), want, rtol=4e-16, atol=0)
    assert fast.alibi_slopes is ref.alibi_slopes or np.array_equal(fast.alibi_slopes(n, max_bias),
                                                                    ref.alibi_slopes(n, max_bias))


# ------------------------------------------------------------------ ALiBi: reference vs formula

def test_alibi_reference_vs_loops():
    rng = rng_for("alibi-loops")
    B, H, Tq, Tk = 2, 3, 4, 6
    x = rng.standard_normal((B, H, Tq, Tk))
    off = np.array([0, 5])
    slopes = rng.uniform(0.01, 1, H)
    got = ref.add_alibi(x.copy(), slopes=slopes, offset=off)
    kp = rng.integers(0, 10, (B, Tk))
    got_kp = ref.add_alibi(x.copy(), slopes=slopes, key_positions=kp)
    for b in range(B):
        for h in range(H):
            for i in range(Tq):
                for j in range(Tk):
                    assert got[b, h, i, j] == x[b, h, i, j] + slopes[h] * (j - (i + off[b]))
                    assert got_kp[b, h, i, j] == x[b, h, i, j] + slopes[h] * kp[b, j]


@pytest.mark.parametrize("dtype", DTYPES)
def test_accuracy_contract(dtype):
    """Against the exact float64 sum: at most half an ulp of the bias (its rounding
    to dtype) plus half an ulp of the result (the add), per element."""
    rng = rng_for("contract", dtype)
    shape = (2, 4, 30, 50)
    x = rng.standard_normal(shape).astype(dtype)
    off = np.array([3, 900])
    slopes = fast.alibi_slopes(4)
    exact = x.astype(np.float64) + slopes[None, :, None, None] * (
        np.arange(50)[None, None, None, :] - (np.arange(30)[None, None, :, None] + off[:, None, None, None]))
    got = fast.add_alibi(x.copy(), offset=off)
    half = 0.5 * float(np.finfo(dtype).eps)
    assert_within(got, exact, half * (np.abs(exact - x) + np.abs(exact)) * (1 + 1e-9), f"alibi contract {dtype}")
    table = rng.standard_normal((32, 4))
    rel = np.arange(50)[None, None, :] - (np.arange(30)[None, :, None] + off[:, None, None])
    bias = np.moveaxis(table[[[[exact_bucket(int(d), True, 32, 128) for d in row] for row in m] for m in rel]], -1, 1)
    exact = x.astype(np.float64) + bias
    got = fast.add_relative_bias(x.copy(), table, bidirectional=True, num_buckets=32, max_distance=128, offset=off)
    assert_within(got, exact, half * (np.abs(bias) + np.abs(exact)) * (1 + 1e-9), f"t5 contract {dtype}")


def test_alibi_default_slopes_and_max_bias():
    x = np.zeros((1, 5, 3, 4))
    np.testing.assert_array_equal(ref.add_alibi(x.copy()),
                                  ref.add_alibi(x.copy(), slopes=ref.alibi_slopes(5)))
    np.testing.assert_array_equal(fast.add_alibi(x.copy(), max_bias=4.0),
                                  ref.add_alibi(x.copy(), slopes=ref.alibi_slopes(5, 4.0)))


# ------------------------------------------------------------------ ALiBi: kernel vs reference

SHAPE = (2, 3, 5, 7)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_alibi_layouts(dtype, kind):
    rng = rng_for("alibi-layouts", dtype, kind)
    for label, x in array_variants(SHAPE, dtype, rng, kinds=(kind,)):
        check(fast.add_alibi, ref.add_alibi, x, f"alibi {label}")
    for label, x in array_variants(SHAPE, dtype, rng, kinds=(kind,)):
        check(fast.add_alibi, ref.add_alibi, x, f"alibi {label} offsets", offset=np.array([3, -2]))
    for label, x in array_variants(SHAPE, dtype, rng, kinds=(kind,)):
        kp = rng.integers(0, 20, (SHAPE[0], SHAPE[3]))
        check(fast.add_alibi, ref.add_alibi, x, f"alibi {label} key_positions", key_positions=kp)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", [
    {}, {"offset": 17}, {"offset": np.array([0, 1000])}, {"offset": -3}, {"max_bias": 3.0},
    {"slopes": np.array([0.5, -0.25, 3.0])}, {"key_positions": np.arange(7) * 1.5},
    {"key_positions": np.array([[0, 0, 0, 1, 2, 3, 4], [0, 1, 2, 3, 4, 5, 6]])},
    {"key_positions": np.array([[2], [5]])},
], ids=lambda kw: ",".join(kw) or "default")
def test_alibi_options_and_out(dtype, kw):
    rng = rng_for("alibi-out", dtype, sorted(kw))
    for label, out in out_variants(SHAPE, dtype, rng):
        x = rng.standard_normal(SHAPE).astype(dtype)
        check(fast.add_alibi, ref.add_alibi, x, f"alibi {label}", out=out, **kw)
    x = rng.standard_normal(SHAPE).astype(dtype)
    check(fast.add_alibi, ref.add_alibi, x, "alibi out=scores", out=x, **kw)


@pytest.mark.parametrize("fn,extra", [
    (("add_alibi",), {}),
    (("add_relative_bias",), {"bidirectional": True, "num_buckets": 32, "max_distance": 128}),
])
def test_out_overlapping_scores(fn, extra):
    """out a different view of scores' memory: the result is as if scores were read first."""
    rng = rng_for("overlap", fn)
    f, r = getattr(fast, fn[0]), getattr(ref, fn[0])
    args = (rng.standard_normal((32, 3)),) if fn[0] == "add_relative_bias" else ()
    base = rng.standard_normal((2, 3, 5, 8))
    expected = r(base[..., :7].copy(), *args, **extra)
    got = f(base[..., :7], *args, out=base[..., 1:], **extra)
    assert_within(got, expected, tol_of(expected, np.float64, 64.0), f"{fn[0]} overlapping out")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_threads_large(dtype, threads):
    """Large enough to run threaded (>= 2**15 elements); rows split between threads."""
    rng = rng_for("threads", dtype, threads)
    for shape in [(1, 2, 150, 130), (3, 5, 33, 70)]:
        x = np.swapaxes(rng.standard_normal(shape[:2] + shape[:1:-1]).astype(dtype), -1, -2)
        check(fast.add_alibi, ref.add_alibi, x, f"alibi threads={threads}", num_threads=threads,
              offset=np.arange(shape[0]) * 7)
        x = rng.standard_normal(shape).astype(dtype)
        check(fast.add_alibi, ref.add_alibi, x, f"alibi kp threads={threads}", num_threads=threads,
              key_positions=rng.integers(0, 100, (shape[0], shape[3])))
        x = rng.standard_normal(shape).astype(dtype)[:, :, ::-1]
        table = rng.standard_normal((32, shape[1])).astype(dtype)
        check(fast.add_relative_bias, ref.add_relative_bias, x, f"t5 threads={threads}", bias_table=table,
              bidirectional=bool(threads % 2), num_buckets=32, max_distance=128, num_threads=threads,
              offset=np.arange(shape[0]) * 11)


# ------------------------------------------------------------------ T5 buckets

GRID = [(bd, nb, md) for bd in (True, False) for nb, md in [
    (32, 128), (32, 256), (64, 128), (128, 128), (8, 16), (16, 100), (34, 27), (46, 164), (4, 3), (2, 5),
    (5, 7), (33, 65), (48, 81), (65, 108), (6, 1000)] if not (bd and nb < 4)]


@pytest.mark.parametrize("bidirectional,num_buckets,max_distance", GRID)
def test_buckets_vs_integer_definition(bidirectional, num_buckets, max_distance):
    rp = np.arange(-300, 301)
    got = fast.relative_position_bucket(rp, bidirectional=bidirectional, num_buckets=num_buckets,
                                        max_distance=max_distance)
    assert got.dtype == np.int64 and got.shape == rp.shape
    want = [exact_bucket(int(r), bidirectional, num_buckets, max_distance) for r in rp]
    assert got.tolist() == want
    assert got.min() >= 0 and got.max() < num_buckets


def test_bucket_input_forms():
    assert fast.relative_position_bucket(5).shape == ()
    assert fast.relative_position_bucket(np.array([[1, -1]], dtype=np.int32)).shape == (1, 2)
    assert fast.relative_position_bucket(np.array([], dtype=np.int64)).shape == (0,)
    big = np.array([-(2**62), 2**62])
    assert fast.relative_position_bucket(big).tolist() == [15, 31]


# ------------------------------------------------------------------ T5 add

def test_relative_reference_vs_loops():
    rng = rng_for("t5-loops")
    B, H, Tq, Tk = 2, 3, 5, 9
    x = rng.standard_normal((B, H, Tq, Tk))
    table = rng.standard_normal((16, H))
    off = np.array([0, 40])
    for bd in (True, False):
        got = ref.add_relative_bias(x.copy(), table, bidirectional=bd, num_buckets=16, max_distance=20, offset=off)
        for b in range(B):
            for h in range(H):
                for i in range(Tq):
                    for j in range(Tk):
                        bk = exact_bucket(j - (i + int(off[b])), bd, 16, 20)
                        assert got[b, h, i, j] == x[b, h, i, j] + table[bk, h]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_relative_layouts(dtype, kind):
    rng = rng_for("t5-layouts", dtype, kind)
    for table_dtype in DTYPES:
        table = rng.standard_normal((32, SHAPE[1])).astype(table_dtype)
        for bd in (True, False):
            for off in (0, np.array([4, 130])):
                for label, x in array_variants(SHAPE, dtype, rng, kinds=(kind,)):
                    check(fast.add_relative_bias, ref.add_relative_bias, x, f"t5 {label}", bias_table=table,
                          bidirectional=bd, num_buckets=32, max_distance=20, offset=off)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("offset", [0, 7, -4, np.array([0, 3]), np.array([5, 5]), np.array([0, 10**6]),
                                    np.array([[2], [9000]])], ids=str)
def test_relative_offsets_and_out(dtype, offset):
    rng = rng_for("t5-out", dtype, str(offset))
    table = rng.standard_normal((20, SHAPE[1]))
    for label, out in out_variants(SHAPE, dtype, rng):
        x = rng.standard_normal(SHAPE).astype(dtype)
        if np.ndim(offset) == 2:
            with pytest.raises(ValueError, match="offset"):
                fast.add_relative_bias(x, table, bidirectional=False, num_buckets=20, max_distance=50,
                                       offset=offset, out=out)
            return
        check(fast.add_relative_bias, ref.add_relative_bias, x, f"t5 {label}", out=out, bias_table=table,
              bidirectional=False, num_buckets=20, max_distance=50, offset=offset)


def test_relative_lookup_spans():
    """Distinct offsets far apart get separate spans; close ones share one: both index correctly."""
    rng = rng_for("t5-spans")
    table = rng.standard_normal((32, 2))
    x = rng.standard_normal((4, 2, 6, 5))
    for off in (np.array([0, 1, 2, 3]), np.array([0, 10**9, 5, 10**9]), np.array([-(10**6), 3, 3, 10**6])):
        check(fast.add_relative_bias, ref.add_relative_bias, x.copy(), f"spans {off}", bias_table=table,
              bidirectional=True, num_buckets=32, max_distance=128, offset=off)


# ------------------------------------------------------------------ empty inputs

@pytest.mark.parametrize("shape", [(0, 2, 3, 4), (2, 0, 3, 4), (2, 2, 0, 4), (2, 2, 3, 0)])
def test_empty_is_noop(shape):
    for f, kw in [(fast.add_alibi, {}), (fast.add_alibi, {"offset": np.zeros(shape[0], dtype=int)}),
                  (fast.add_relative_bias, {"bias_table": np.zeros((32, shape[1])), "bidirectional": True,
                                            "num_buckets": 32, "max_distance": 128}),
                  (ref.add_alibi, {}), (ref.add_relative_bias, {"bias_table": np.zeros((32, shape[1])),
                                                                "bidirectional": True, "num_buckets": 32,
                                                                "max_distance": 128})]:
        x = np.zeros(shape, dtype=np.float32)
        assert f(x, **kw) is x
        out = np.zeros(shape, dtype=np.float32)
        assert f(x, out=out, **kw) is out


# ------------------------------------------------------------------ bad input

def _scores(shape=(2, 3, 4, 5), dtype=np.float32):
    return rng_for("bad", shape, dtype).standard_normal(shape).astype(dtype)


def _ro():
    x = _scores()
    x.flags.writeable = False
    return x


T5_OK = {"bidirectional": True, "num_buckets": 32, "max_distance": 128}
TABLE = np.ones((32, 3))

BAD_ALIBI = [
    ("list scores", lambda: ([[[[1.0]]]],), {}, TypeError, "scores"),
    ("3-D", lambda: (_scores((3, 4, 5)),), {}, ValueError, "4 dimensions"),
    ("5-D", lambda: (_scores((1, 2, 3, 4, 5)),), {}, ValueError, "4 dimensions"),
    ("int dtype", lambda: (np.zeros((1, 1, 2, 2), dtype=np.int32),), {}, TypeError, "scores"),
    ("longdouble", lambda: (np.zeros((1, 1, 2, 2), dtype=np.longdouble),), {}, TypeError, np.dtype(np.longdouble).name),
    ("read-only", lambda: (_ro(),), {}, ValueError, "read-only"),
    ("slopes shape", lambda: (_scores(),), {"slopes": np.ones(4)}, ValueError, "slopes"),
    ("slopes 2-D", lambda: (_scores(),), {"slopes": np.ones((3, 1))}, ValueError, "slopes"),
    ("slopes nan", lambda: (_scores(),), {"slopes": np.array([1, np.nan, 1])}, ValueError, "slopes"),
    ("slopes str", lambda: (_scores(),), {"slopes": np.array(["a", "b", "c"])}, TypeError, "slopes"),
    ("slopes + max_bias", lambda: (_scores(),), {"slopes": np.ones(3), "max_bias": 4.0}, ValueError, "max_bias"),
    ("max_bias 0", lambda: (_scores(),), {"max_bias": 0.0}, ValueError, "max_bias"),
    ("max_bias -1", lambda: (_scores(),), {"max_bias": -1}, ValueError, "max_bias"),
    ("max_bias inf", lambda: (_scores(),), {"max_bias": np.inf}, ValueError, "max_bias"),
    ("max_bias str", lambda: (_scores(),), {"max_bias": "8"}, TypeError, "max_bias"),
    ("offset float", lambda: (_scores(),), {"offset": 1.5}, TypeError, "offset"),
    ("offset float array", lambda: (_scores(),), {"offset": np.array([1.0, 2.0])}, TypeError, "offset"),
    ("offset shape", lambda: (_scores(),), {"offset": np.array([1, 2, 3])}, ValueError, "offset"),
    ("offset 2-D", lambda: (_scores(),), {"offset": np.zeros((2, 3), dtype=int)}, ValueError, "offset"),
    ("offset huge", lambda: (_scores(),), {"offset": 2**60}, ValueError, "offset"),
    ("offset huge array", lambda: (_scores(),), {"offset": np.array([0, 2**60])}, ValueError, "offset"),
    ("offset bool", lambda: (_scores(),), {"offset": True}, TypeError, "offset"),
    ("kp shape", lambda: (_scores(),), {"key_positions": np.zeros((2, 4))}, ValueError, "key_positions"),
    ("kp 3-D", lambda: (_scores(),), {"key_positions": np.zeros((1, 2, 5))}, ValueError, "key_positions"),
    ("kp nan", lambda: (_scores(),), {"key_positions": np.full((2, 5), np.nan)}, ValueError, "key_positions"),
    ("kp str", lambda: (_scores(),), {"key_positions": "abc"}, TypeError, "key_positions"),
    ("kp + offset", lambda: (_scores(),), {"key_positions": np.zeros((2, 5)), "offset": 3}, ValueError, "offset"),
    ("kp + offset array", lambda: (_scores(),), {"key_positions": np.zeros((2, 5)), "offset": np.array([0, 1])},
     ValueError, "offset"),
    ("out shape", lambda: (_scores(),), {"out": np.zeros((2, 3, 4, 6), dtype=np.float32)}, ValueError, "out"),
    ("out dtype", lambda: (_scores(),), {"out": np.zeros((2, 3, 4, 5))}, ValueError, "out"),
    ("out list", lambda: (_scores(),), {"out": [0.0]}, TypeError, "out"),
    ("out read-only", lambda: (_scores(),), {"out": _ro()}, ValueError, "read-only"),
    ("num_threads 0", lambda: (_scores(),), {"num_threads": 0}, ValueError, "num_threads"),
    ("num_threads float", lambda: (_scores(),), {"num_threads": 2.0}, TypeError, "num_threads"),
]

BAD_T5 = [
    ("3-D", lambda: (_scores((3, 4, 5)), TABLE), T5_OK, ValueError, "4 dimensions"),
    ("read-only", lambda: (_ro(), TABLE), T5_OK, ValueError, "read-only"),
    ("int dtype", lambda: (np.zeros((2, 3, 2, 2), dtype=np.int64), TABLE), T5_OK, TypeError, "scores"),
    ("table rows", lambda: (_scores(), np.ones((31, 3))), T5_OK, ValueError, "bias_table"),
    ("table heads", lambda: (_scores(), np.ones((32, 4))), T5_OK, ValueError, "bias_table"),
    ("table 1-D", lambda: (_scores(), np.ones(32)), T5_OK, ValueError, "bias_table"),
    ("table nan", lambda: (_scores(), np.full((32, 3), np.nan)), T5_OK, ValueError, "bias_table"),
    ("table str", lambda: (_scores(), "table"), T5_OK, TypeError, "bias_table"),
    ("bidirectional int", lambda: (_scores(), TABLE), {**T5_OK, "bidirectional": 1}, TypeError, "bidirectional"),
    ("num_buckets float", lambda: (_scores(), TABLE), {**T5_OK, "num_buckets": 32.0}, TypeError, "num_buckets"),
    ("num_buckets 0", lambda: (_scores(), np.ones((0, 3))), {**T5_OK, "num_buckets": 0}, ValueError, "num_buckets"),
    ("num_buckets 3 bidir", lambda: (_scores(), np.ones((3, 3))), {**T5_OK, "num_buckets": 3}, ValueError,
     "num_buckets must be >= 4"),
    ("num_buckets 1 uni", lambda: (_scores(), np.ones((1, 3))), {**T5_OK, "num_buckets": 1, "bidirectional": False},
     ValueError, "num_buckets must be >= 2"),
    ("max_distance 0", lambda: (_scores(), TABLE), {**T5_OK, "max_distance": 0}, ValueError, "max_distance"),
    ("max_distance -5", lambda: (_scores(), TABLE), {**T5_OK, "max_distance": -5}, ValueError, "max_distance"),
    ("max_distance = max_exact", lambda: (_scores(), TABLE), {**T5_OK, "max_distance": 8}, ValueError,
     "max_distance must be > 8"),
    ("max_distance float", lambda: (_scores(), TABLE), {**T5_OK, "max_distance": 128.0}, TypeError, "max_distance"),
    ("offset float", lambda: (_scores(), TABLE), {**T5_OK, "offset": 0.5}, TypeError, "offset"),
    ("offset shape", lambda: (_scores(), TABLE), {**T5_OK, "offset": np.array([1, 2, 3])}, ValueError, "offset"),
    ("out dtype", lambda: (_scores(), TABLE), {**T5_OK, "out": np.zeros((2, 3, 4, 5))}, ValueError, "out"),
    ("num_threads -1", lambda: (_scores(), TABLE), {**T5_OK, "num_threads": -1}, ValueError, "num_threads"),
]


def _check_bad(fn, make_args, kw, exc, match, label):
    args = make_args()
    kw = {k: (v() if callable(v) else v) for k, v in kw.items()}
    snaps = snapshot(*args, *kw.values())
    with pytest.raises(exc, match=match):
        fn(*args, **kw)
    assert_unchanged(snaps, label)


@pytest.mark.parametrize("impl", ["fast", "ref"])
@pytest.mark.parametrize("label,make_args,kw,exc,match", BAD_ALIBI, ids=[c[0] for c in BAD_ALIBI])
def test_bad_alibi(impl, label, make_args, kw, exc, match):
    _check_bad((fast if impl == "fast" else ref).add_alibi, make_args, kw, exc, match, label)


@pytest.mark.parametrize("impl", ["fast", "ref"])
@pytest.mark.parametrize("label,make_args,kw,exc,match", BAD_T5, ids=[c[0] for c in BAD_T5])
def test_bad_relative(impl, label, make_args, kw, exc, match):
    _check_bad((fast if impl == "fast" else ref).add_relative_bias, make_args, kw, exc, match, label)


def test_bad_t5_without_required_keywords():
    with pytest.raises(TypeError):
        fast.add_relative_bias(_scores(), TABLE)  # bidirectional, num_buckets, max_distance are required


@pytest.mark.parametrize("n,max_bias,exc", [(0, 8.0, ValueError), (-2, 8.0, ValueError), (2.5, 8.0, TypeError),
                                            (True, 8.0, TypeError), ("4", 8.0, TypeError), (4, 0.0, ValueError),
                                            (4, float("nan"), ValueError), (4, None, TypeError)])
def test_bad_slopes(n, max_bias, exc):
    with pytest.raises(exc, match="n_heads|max_bias"):
        fast.alibi_slopes(n, max_bias)


@pytest.mark.parametrize("rp,kw,exc,match", [
    (np.array([1.0, 2.0]), {}, TypeError, "relative_position"),
    ("abc", {}, TypeError, "relative_position"),
    (np.array([1]), {"num_buckets": 2}, ValueError, "num_buckets"),
    (np.array([1]), {"num_buckets": 2, "bidirectional": False, "max_distance": 1}, ValueError, "max_distance"),
    (np.array([1]), {"max_distance": 0}, ValueError, "max_distance"),
    (np.array([1]), {"bidirectional": None}, TypeError, "bidirectional"),
    (np.array([2**63], dtype=np.uint64), {}, ValueError, "2\\*\\*63"),
    (np.array([-(2**63)], dtype=np.int64), {}, ValueError, "2\\*\\*63"),
])
def test_bad_bucket_settings(rp, kw, exc, match):
    with pytest.raises(exc, match=match):
        fast.relative_position_bucket(rp, **kw)


def test_scores_equal_out_and_readonly_scores_with_out():
    """Read-only scores are fine when out= is given (scores are only read)."""
    x = _scores()
    x.flags.writeable = False
    out = np.empty_like(x)
    check(fast.add_alibi, ref.add_alibi, x, "read-only scores with out", out=out)
    check(fast.add_relative_bias, ref.add_relative_bias, x, "read-only scores with out", out=out,
          bias_table=TABLE, **T5_OK)
