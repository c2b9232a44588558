"""16-bit storage: IEEE float16 and bfloat16 (ml_dtypes' NumPy dtype).

The rule under test: for a 16-bit x (and out), every function forms its value
in float64 (float64(x) * scale + PE, angles in float64) and rounds it once,
correctly (to nearest even), to the storage type. Two kinds of checks:

* Against fastpe.reference, every entry point, within one unit in the last
  place of the storage type (measured at the reference value; below the
  normal range, at the smallest normal). Exact equality is not promised: PE
  differs from the reference's by ~1e-14 (recurrence against libm), which
  decides near-ties, and the reference stores bfloat16 through ml_dtypes'
  float64 -> bfloat16 cast, which rounds twice (through float32). Both are
  rare, so mismatching elements must also be rare (MISMATCH_FRACTION).
* The rounding itself, independently of the reference: add_table of a zero
  16-bit x and a float64 table must store each table value correctly rounded,
  bit for bit, at ties and one float64 ulp either side of them, where a plain
  float64 -> float32 -> 16-bit conversion would round twice the wrong way.
  Expected values are known by construction, or come from NumPy's direct
  float64 -> float16 cast (correctly rounded) and an exact float64 formula.

float16 tests run without ml_dtypes; bfloat16 ones are skipped without it.
"""

import math
from fractions import Fraction

import numpy as np
import pytest
from optional import extra_import
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastpe
from fastpe import reference
from processes import run_python
from util import ALL_KINDS, array_variants, assert_unchanged, describe, out_variants, rng_for, snapshot

HALF_NAMES = ("float16", "bfloat16")
# Significant bits (the implicit one included) and the frexp exponent of the
# smallest normal, 2**(MIN_EXP - 1), of each storage type.
PRECISION = {"float16": 11, "bfloat16": 8}
MIN_EXP = {"float16": -13, "bfloat16": -125}
# Bits of the largest finite value; one more is +inf.
MAX_FINITE_BITS = {"float16": 0x7BFF, "bfloat16": 0x7F7F}
# Elements allowed to differ from the reference (each by at most one ulp).
MISMATCH_FRACTION = 1e-3


def half_dtype(name):
    """The dtype called `name`; bfloat16 skips the test where ml_dtypes is missing."""
    if name == "float16":
        return np.dtype(np.float16)
    ml_dtypes = extra_import("ml_dtypes", "test")
    return np.dtype(ml_dtypes.bfloat16)


@pytest.fixture(params=HALF_NAMES)
def half(request):
    return half_dtype(request.param)


def _use_half_rows(name):
    """Switch the kernels to one implementation of the 16-bit rows (one
    setting, for every family); returns the previous one. Skips the test
    where this CPU lacks it."""
    from fastpe import _kernels

    try:
        return _kernels.set_half_simd(name)
    except ValueError:
        pytest.skip(f"this CPU lacks the {name} instructions of the 16-bit rows (or the build left them out)")


def _restore_half_rows(previous):
    from fastpe import _kernels

    _kernels.set_half_simd(previous)


@pytest.fixture(autouse=True, scope="module", params=["avx512bf16", "avx512", "avx2", "portable"])
def half_rows(request):
    """Every test runs with each implementation of the 16-bit rows this CPU
    has: AVX-512 with AVX512-BF16, AVX-512, AVX2 with F16C,
    and the portable loops."""
    previous = _use_half_rows(request.param)
    yield request.param
    _restore_half_rows(previous)


# --------------------------------------------------------------------------
# Units in the last place, exact rounding, comparisons


def ulp_at(values, dtype):
    """One ulp of dtype at |values| (finite float64); the subnormal spacing below the normal range."""
    name = np.dtype(dtype).name
    smallest_normal = math.ldexp(1.0, MIN_EXP[name] - 1)
    _, e = np.frexp(np.maximum(np.abs(np.asarray(values, dtype=np.float64)), smallest_normal))
    return np.ldexp(1.0, e - PRECISION[name])


def round_exact(values, dtype):
    """float64 values rounded to nearest even in dtype, in exact float64 arithmetic
    (scaling by a power of two, np.rint, scaling back): an independent model of
    a correct conversion, whose result dtype holds exactly (or is +-inf)."""
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    q = ulp_at(np.where(finite, v, 0.0), dtype)
    r = np.rint(np.where(finite, v, 0.0) / q) * q
    top = np.array(MAX_FINITE_BITS[np.dtype(dtype).name], dtype=np.uint16).view(dtype).astype(np.float64)
    r = np.where(np.abs(r) > top, np.copysign(np.inf, v), r)
    return np.where(finite, r, v).astype(dtype)


def bits(a):
    return np.ascontiguousarray(a).view(np.uint16)


def assert_bits_equal(got, expected, msg, values=None):
    """Same bits everywhere, except that a NaN only has to be a NaN."""
    assert got.dtype == expected.dtype and got.shape == expected.shape, f"{msg}: {describe(got)} vs {describe(expected)}"
    g, e = got.astype(np.float32), expected.astype(np.float32)
    nan = np.isnan(e)
    assert np.array_equal(np.isnan(g), nan), f"{msg}: NaNs at different places"
    bad = (bits(got) != bits(expected)) & ~nan
    if bad.any():
        i = np.flatnonzero(bad.ravel())
        shown = ", ".join(
            f"[{k}] {'' if values is None else repr(float(np.ravel(values)[k])) + ' -> '}"
            f"got {g.ravel()[k]!r} (0x{int(bits(got).ravel()[k]):04x}) "
            f"expected {e.ravel()[k]!r} (0x{int(bits(expected).ravel()[k]):04x})"
            for k in i[:5])
        raise AssertionError(f"{msg}: {i.size} of {got.size} elements differ; {shown}")


def assert_half_close(got, expected, exact, msg, slack=0.0, fraction=MISMATCH_FRACTION):
    """got (16-bit) against the reference.

    `expected` is the reference's 16-bit result, `exact` its float64 value
    (rounded correctly here), `slack` the absolute error that float64 value may
    carry (PE's, and the float64 product's: see value_slack). Then:
      * |got - expected| <= one ulp of the storage type at expected, + slack;
        same NaNs and infinities;
      * got differs from exact, correctly rounded, by more than slack in at most
        `fraction` of the elements (at least one: PE exactly 1, cos 0, can make
        an exact tie that PE's ~1e-16 recurrence error decides)."""
    assert got.dtype == expected.dtype, f"{msg}: dtype {got.dtype} != {expected.dtype}"
    assert got.shape == expected.shape, f"{msg}: shape {got.shape} != {expected.shape}"
    if got.size == 0:
        return
    g, e = got.astype(np.float64), expected.astype(np.float64)
    finite = np.isfinite(e)
    assert np.array_equal(np.isnan(g), np.isnan(e)), f"{msg}: NaNs at different places"
    assert np.array_equal(g[~finite & ~np.isnan(e)], e[~finite & ~np.isnan(e)]), f"{msg}: infinities differ"
    slack = np.broadcast_to(np.where(np.isfinite(slack), slack, 0.0), g.shape)
    err = np.where(finite, np.abs(g - np.where(finite, e, 0.0)), 0.0)
    tol = ulp_at(np.where(finite, e, 0.0), got.dtype) + slack
    bad = err > tol
    if bad.any():
        k = np.unravel_index(np.argmax(np.where(bad, err / tol, 0)), err.shape)
        raise AssertionError(f"{msg}: {int(bad.sum())} of {err.size} elements beyond one ulp; worst at {k}: "
                             f"got {g[k]!r}, expected {e[k]!r} (ulp + slack {tol[k]!r})")
    correct = round_exact(exact, got.dtype).astype(np.float64)
    with np.errstate(invalid="ignore"):  # inf - inf where both overflow
        off = np.where(finite, np.abs(g - correct), 0.0) > slack
    differ = int(off.sum())
    assert differ <= max(1, fraction * got.size), (
        f"{msg}: {differ} of {got.size} elements differ from the correctly rounded reference value; "
        f"correct rounding makes that rare (<= {fraction:g})")


# The float64 error of a value x*scale + PE, relative to 1 + |x*scale| + |value|:
# PE's (the contract's 1e-12 up to |p| = 4096, absolute) and the product's
# (2**-53 relative; the kernels may fuse the multiply-add). bfloat16 reaches
# down to 1e-38, so where PE should be 0 (sin 0) its ~1e-16 recurrence error
# shows; float16 rounds it to a (signed) zero.
PE_ERROR = 1e-12


def value_slack(exact, xs=0.0, pe_error=PE_ERROR):
    return pe_error * (1.0 + np.abs(xs) + np.abs(exact))


def random_half(shape, dtype, rng, magnitude=3.0):
    return rng.uniform(-magnitude, magnitude, shape).astype(dtype)


def compare_fused(name, x, *args, out=None, msg="", pe_error=PE_ERROR, **kwargs):
    """fastpe.<name> against reference.<name> (each on its own copy of x): the
    return value, x left alone under a separate out=, values within one ulp."""
    before = x.copy()
    expected = getattr(reference, name)(x.copy(), *args, **kwargs)
    exact = getattr(reference, name)(x.astype(np.float64), *args, **kwargs)
    got = getattr(fastpe, name)(x, *args, out=out, **kwargs)
    full = f"{name} {msg} [x {describe(before)}; out {describe(out)}; {sorted(kwargs)}]"
    assert got is (x if out is None else out), f"{full}: must return the array it wrote"
    if out is not None and not np.shares_memory(out, x):
        assert x.tobytes() == before.tobytes(), f"{full}: x changed although out= was given"
    xs = before.astype(np.float64) * (kwargs.get("scale") or 1.0)
    assert_half_close(got, expected, exact, full, value_slack(exact, xs, pe_error))
    return got


# --------------------------------------------------------------------------
# Correct rounding, independently of the reference


def tie_cases(dtype):
    """(float64 values, expected 16-bit bits) known by construction, for every
    pair of neighbours lo < hi of non-negative dtype values (the largest finite
    value paired with +inf) and their negatives:
      the tie (lo + hi) / 2 -> whichever of lo, hi is even;
      one float64 ulp above / below the tie -> hi / lo;
      a quarter float32 ulp above / below the tie -> hi / lo (float64 -> float32
        rounding to nearest would land on the tie, and the second rounding
        would go to even: the double-rounding trap round-to-odd avoids);
      lo itself -> lo."""
    name = np.dtype(dtype).name
    lo_bits = np.arange(MAX_FINITE_BITS[name] + 1, dtype=np.uint16)
    hi_bits = lo_bits + np.uint16(1)
    lo = lo_bits.view(dtype).astype(np.float64)
    tie = lo + ulp_at(lo, dtype) / 2
    even = np.where(lo_bits % 2 == 0, lo_bits, hi_bits)
    quarter32 = np.spacing(tie.astype(np.float32)).astype(np.float64) / 4
    values = [tie, np.nextafter(tie, np.inf), np.nextafter(tie, -np.inf), tie + quarter32, tie - quarter32, lo]
    expected = [even, hi_bits, lo_bits, hi_bits, lo_bits, lo_bits]
    v, b = np.concatenate(values), np.concatenate(expected)
    return np.concatenate([v, -v]), np.concatenate([b, b | np.uint16(0x8000)])


def special_cases(dtype):
    """Zeros, infinities, NaN and values far outside the range, with their expected bits."""
    inf_bits = MAX_FINITE_BITS[np.dtype(dtype).name] + 1
    f32_max = float(np.finfo(np.float32).max)
    cases = [(0.0, 0), (-0.0, 0x8000), (np.inf, inf_bits), (-np.inf, inf_bits | 0x8000),
             (5e-324, 0), (-5e-324, 0x8000), (1e-300, 0), (-1e-300, 0x8000),
             (1e300, inf_bits), (-1e300, inf_bits | 0x8000),
             (f32_max * (1 + 2**-30), inf_bits), (-f32_max * (1 + 2**-30), inf_bits | 0x8000), (np.nan, None)]
    if np.dtype(dtype) == np.float16:
        cases += [(65504.0, 0x7BFF), (65519.99, 0x7BFF), (65520.0, 0x7C00), (-65520.0, 0xFC00), (65536.0, 0x7C00),
                  (2.0**-24, 0x0001), (2.0**-25, 0x0000), (2.0**-25 * (1 + 2**-40), 0x0001),
                  (2.0**-14, 0x0400), (2.0**-14 - 2.0**-25, 0x0400), (2.0**-14 - 2.0**-24, 0x03FF)]
    values = np.array([v for v, _ in cases])
    nan_bits = (inf_bits | (inf_bits >> 1)) & 0x7FFF  # a quiet NaN (any NaN will do)
    expected = np.array([nan_bits if b is None else b for _, b in cases], dtype=np.uint16)
    return values, expected


def store_through_add_table(values, dtype, table_dtype=np.float64, out=False):
    """x + table with x a zero of the value's sign (so that x + v is v exactly,
    -0 included) in dtype, table = values in table_dtype, laid out as (rows, 64)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    pad = -len(v) % 64
    v = np.concatenate([v, np.zeros(pad)]).reshape(-1, 64)
    x = np.copysign(0.0, v).astype(dtype)
    with np.errstate(over="ignore"):
        table = v.astype(table_dtype)
    target = np.full_like(x, 7) if out else None
    got = fastpe.add_table(x, table, scale=1.0, out=target)
    return got.ravel()[: v.size - pad]


@pytest.mark.parametrize("name", HALF_NAMES)
def test_exact_model_matches_construction_and_numpy(name):
    """round_exact (the model the random-value tests use) agrees with the
    constructed cases, and with NumPy's correctly rounded float64 -> float16 cast."""
    dtype = half_dtype(name)
    for values, expected in (tie_cases(dtype), special_cases(dtype)):
        assert_bits_equal(round_exact(values, dtype), expected.view(dtype), f"round_exact {name}", values)
    if name == "float16":
        rng = rng_for("model", name)
        v = np.concatenate([tie_cases(dtype)[0], rng.standard_normal(20000) * 10.0 ** rng.integers(-9, 6, 20000)])
        with np.errstate(over="ignore"):
            assert_bits_equal(round_exact(v, dtype), v.astype(np.float16), "round_exact vs numpy", v)


@pytest.mark.parametrize("out", [False, True], ids=["in-place", "out"])
@pytest.mark.parametrize("name", HALF_NAMES)
def test_rounding_ties_and_double_rounding_traps(name, out):
    """Every tie of the type, one float64 ulp and a quarter float32 ulp either
    side, largest finite value to overflow, subnormals, zeros, infinities, NaN."""
    dtype = half_dtype(name)
    for label, (values, expected) in (("ties", tie_cases(dtype)), ("specials", special_cases(dtype))):
        got = store_through_add_table(values, dtype, out=out)
        assert_bits_equal(got, expected.view(dtype), f"add_table float64 table -> {name} ({label})", values)


@pytest.mark.parametrize("name", HALF_NAMES)
def test_rounding_float32_table(name):
    """A float32 table: its ties and float32 neighbours of them (the f32 row kernels)."""
    dtype = half_dtype(name)
    values, expected = tie_cases(dtype)
    n = values.size // 2 // 6
    ties, tie_bits = values[:n], expected[:n]
    hi_bits, lo_bits = expected[n : 2 * n], expected[2 * n : 3 * n]
    t32 = ties.astype(np.float32)
    assert np.array_equal(t32.astype(np.float64), ties), "every tie of a 16-bit type is a float32 value"
    v = np.concatenate([t32, np.nextafter(t32, np.float32(np.inf)), np.nextafter(t32, np.float32(-np.inf))])
    want = np.concatenate([tie_bits, hi_bits, lo_bits])
    v, want = np.concatenate([v, -v]), np.concatenate([want, want | np.uint16(0x8000)])
    got = store_through_add_table(v, dtype, table_dtype=np.float32)
    assert_bits_equal(got, want.view(dtype), f"add_table float32 table -> {name}", v)


@pytest.mark.parametrize("name", HALF_NAMES)
def test_rounding_random_values_whole_range(name):
    """Random float64 values over the type's whole range (log-uniform magnitudes,
    both signs, into overflow and below the subnormals): correctly rounded."""
    dtype = half_dtype(name)
    rng = rng_for("random-range", name)
    lo_exp, hi_exp = MIN_EXP[name] - PRECISION[name] - 3, -MIN_EXP[name] + 5
    v = rng.choice([-1.0, 1.0], 200_000) * np.exp2(rng.uniform(lo_exp, hi_exp, 200_000))
    if name == "float16":
        with np.errstate(over="ignore"):
            expected = v.astype(np.float16)  # NumPy converts float64 -> float16 directly, correctly rounded
    else:
        expected = round_exact(v, dtype)
    assert_bits_equal(store_through_add_table(v, dtype), expected, f"random values -> {name}", v)


@pytest.mark.parametrize("name", HALF_NAMES)
def test_rounding_through_the_bias_kernel(name):
    """add_alibi with slope v per head adds v * (j - i): +v at (i, j) = (0, 1)
    and -v at (1, 0); the bias kernel's 16-bit store rounds them correctly too."""
    dtype = half_dtype(name)
    values, expected = tie_cases(dtype)
    keep = values > 0
    values, expected = values[keep], expected[keep]
    scores = np.zeros((1, values.size, 2, 2), dtype)
    fastpe.add_alibi(scores, slopes=values)
    assert_bits_equal(scores[0, :, 0, 1], expected.view(dtype), f"add_alibi +slope -> {name}", values)
    assert_bits_equal(scores[0, :, 1, 0], (expected | np.uint16(0x8000)).view(dtype),
                      f"add_alibi -slope -> {name}", -values)


@pytest.mark.parametrize("table_kind", ["float64", "float32", "same"])
@pytest.mark.parametrize("out", [False, True], ids=["in-place", "out"])
@pytest.mark.parametrize("name", HALF_NAMES)
def test_exhaustive_round_trip(name, out, table_kind):
    """All 65536 bit patterns plus a table of -0.0 (x + -0 is x for every x,
    +0 included) come back bit-identical; NaNs stay NaN."""
    dtype = half_dtype(name)
    x = np.arange(65536, dtype=np.uint16).view(dtype).reshape(256, 256)
    table = np.full((256, 256), -0.0, dtype=dtype if table_kind == "same" else table_kind)
    before = x.copy()
    target = np.full_like(x, 3) if out else None
    got = fastpe.add_table(x, table, out=target)
    assert got is (x if target is None else target)
    assert_bits_equal(got, before, f"round trip {name} table {table_kind} {'out' if out else 'in place'}")
    if out:
        assert bits(x).tobytes() == bits(before).tobytes(), "x changed although out= was given"


def near_midpoint_tables(x, dtype, rng):
    """Float64 tables pe, one per offset delta, that put the exact x + pe at a
    16-bit midpoint m, or delta off it: m lies between the two 16-bit
    neighbours of x + d, with d a random multiple of x (cancelling down to
    0, or growing) or of random magnitude. The deltas: 0, one float64 ulp,
    and a quarter to three float32 ulps of m (where a float32 sum would
    round twice, and where the vector loops' window around the midpoints
    begins and ends), both signs. Yields (label, table)."""
    x64 = x.astype(np.float64)
    finite = np.isfinite(x64)
    base = np.where(finite, x64, 1.0)
    top = float(np.array(MAX_FINITE_BITS[np.dtype(dtype).name], dtype=np.uint16).view(dtype).astype(np.float64))
    d = np.where(rng.random(x.shape) < 0.75, base * rng.uniform(-3.0, 3.0, x.shape),
                 rng.choice([-1.0, 1.0], x.shape) * np.exp2(rng.uniform(-30, 10, x.shape)))
    target = np.clip(base + d, -top, top)
    q = ulp_at(target, dtype)
    m = np.floor(target / q) * q + q / 2
    ulp32 = np.spacing(np.abs(m).astype(np.float32)).astype(np.float64)
    ulp64 = np.spacing(np.abs(m))
    for label, delta in (("at the midpoint", 0.0), ("one float64 ulp", ulp64), ("a quarter float32 ulp", ulp32 / 4),
                         ("half a float32 ulp", ulp32 / 2), ("one float32 ulp", ulp32),
                         ("1.5 float32 ulps", 1.5 * ulp32), ("3 float32 ulps", 3 * ulp32)):
        for sign in ((1.0,) if label == "at the midpoint" else (1.0, -1.0)):
            yield f"{label} {'above' if sign > 0 else 'below'}", (m - base) + sign * delta


# Scales whose product with every x is exact in float64, so the model's two roundings are one.
@pytest.mark.parametrize("scale", [1.0, 3.0, -0.5, 1 + 2**-20], ids=lambda s: f"scale={s}")
@pytest.mark.parametrize("name", HALF_NAMES)
def test_exhaustive_sums_near_midpoints(name, scale):
    """All 65536 x of the type, each added to table values that put the sum
    at or near a 16-bit midpoint (near_midpoint_tables): the float64 sum
    x * scale + pe, rounded once, correctly (round_exact), bit for bit, on
    every implementation of the 16-bit rows. (Scales whose product with
    every x is exact in float32 take the vector loops' float32 form of the
    sum; 1 + 2**-20 the float64 one.)"""
    dtype = half_dtype(name)
    rng = rng_for("near midpoints", name, scale)
    x = np.arange(65536, dtype=np.uint16).view(dtype).reshape(256, 256)
    with np.errstate(invalid="ignore", over="ignore"):
        for label, pe in near_midpoint_tables(x, dtype, rng):
            table = pe.reshape(256, 256)
            expected = round_exact(x.astype(np.float64) * scale + table, dtype)
            got = fastpe.add_table(x.copy(), table, scale=scale)
            assert_bits_equal(got, expected, f"{name} scale={scale}: {label}", x.astype(np.float64) * scale + table)
            batch = np.stack([x, x[::-1]])  # two sequences share each table row
            got = fastpe.add_table(batch, table, scale=scale)
            assert_bits_equal(got[0], expected, f"{name} scale={scale}, a batch: {label}")
            # A float32 table (its rows widened exactly, then prepared where a batch shares them).
            table32 = table.astype(np.float32)
            sums32 = x.astype(np.float64) * scale + table32.astype(np.float64)
            expected32 = round_exact(sums32, dtype)
            for got in (fastpe.add_table(x.copy(), table32, scale=scale),
                        fastpe.add_table(np.stack([x, x[::-1]]), table32, scale=scale)[0]):
                assert_bits_equal(got, expected32, f"{name} scale={scale}, a float32 table: {label}", sums32)


def own_type_tables(x, dtype, rng):
    """Tables of x's own 16-bit type that put the exact x + t at a 16-bit
    midpoint (a tie), just past one, at a cancellation to zero or to the
    subnormal range, far below x's last place, past the largest finite value,
    or anywhere (random bit patterns: NaNs, infinities and subnormals
    included). Yields (label, table)."""
    x64 = x.astype(np.float64)
    finite = np.isfinite(x64)
    q = ulp_at(np.where(finite, x64, 0.0), dtype)
    sign = rng.choice([-1.0, 1.0], x.shape)
    top = float(np.array(MAX_FINITE_BITS[np.dtype(dtype).name], dtype=np.uint16).view(dtype).astype(np.float64))
    tiny = math.ldexp(1.0, MIN_EXP[np.dtype(dtype).name] - PRECISION[np.dtype(dtype).name])  # the smallest subnormal
    p = PRECISION[np.dtype(dtype).name]
    candidates = {
        "a midpoint": sign * q / 2,
        "three half ulps": sign * 3 * q / 2,
        "just past a midpoint": sign * q / 2 * (1 + math.ldexp(1.0, 1 - p)),
        "just short of a midpoint": sign * q / 2 * (1 - math.ldexp(1.0, -p)),
        "cancelling to zero": -x64,
        "cancelling to a subnormal": -x64 + sign * tiny,
        "far below the last place": sign * q / 8,
        "past the largest finite": np.where(x64 >= 0, top, -top),
    }
    for label, table in candidates.items():
        # Values the type lacks (half of the smallest subnormal, ...) round into it.
        t = np.where(finite, table, 1.0).astype(dtype)
        if label == "a midpoint":
            sums = x64 + t.astype(np.float64)
            ties = np.isfinite(sums) & (np.abs(sums / ulp_at(np.where(np.isfinite(sums), sums, 0.0), dtype)) % 1 == 0.5)
            assert ties.mean() > 0.9, f"only {ties.mean():.2f} of the sums are ties"
        yield label, t
    yield "random bits", rng.integers(0, 65536, x.shape, dtype=np.uint16).view(dtype)


@pytest.mark.parametrize("name", HALF_NAMES)
def test_exhaustive_own_type_table(name):
    """All 65536 x of the type plus tables of the same type (scale 1, which
    the vector loops add in float32 and round once: fpe_apply_half_same):
    the float64 sum rounded once (round_exact), bit for bit, in place, into
    out=, over a batch sharing the table rows, on strided views (the float64
    way) and at explicit positions."""
    dtype = half_dtype(name)
    rng = rng_for("own-type table", name)
    x = np.arange(65536, dtype=np.uint16).view(dtype).reshape(256, 256)
    with np.errstate(invalid="ignore", over="ignore"):
        for label, table in own_type_tables(x, dtype, rng):
            exact = x.astype(np.float64) + table.astype(np.float64)
            expected = round_exact(exact, dtype)
            msg = f"{name} x + {name} table: {label}"
            assert_bits_equal(fastpe.add_table(x.copy(), table), expected, msg, exact)
            assert_bits_equal(fastpe.add_table(x, table, out=np.empty_like(x)), expected, f"{msg}, out=", exact)
            batch = fastpe.add_table(np.stack([x, x]), table)
            assert_bits_equal(batch[1], expected, f"{msg}, a batch", exact)
            wide = np.zeros((256, 512), dtype)
            wide[:, ::2] = x
            fastpe.add_table(wide[:, ::2], table)
            assert_bits_equal(wide[:, ::2], expected, f"{msg}, strided x", exact)
            rows = rng.permutation(256)
            got = fastpe.add_table(x[rows].copy(), table, positions=rows)
            assert_bits_equal(got, expected[rows], f"{msg}, positions=", exact[rows])


@pytest.mark.parametrize("name", HALF_NAMES)
def test_own_type_table_sharing_memory_with_x(name):
    """A table of x's own type that is a view of x's buffer (rows x itself
    is about to change), in place and into an out= that overlaps it: as if
    the table were read first (the exact sum of the original values, rounded
    once)."""
    dtype = half_dtype(name)
    rng = rng_for("own-type table aliasing", name)
    buf = (rng.standard_normal((2, 96, 24)) * 4).astype(dtype)
    # x's row t is table row t + 16 of the same buffer: a row written early
    # is read later, by this sequence and by the other
    expected = round_exact(buf[:, 16:80].astype(np.float64) + buf[0, :64].astype(np.float64), dtype)
    x = buf.copy()
    got = fastpe.add_table(x[:, 16:80], x[0, :64])
    assert_bits_equal(got, expected, f"{name}: table rows of x's first sequence, in place")
    x = buf.copy()
    got = fastpe.add_table(x[:, 16:80].copy(), x[0, :64], out=x[:, 24:88])
    assert_bits_equal(got, expected, f"{name}: out= overlapping the table")


@pytest.mark.parametrize("scale", [2.0, -0.5], ids=lambda s: f"scale={s}")
@pytest.mark.parametrize("name", HALF_NAMES)
def test_own_type_table_with_a_scale_and_other_kind(name, scale):
    """A table of x's own type with another scale, and a table of the other
    16-bit type: widened to float64 (scales whose product with every x is
    exact, so the model's roundings are one): the same rule."""
    dtype = half_dtype(name)
    other = half_dtype("bfloat16" if name == "float16" else "float16")
    rng = rng_for("own-type table scale", name, scale)
    x = np.arange(65536, dtype=np.uint16).view(dtype).reshape(256, 256)
    with np.errstate(invalid="ignore", over="ignore"):
        for label, table in own_type_tables(x, dtype, rng):
            exact = x.astype(np.float64) * scale + table.astype(np.float64)
            got = fastpe.add_table(np.stack([x, x]), table, scale=scale)
            assert_bits_equal(got[0], round_exact(exact, dtype), f"{name} scale={scale}: {label}", exact)
            table_other = table.astype(np.float64).astype(other)
            exact = x.astype(np.float64) + table_other.astype(np.float64)
            got = fastpe.add_table(x.copy(), table_other)
            assert_bits_equal(got, round_exact(exact, dtype), f"{name} x + {other.name} table: {label}", exact)


# --------------------------------------------------------------------------
# add_sinusoidal against the reference

ADD_CASES = {
    # label: (x shape, kwargs builder (rng, shape) -> kwargs)
    "offset-scalar": ((3, 40, 16), lambda rng, s: {"offset": 7}),
    "offset-per-sequence": ((3, 40, 16), lambda rng, s: {"offset": np.array([0, 300, -5])}),
    "offset-fractional": ((2, 33, 9), lambda rng, s: {"offset": np.array([2.5, -17.25])}),
    "positions-int": ((2, 30, 9), lambda rng, s: {"positions": rng.integers(-50, 5000, s[:-1])}),
    "positions-fractional": ((2, 30, 8), lambda rng, s: {"positions": rng.uniform(-100, 100, s[:-1])}),
    "scale": ((2, 40, 16), lambda rng, s: {"offset": 3, "scale": 4.0}),
    "scale-inexact": ((2, 40, 16), lambda rng, s: {"offset": 3, "scale": 0.37}),
    "base": ((2, 20, 12), lambda rng, s: {"base": 500.0}),
    "concat": ((3, 40, 16), lambda rng, s: {"offset": 11, "layout": "concat"}),
    "concat-odd-dim": ((3, 40, 7), lambda rng, s: {"layout": "concat"}),
    "inv-freq": ((2, 25, 10), lambda rng, s: {"inv_freq": rng.uniform(0, 2, 5), "offset": 4}),
    "fairseq": ((2, 40, 16), lambda rng, s: {"preset": "fairseq"}),
    "fairseq-padding-positions": ((2, 20, 16), lambda rng, s: {
        "preset": "fairseq", "padding_idx": 0, "positions": rng.integers(0, 4, s[:-1])}),
    "tensor2tensor": ((2, 40, 16), lambda rng, s: {"preset": "tensor2tensor", "offset": 9}),
    "whisper": ((1, 60, 16), lambda rng, s: {"preset": "whisper"}),
    "vaswani": ((2, 30, 9), lambda rng, s: {"preset": "vaswani", "scale": 3.0}),
    "marian": ((2, 30, 9), lambda rng, s: {"preset": "marian"}),
}


@pytest.mark.parametrize("case", ADD_CASES)
def test_add_sinusoidal(half, case):
    shape, make = ADD_CASES[case]
    rng = rng_for("add", case, half.name)
    kwargs = make(rng, shape)
    compare_fused("add_sinusoidal", random_half(shape, half, rng), msg=case, **kwargs)


def test_add_sinusoidal_out(half):
    """out= contiguous or not, pre-filled with garbage; x stays untouched."""
    shape = (3, 21, 10)
    rng = rng_for("add-out", half.name)
    for olabel, out in out_variants(shape, half, rng):
        for xlabel, x in array_variants(shape, half, rng, kinds=("C", "D-reversed", "batch-T-swapped")):
            compare_fused("add_sinusoidal", x, out=out, msg=f"x={xlabel} {olabel}", offset=np.array([1, 50, 2]),
                          scale=2.0)


def test_add_sinusoidal_out_overlapping_x(half):
    """out a shifted view of x's own buffer: every element read before it is overwritten."""
    rng = rng_for("overlap", half.name)
    buf = random_half((2, 31, 8), half, rng)
    x, out = buf[:, :-1], buf[:, 1:]
    expected = reference.add_sinusoidal(x.copy(), offset=5)
    exact = reference.add_sinusoidal(x.astype(np.float64), offset=5)
    got = fastpe.add_sinusoidal(x, out=out, offset=5)
    assert got is out
    assert_half_close(np.ascontiguousarray(out), expected, exact, "out overlapping x", value_slack(exact, 3.0))


# (shape, offset): odd and even D, D = 1, T = 1, size 0, 2-D to 4-D.
LAYOUT_SHAPES = [((17, 1), 3), ((2, 17, 7), -4), ((2, 19, 64), 100), ((2, 2, 9, 3), 0.5),
                 ((3, 1, 8), 7), ((0, 5, 4), 0), ((2, 0, 6), 0), ((3, 6, 0), 0)]


@pytest.mark.parametrize("case", LAYOUT_SHAPES, ids=lambda c: "x".join(map(str, c[0])))
def test_memory_layouts(half, case):
    """C, F, strided, negative-stride, transposed batch axes: add_sinusoidal and add_table."""
    shape, offset = case
    rng = rng_for("layouts", half.name, shape)
    table = rng.standard_normal((128, shape[-1]))
    for label, x in array_variants(shape, half, rng, kinds=ALL_KINDS):
        compare_fused("add_sinusoidal", x.copy(), msg=label, offset=offset)
        compare_fused("add_table", x, table, msg=label, offset=int(abs(offset)))


def test_large_positions(half):
    """Positions up to 1e7 (float64 angles): still within an ulp of the reference.
    Beyond the contract's 2**20, PE may differ from the reference's by the
    rounding of the angle p * w (~1e-9 at 1e7): the slack near cancellation."""
    rng = rng_for("large", half.name)
    positions = np.concatenate([1e7 - np.arange(300), rng.uniform(-1e7, 1e7, 300), 2**23 + 0.5 + np.arange(300)])
    x = random_half((3, 300, 64), half, rng)
    compare_fused("add_sinusoidal", x.copy(), msg="positions", positions=positions.reshape(3, 300), pe_error=1e-8)
    compare_fused("add_sinusoidal", x, msg="offsets", offset=np.array([9_999_700, -10_000_000, 5_000_000.5]),
                  pe_error=1e-8)


def test_mismatches_are_rare_on_large_inputs(half):
    """Over 2**18 elements per call, the kernel differs from the correctly
    rounded reference value at under 1e-4 of them (correct rounding; a wrong
    rounding rule would miss ties systematically)."""
    rng = rng_for("rare", half.name)
    shape = (8, 512, 64)
    for kwargs in ({"offset": np.arange(8) * 700 - 2000}, {"offset": 3, "scale": 0.37},
                   {"positions": rng.uniform(-1e4, 1e4, shape[:-1])}, {"layout": "concat", "offset": 10**6}):
        x = random_half(shape, half, rng)
        expected = reference.add_sinusoidal(x.copy(), **kwargs)
        exact = reference.add_sinusoidal(x.astype(np.float64), **kwargs)
        got = fastpe.add_sinusoidal(x, **kwargs)
        assert_half_close(got, expected, exact, f"large add_sinusoidal {sorted(kwargs)}", value_slack(exact, 3.0),
                          fraction=1e-4)


THREAD_SHAPE = (4, 1024, 64)  # 2**18 output elements: a real OpenMP team


def _thread_calls(dtype, rng):
    x = random_half(THREAD_SHAPE, dtype, rng)
    q = random_half((2, 4, 1024, 64), dtype, rng)
    scores = random_half((2, 4, 128, 256), dtype, rng)
    table = rng.standard_normal((1200, 64))
    return {
        "add_sinusoidal-offsets": lambda n: fastpe.add_sinusoidal(x.copy(), offset=np.array([0, 9, 1000, -7]),
                                                                  scale=8.0, num_threads=n),
        "add_sinusoidal-positions": lambda n: fastpe.add_sinusoidal(
            x.copy(), positions=np.arange(1024.0)[::-1] * 1.5, num_threads=n),
        "sinusoidal_table": lambda n: fastpe.sinusoidal_table(4096, 64, offset=3, dtype=dtype, num_threads=n),
        "add_table": lambda n: fastpe.add_table(x.copy(), table, offset=np.array([0, 5, 100, 176]), num_threads=n),
        "apply_rotary": lambda n: fastpe.apply_rotary(q.copy(), offset=11, num_threads=n),
        "add_alibi": lambda n: fastpe.add_alibi(scores.copy(), offset=np.array([0, 128]), num_threads=n),
    }


def test_bit_identical_across_thread_counts(half):
    rng = rng_for("threads", half.name)
    for label, call in _thread_calls(half, rng).items():
        first = call(1)
        for n in (2, 3, None):
            assert bits(call(n)).tobytes() == bits(first).tobytes(), f"{label}: num_threads={n} differs from 1"


# --------------------------------------------------------------------------
# Tables, add_table, grids, rotary, biases against the reference


def dtype_spellings(name):
    """The ways a caller names the dtype: the NumPy type / dtype, and the string."""
    dtype = half_dtype(name)
    return {"type": dtype.type, "dtype": dtype, "string": name}


def compare_table(name, *args, dtype, msg="", **kwargs):
    """fastpe.<name>(..., dtype=dtype) against the reference in that dtype and in float64."""
    got = getattr(fastpe, name)(*args, dtype=dtype, **kwargs)
    expected = getattr(reference, name)(*args, dtype=dtype, **kwargs)
    exact = getattr(reference, name)(*args, dtype=np.float64, **kwargs)
    assert got.dtype == np.dtype(dtype), f"{name} {msg}: dtype {got.dtype}, asked for {dtype!r}"
    assert_half_close(got, expected, exact, f"{name} {msg} dtype={dtype!r} {sorted(kwargs)}", value_slack(exact))
    return got


@pytest.mark.parametrize("name", HALF_NAMES)
def test_sinusoidal_table_and_encode(name):
    rng = rng_for("tables", name)
    for spelling, dtype in dtype_spellings(name).items():
        compare_table("sinusoidal_table", 300, 33, dtype=dtype, msg=spelling, offset=-20)
        compare_table("sinusoidal_table", 50, 16, dtype=dtype, msg=spelling, layout="concat", offset=2.5)
        compare_table("sinusoidal_table", 64, 16, dtype=dtype, msg=spelling, preset="fairseq")
        compare_table("sinusoidal_table", 40, 8, dtype=dtype, msg=spelling, preset="whisper")
        compare_table("sinusoidal_encode", rng.uniform(-1e4, 1e4, (3, 70)), 10, dtype=dtype, msg=spelling)
        compare_table("sinusoidal_encode", rng.integers(0, 9, 40), 12, dtype=dtype, msg=spelling,
                      preset="tensor2tensor")


def test_sinusoidal_table_into_half_out(half):
    """out= a 16-bit array (strided): its dtype wins, and it is what comes back."""
    out = np.full((100, 40), 9, dtype=half)[:, ::2]
    got = fastpe.sinusoidal_table(100, 20, offset=7, out=out)
    exact = reference.sinusoidal_table(100, 20, offset=7, dtype=np.float64)
    assert got is out
    assert_half_close(np.ascontiguousarray(got), reference.sinusoidal_table(100, 20, offset=7, dtype=half),
                      exact, "table into out", value_slack(exact))


TABLE_KWARGS = {
    "offset": lambda rng, s: {"offset": 3},
    "offset-per-sequence": lambda rng, s: {"offset": np.array([0, 50, 7])},
    "positions": lambda rng, s: {"positions": rng.integers(0, 100, s[:-1])},
    "scale": lambda rng, s: {"offset": 1, "scale": 0.37},
    "scale-exact": lambda rng, s: {"positions": rng.integers(0, 100, s[-2]), "scale": -2.0},
}


def _table_dtypes(half):
    return [half, np.dtype(np.float32), np.dtype(np.float64)] + (
        [half_dtype("bfloat16")] if half.name == "float16" else [np.dtype(np.float16)])


@pytest.mark.parametrize("case", TABLE_KWARGS)
def test_add_table_half_x(half, case):
    """A 16-bit x with a float16, bfloat16, float32 or float64 table; in place and out=."""
    shape = (3, 40, 9)
    rng = rng_for("add-table", half.name, case)
    kwargs = TABLE_KWARGS[case](rng, shape)
    for table_dtype in _table_dtypes(half):
        table = rng.standard_normal((120, shape[-1])).astype(table_dtype)
        msg = f"{case} table {table_dtype.name}"
        compare_fused("add_table", random_half(shape, half, rng), table, msg=msg, **kwargs)
        out = np.full(shape, 5, dtype=half)
        compare_fused("add_table", random_half(shape, half, rng), table, out=out, msg=msg, **kwargs)


@pytest.mark.parametrize("scale", [None, 2.0, -0.5])
@pytest.mark.parametrize("x_dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_add_table_native_x_half_table(half, x_dtype, scale):
    """float32 / float64 x with a 16-bit table, scales that are exact in float32:
    every product and row is exact, so the one rounding leaves nothing to differ."""
    rng = rng_for("native-x", half.name, np.dtype(x_dtype).name, scale)
    x = rng.uniform(-3, 3, (2, 50, 12)).astype(x_dtype)
    table = rng.standard_normal((80, 12)).astype(half)
    expected = reference.add_table(x.copy(), table, offset=np.array([0, 29]), scale=scale)
    got = fastpe.add_table(x, table, offset=np.array([0, 29]), scale=scale)
    assert got.dtype == np.dtype(x_dtype)
    assert got.tobytes() == expected.tobytes(), f"x {np.dtype(x_dtype).name} table {half.name} scale={scale}"


def test_regression_float32_x_half_table_sums_in_float64(half):
    """Regression: add_table documents that x and table of different dtypes form
    x*scale + row in float64 and round once. A 16-bit table used to be widened
    to float32, so a float32 x took the single-dtype float32 path (scale
    rounded to float32, the sum rounded in float32): with scale=1.1 about a
    third of the elements were off, by up to ~3e-7 where x*scale and the row
    nearly cancel. The table is now widened to float64."""
    rng = rng_for("regression-f32", half.name)
    x = rng.uniform(-3, 3, (4, 100, 16)).astype(np.float32)
    table = rng.standard_normal((120, 16)).astype(half)
    x_before = x.copy()
    exact = reference.add_table(x.astype(np.float64), table, offset=2, scale=1.1)
    got = fastpe.add_table(x, table, offset=2, scale=1.1)
    err = np.abs(got.astype(np.float64) - exact)
    assert np.all(err <= np.spacing(np.abs(exact.astype(np.float32))).astype(np.float64)), (
        f"max error {err.max():.3e}: beyond one float32 ulp of the float64 sum")
    # Where the result differs from the reference's float64 sum (two roundings,
    # x*scale then + row) rounded to float32, the sum sits at a float32 tie:
    # the kernel's one fused rounding must then be the nearer, by exact arithmetic.
    rounded = exact.astype(np.float32)
    for index in map(tuple, np.argwhere(got != rounded)):
        true = Fraction(float(x_before[index])) * Fraction(1.1) + Fraction(float(table[index[1] + 2, index[2]]))
        assert abs(Fraction(float(got[index])) - true) <= abs(Fraction(float(rounded[index])) - true), index


@pytest.mark.parametrize("name", HALF_NAMES)
def test_grids(name):
    """add_sincos_2d / add_sinusoidal_nd on 16-bit x (float64 tables inside), and
    sincos_2d / sinusoidal_nd asked for a 16-bit dtype."""
    dtype = half_dtype(name)
    rng = rng_for("grids", name)
    for layout in ("mae", "timm", "big_vision"):
        for cls_token in (False, True):
            x = random_half((2, 4 * 5 + cls_token, 32), dtype, rng)
            compare_fused("add_sincos_2d", x, 4, 5, msg=layout, layout=layout, cls_token=cls_token, scale=2.5)
        compare_table("sincos_2d", 4, 5, 32, dtype=dtype, msg=layout, layout=layout, cls_token=True)
    x = random_half((3, 24, 26), dtype, rng)
    compare_fused("add_sinusoidal_nd", x, (2, 3, 4), msg="3-D grid", out=np.full(x.shape, 1, dtype))
    compare_fused("add_sinusoidal_nd", x.transpose(1, 0, 2)[:3].transpose(1, 0, 2).copy()[:, :, ::-1], (3,),
                  msg="reversed channels", scale=0.5)
    compare_table("sinusoidal_nd", (3, 4), 16, dtype=dtype, max_timescale=100.0)


ROTARY_CASES = {
    "half": {},
    "interleaved": {"layout": "interleaved"},
    "partial-half": {"rotary_dim": 8},
    "partial-interleaved": {"rotary_dim": 6, "layout": "interleaved"},
    "offset-per-batch": {"offset": np.array([0, 1000])},
    "positions": {"positions": np.arange(20)[::-1] * 3},
    "base": {"base": 500000.0, "offset": 4096},
}


def _rotary_pair(dtype, rng):
    return random_half((2, 4, 20, 16), dtype, rng), random_half((2, 2, 20, 16), dtype, rng)


@pytest.mark.parametrize("case", ROTARY_CASES)
def test_apply_rotary(half, case):
    """One array, two arrays (q and k with different head counts), in place and out=."""
    kwargs = ROTARY_CASES[case]
    rng = rng_for("rotary", half.name, case)
    q, k = _rotary_pair(half, rng)
    compare_fused("apply_rotary", q, msg=case, **kwargs)
    q, k = _rotary_pair(half, rng)
    before = (q.copy(), k.copy())
    expected = reference.apply_rotary(q.copy(), k.copy(), **kwargs)
    exact = reference.apply_rotary(q.astype(np.float64), k.astype(np.float64), **kwargs)
    for outs in (None, [np.full(q.shape, 4, half), np.full(k.shape, 4, half)[..., ::-1]]):
        got = fastpe.apply_rotary(*(a.copy() for a in before), out=outs, **kwargs)
        for i in range(2):
            if outs is not None:
                assert got[i] is outs[i]
            assert_half_close(np.ascontiguousarray(got[i]), expected[i], exact[i], f"apply_rotary pair[{i}] {case}",
                              value_slack(exact[i], before[i].astype(np.float64)))


# Relative distances from a 16-bit midpoint at which the rotation's products
# are placed: on it, one float64 ulp away, and around the float32 error that
# the kernels' float32 form of a pair admits before it re-forms it in float64.
ROTATION_NUDGES = (0.0, 2.0**-53, -(2.0**-53), 2.0**-40, -(2.0**-30), 2.0**-25, -(2.0**-24), 2.0**-23,
                   -(2.0**-22), 2.0**-21, -(2.0**-20), 2.0**-18)


def _rotate_rows(x, cos, sin, layout, out=None):
    """The kernels' rotation of x's rows (n_pairs = width / 2) by cos/sin row i
    for row i, in place or into out."""
    from fastpe import _kernels

    rows = np.arange(x.shape[0], dtype=np.intp) * x.strides[0]
    target = x if out is None else out
    _kernels.rotate_vector_rows(target, rows, np.arange(x.shape[0], dtype=np.intp), cos, sin, layout,
                                x.shape[1] // 2, src=None if out is None else x, src_rows=None if out is None else rows)
    return target


@pytest.mark.parametrize("into", ["in place", "out"])
@pytest.mark.parametrize("layout", ["half", "interleaved"])
@pytest.mark.parametrize("name", HALF_NAMES)
def test_rotation_exact_near_midpoints(name, layout, into):
    """Every 16-bit a (all 65536), rotated with b = 0 by cos and sin chosen so
    that a * cos and a * sin fall on, or near, a 16-bit midpoint: the float64
    rotation rounded once (here exactly fl64(a * cos), whatever the multiply-
    adds), correctly (round_exact), bit for bit. Pairs of a row go through
    the vector lanes; each nudge in ROTATION_NUDGES is one sweep."""
    dtype = half_dtype(name)
    rng = rng_for("rotation near midpoints", name, layout, into)
    a = np.arange(65536, dtype=np.uint16).view(dtype)
    with np.errstate(all="ignore"):  # NaNs and infinities among the a
        a64 = a.astype(np.float64)
        usable = np.isfinite(a64) & (a64 != 0)
        for nudge in ROTATION_NUDGES:
            factors = []
            for _ in range(2):  # cos, then sin
                # a midpoint between two 16-bit neighbours of |a| * r, r in [0.3, 1)
                target = np.abs(a64) * rng.uniform(0.3, 1.0, a.size)
                low = round_exact(target, dtype).astype(np.float64)
                midpoint = low + ulp_at(low, dtype) / 2
                f = np.where(usable, midpoint * (1 + nudge) / np.where(usable, a64, 1.0), 0.5)
                factors.append(f * rng.choice([-1.0, 1.0], a.size))
            c, s = factors
            x = np.zeros((a.size // 64, 128), dtype)
            first, second = (x[:, :64], x[:, 64:]) if layout == "half" else (x[:, 0::2], x[:, 1::2])
            first[...] = a.reshape(-1, 64)
            cos, sin = c.reshape(-1, 64), s.reshape(-1, 64)
            # b = +0: its products are signed zeros, which decide a zero result's sign
            first_value, second_value = a64 * c - 0.0 * s, 0.0 * c + a64 * s
            expected_first = round_exact(first_value, dtype).reshape(-1, 64)
            expected_second = round_exact(second_value, dtype).reshape(-1, 64)
            got = _rotate_rows(x, cos, sin, layout, out=None if into == "in place" else np.full_like(x, 7))
            g_first, g_second = (got[:, :64], got[:, 64:]) if layout == "half" else (got[:, 0::2], got[:, 1::2])
            label = f"{name} {layout} {into}, nudge {nudge!r}"
            assert_bits_equal(np.ascontiguousarray(g_first), expected_first, label + ": a cos",
                              first_value.reshape(-1, 64))
            assert_bits_equal(np.ascontiguousarray(g_second), expected_second, label + ": a sin",
                              second_value.reshape(-1, 64))


# 53 pairs: whole vector steps (16 and 8 pairs) and a tail; 28: one step of
# 16, one of 8 after it, and a tail of 4.
@pytest.mark.parametrize("pairs", [53, 28])
@pytest.mark.parametrize("name", HALF_NAMES)
def test_rotation_random_pairs_round_once(name, pairs):
    """Random pairs (a, b) of every magnitude, tiny and zero cosines and sines
    among them: each result is the float64 rotation rounded once, which lies
    within a few float64 ulps of a * cos - b * sin formed here in float64, so
    it must round like both ends of that interval (and, where those differ,
    lie between them)."""
    with np.errstate(all="ignore"):  # float16 overflows to inf at the largest scales
        dtype = half_dtype(name)
        rng = rng_for("rotation random", name, pairs)
        n_rows, width = 500, 2 * pairs
        scale = np.ldexp(1.0, rng.integers(-20, 12, (n_rows, 1)))  # finite in float16
        x = (rng.standard_normal((n_rows, width)) * scale).astype(dtype)
        x[0, :5] = 0
        angles = rng.uniform(-4, 4, (n_rows, width // 2))
        cos, sin = np.cos(angles), np.sin(angles)
        cos[1], sin[2] = 0.0, 1e-35  # a zero cosine, and sines below float32's normal range
        sin[3, ::2] = 2.0**-100
        before = x.copy()
        got = _rotate_rows(x, cos, sin, "half")
        a, b = before[:, : width // 2].astype(np.float64), before[:, width // 2:].astype(np.float64)
        m = np.abs(a * cos) + np.abs(b * sin)
        for label, value, result in (("a cos - b sin", a * cos - b * sin, got[:, : width // 2]),
                                     ("b cos + a sin", b * cos + a * sin, got[:, width // 2:])):
            low, high = round_exact(value - 4 * 2.0**-53 * m, dtype), round_exact(value + 4 * 2.0**-53 * m, dtype)
            r = result.astype(np.float64)
            inside = (r >= low.astype(np.float64)) & (r <= high.astype(np.float64))
            assert inside.all(), f"{name} {label}: {np.count_nonzero(~inside)} results outside their interval"
            decided = bits(low) == bits(high)
            assert_bits_equal(np.ascontiguousarray(result)[decided], low[decided], f"{name} {label}")


@pytest.mark.parametrize("layout", ["half", "interleaved"])
@pytest.mark.parametrize("name", HALF_NAMES)
def test_rotary_cos_sin(name, layout):
    for spelling, dtype in dtype_spellings(name).items():
        got = fastpe.rotary_cos_sin(100, 16, offset=-3, layout=layout, dtype=dtype)
        expected = reference.rotary_cos_sin(100, 16, offset=-3, layout=layout, dtype=dtype)
        exact = reference.rotary_cos_sin(100, 16, offset=-3, layout=layout, dtype=np.float64)
        for g, e, x in zip(got, expected, exact):
            assert g.dtype == half_dtype(name), f"rotary_cos_sin dtype {g.dtype} for {dtype!r}"
            assert_half_close(g, e, x, f"rotary_cos_sin {layout} {spelling}", value_slack(x))


def test_biases(half):
    """add_alibi (relative and BLOOM's key-position forms) and add_relative_bias on 16-bit scores."""
    rng = rng_for("biases", half.name)
    shape = (2, 4, 9, 13)
    compare_fused("add_alibi", random_half(shape, half, rng), msg="offsets", offset=np.array([0, 40]))
    compare_fused("add_alibi", random_half(shape, half, rng), msg="slopes", slopes=rng.uniform(0, 1, 4),
                  out=np.full(shape, 2, half)[..., ::-1])
    compare_fused("add_alibi", random_half(shape, half, rng), msg="key positions",
                  key_positions=rng.integers(0, 13, (2, 13)))
    for bidirectional in (True, False):
        for table_dtype in (np.float64, np.float32, np.float16):
            table = rng.standard_normal((32, 4)).astype(table_dtype)
            compare_fused("add_relative_bias", random_half(shape, half, rng), table, msg=f"table {table.dtype}",
                          bidirectional=bidirectional, num_buckets=32, max_distance=20, offset=np.array([3, 0]))


def _bfloat16_argument_calls():
    """(label, call(args_dtype)) of real-valued array arguments other than the
    arrays written; each call's result with bfloat16 arguments must equal the
    result with the same values as float64."""
    x = np.random.default_rng(0).uniform(-1, 1, (2, 4, 6, 8)).astype(np.float32)
    vals = {"bias_table": (np.arange(128.0).reshape(32, 4) - 64) / 16, "slopes": np.array([0.5, 0.25, 0.125, 1.0]),
            "inv_freq": np.array([1.0, 0.5, 0.25, 0.125]), "positions": np.arange(6.0)[::-1],
            "key_positions": np.arange(6.0).reshape(1, 6)}
    return {
        "bias_table": lambda dt: fastpe.add_relative_bias(x[..., :6].copy(), vals["bias_table"].astype(dt),
                                                          bidirectional=True, num_buckets=32, max_distance=20),
        "slopes": lambda dt: fastpe.add_alibi(x[..., :6].copy(), slopes=vals["slopes"].astype(dt)),
        "key_positions": lambda dt: fastpe.add_alibi(x[..., :6].copy(), key_positions=vals["key_positions"].astype(dt)),
        "inv_freq": lambda dt: fastpe.add_sinusoidal(x.copy(), inv_freq=vals["inv_freq"].astype(dt)),
        "positions": lambda dt: fastpe.add_sinusoidal(x.copy(), positions=vals["positions"].astype(dt)),
    }


@pytest.mark.parametrize("argument", list(_bfloat16_argument_calls()))
def test_regression_bfloat16_value_arguments(argument):
    """Regression: a bfloat16 bias_table (T5's learned relative_attention_bias in
    a bfloat16 model), slopes, key_positions, inv_freq or positions used to be
    rejected ("must hold integers or floats, got dtype bfloat16": its dtype
    kind is 'V') while the same values in float16 were accepted."""
    bf16 = half_dtype("bfloat16")
    call = _bfloat16_argument_calls()[argument]
    np.testing.assert_array_equal(call(np.float16), call(np.float64))  # float16 arguments work
    np.testing.assert_array_equal(call(bf16), call(np.float64))


# --------------------------------------------------------------------------
# Bad input: the named argument in the message, nothing written


def _f16(shape=(2, 5, 8), dtype=np.float16):
    return np.random.default_rng(sum(shape)).uniform(-2, 2, shape).astype(dtype)


def _bad_calls():
    """(label, exception, argument name, builder -> (function name, args, kwargs))."""
    bf16 = lambda: half_dtype("bfloat16")  # noqa: E731 - skips the case without ml_dtypes
    return [
        ("x-big-endian", TypeError, "x", lambda: ("add_sinusoidal", (_f16(dtype=">f2"),), {})),
        ("x-longdouble", TypeError, "x", lambda: ("add_sinusoidal", (_f16(dtype=np.longdouble),), {})),
        ("out-big-endian", TypeError, "out", lambda: ("add_sinusoidal", (_f16(),), {"out": _f16(dtype=">f2")})),
        ("table-x-big-endian", TypeError, "x", lambda: ("add_table", (_f16(dtype=">f2"), np.ones((5, 8))), {})),
        ("table-longdouble", TypeError, "table", lambda: ("add_table", (_f16(), _f16((5, 8), np.longdouble)), {})),
        ("grid-big-endian", TypeError, "x", lambda: ("add_sincos_2d", (_f16((1, 4, 8), ">f2"), 2, 2), {})),
        ("rotary-big-endian", TypeError, r"arrays\[0\]", lambda: ("apply_rotary", (_f16(dtype=">f2"),), {})),
        ("alibi-big-endian", TypeError, "scores", lambda: ("add_alibi", (_f16((1, 2, 3, 3), ">f2"),), {})),
        ("dtype-big-endian", TypeError, "dtype", lambda: ("sinusoidal_table", (4, 4), {"dtype": ">f2"})),
        ("dtype-longdouble", TypeError, "dtype", lambda: ("sinusoidal_encode", ([1, 2], 4), {"dtype": np.longdouble})),
        ("rotary-cos-sin-big-endian", TypeError, "dtype", lambda: ("rotary_cos_sin", (4, 4), {"dtype": ">f2"})),
        ("rotary-f16-f32", TypeError, "dtype", lambda: ("apply_rotary", (_f16(), _f16(dtype=np.float32)), {})),
        ("rotary-f16-bf16", TypeError, "dtype", lambda: ("apply_rotary", (_f16(), _f16(dtype=bf16())), {})),
        # A wrong out dtype is a ValueError naming out, as for float32 x with float64 out.
        ("out-bf16-for-f16", ValueError, "out", lambda: ("add_sinusoidal", (_f16(),), {"out": _f16(dtype=bf16())})),
        ("out-f16-for-bf16", ValueError, "out", lambda: ("add_table", (_f16(dtype=bf16()), np.ones((5, 8))),
                                                         {"out": _f16()})),
        ("out-f32-for-f16", ValueError, "out", lambda: ("add_alibi", (_f16((1, 2, 3, 3)),),
                                                        {"out": _f16((1, 2, 3, 3), np.float32)})),
        ("rotary-out-bf16-for-f16", ValueError, r"out\[0\]", lambda: ("apply_rotary", (_f16(),),
                                                                      {"out": [_f16(dtype=bf16())]})),
    ]


BAD_CALLS = _bad_calls()


@pytest.mark.parametrize("impl", ["fastpe", "reference"])
@pytest.mark.parametrize("case", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_input_raises_and_writes_nothing(impl, case):
    label, exc, name, build = case
    fname, args, kwargs = build()
    snaps = snapshot(*args, *kwargs.values(), *(kwargs.get("out") or [] if fname == "apply_rotary" else []))
    with pytest.raises(exc, match=rf"(?<![A-Za-z_]){name}(?![A-Za-z_])") as info:
        getattr(fastpe if impl == "fastpe" else reference, fname)(*args, **kwargs)
    assert type(info.value) is exc, f"{impl} {label}: raised {type(info.value).__name__}, expected {exc.__name__}"
    assert_unchanged(snaps, f"{impl} {label}")


@pytest.mark.parametrize("impl", ["fastpe", "reference"])
def test_big_endian_float16_table_and_x_with_out_are_read(impl):
    """A float16 array fastpe only reads (a learned table, x with out=) is
    taken in any byte order, with the native arrays' bits."""
    module = fastpe if impl == "fastpe" else reference
    table, x = _f16((5, 8)), _f16()
    expected = module.add_table(x.copy(), table)
    np.testing.assert_array_equal(module.add_table(x.copy(), table.astype(">f2")), expected)
    out = np.empty_like(x)
    assert module.add_table(x.astype(">f2"), table, out=out) is out
    np.testing.assert_array_equal(out, expected)


def test_import_does_not_load_ml_dtypes():
    """ml_dtypes is optional: import fastpe must not import it, float16 works
    without it, and asking for "bfloat16" then says what to install."""
    code = "\n".join([
        "import sys",
        "import fastpe, numpy as np",
        "assert 'ml_dtypes' not in sys.modules, 'import fastpe imported ml_dtypes'",
        "x = fastpe.add_sinusoidal(np.zeros((3, 4), np.float16))",
        "t = fastpe.sinusoidal_table(3, 4, dtype='float16')",
        "assert x.dtype == t.dtype == np.float16 and (x == t).all()",
        "assert 'ml_dtypes' not in sys.modules, 'a float16 call imported ml_dtypes'",
        "sys.modules['ml_dtypes'] = None  # as if it were not installed",
        "try:",
        "    fastpe.sinusoidal_table(3, 4, dtype='bfloat16')",
        "except TypeError as exc:",
        "    assert 'ml_dtypes' in str(exc), exc",
        "else:",
        "    raise AssertionError('dtype=\"bfloat16\" without ml_dtypes did not raise')",
        "print('ok')",
    ])
    res = run_python(code)
    assert res.returncode == 0 and res.stdout.strip() == "ok", f"stdout={res.stdout!r} stderr={res.stderr!r}"


# --------------------------------------------------------------------------
# Hypothesis: random shapes, offsets, scales, memory layouts


@pytest.mark.parametrize("name", HALF_NAMES)
@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(shape=st.lists(st.integers(1, 9), min_size=2, max_size=4),
       dim=st.integers(1, 40), offset=st.one_of(st.integers(-5000, 5000), st.floats(-5000, 5000)),
       scale=st.one_of(st.none(), st.floats(-8, 8, allow_nan=False)), kind=st.sampled_from(ALL_KINDS),
       layout=st.sampled_from(["interleaved", "concat"]), seed=st.integers(0, 2**32 - 1))
def test_property_add_sinusoidal(name, shape, dim, offset, scale, kind, layout, seed):
    half = half_dtype(name)
    shape = tuple(shape[:-1]) + (dim,)
    rng = np.random.default_rng(seed)
    for label, x in array_variants(shape, half, rng, magnitude=4.0, kinds=(kind,)):
        compare_fused("add_sinusoidal", x, msg=label, offset=offset, scale=scale, layout=layout)


def test_regression_float64_arguments_stay_float64_without_ml_dtypes():
    """Regression: with ml_dtypes not loaded, the bfloat16 check compared a
    dtype with None, and np.dtype(None) is float64, so float64 positions and
    offsets were taken for bfloat16 and narrowed to float32 (errors ~5e-7,
    first seen in Dask workers, which never import ml_dtypes)."""
    code = (
        "import sys, numpy as np, fastpe\n"
        "assert 'ml_dtypes' not in sys.modules\n"
        "x = np.zeros((2, 50, 16))\n"
        "positions = np.random.default_rng(0).uniform(0, 1000, (2, 50))\n"
        "got = fastpe.add_sinusoidal(x.copy(), positions=positions)\n"
        # the formula itself: the reference shares the validation under test
        "angles = positions[..., None] * 10000.0 ** (-np.arange(0, 16, 2) / 16)\n"
        "want = np.stack([np.sin(angles), np.cos(angles)], axis=-1).reshape(2, 50, 16)\n"
        "print(float(np.abs(got - want).max()))\n"
    )
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout) < 1e-12, proc.stdout


@pytest.mark.parametrize("level", ["avx512bf16", "avx512", "avx2"])
def test_vector_and_portable_rows_give_the_same_bits(half, level):
    """Each vector implementation of the 16-bit rows agrees bit for bit with
    the portable loops, NaNs included (each is also checked against the
    reference and the exact rounding above)."""
    rng = rng_for("vector-vs-portable", half.name)
    x = (rng.standard_normal((3, 257, 77)) * rng.choice([1e-6, 1.0, 300.0], (3, 257, 1))).astype(half)
    scores = rng.standard_normal((2, 3, 33, 45)).astype(half)
    positions = rng.uniform(-1000, 1000, (3, 257))
    # NaN payloads (a NaN comes out as the portable narrowing's quiet NaN of
    # its sign on every level), infinities and subnormals, in x and the scores
    specials = rng.integers(0, 65536, (3, 257, 77), dtype=np.uint16).view(half)
    x = np.where(rng.random(x.shape) < 0.2, specials, x)
    scores = np.where(rng.random(scores.shape) < 0.2, specials[0, :198, :45].reshape(scores.shape), scores)
    own_table = np.where(rng.random((257, 77)) < 0.3, specials[2], x[2])
    own_x = x[:2]
    calls = {
        "in place": lambda: fastpe.add_sinusoidal(x.copy(), offset=np.array([0, 999, 5 * 10**5]), scale=1.7),
        "out": lambda: fastpe.add_sinusoidal(x, out=np.empty_like(x), positions=positions),
        "table": lambda: fastpe.sinusoidal_table(300, 77, offset=-40, dtype=half),
        "bias": lambda: fastpe.add_alibi(scores.copy(), offset=[3, 0]),
        # NaN payloads and infinities in x and in a table of its own type
        "own-type table": lambda: fastpe.add_table(own_x.copy(), own_table),
    }
    previous = _use_half_rows(level)
    try:
        vector = {name: call() for name, call in calls.items()}
        _use_half_rows("portable")
        portable = {name: call() for name, call in calls.items()}
    finally:
        _restore_half_rows(previous)
    for name in calls:
        assert vector[name].tobytes() == portable[name].tobytes(), name
