"""fastpe.add_sinusoidal against fastpe.reference.add_sinusoidal over a matrix of
dtypes, layouts, shapes, memory layouts, offsets, positions, scales, outputs
and frequency vectors.

The full product of every axis would take minutes; instead each axis is
covered against a few representative values of the others (pairwise style),
and the expensive shapes (T = 2048 with wide D) get only a handful of memory
layouts.
"""

import math

import numpy as np
import pytest

import fastpe
from fastpe import reference
from util import (
    ALL_KINDS,
    DTYPES,
    LAYOUTS,
    add_tolerance,
    array_variants,
    assert_within,
    check_add_against_reference,
    describe,
    out_variants,
    random_values,
    rng_for,
)

# (shape, offset): every D in {1, 2, 3, 7, 64, 1023, 1024} and every T in
# {0, 1, 17, 2048} occurs, in 2-D, 3-D and 4-D inputs, with size-0 batches.
SHAPES = [
    ((17, 1), 0),
    ((1, 2), 5),
    ((2048, 3), -1000),
    ((0, 7), 0),
    ((17, 64), 2.5),
    ((1, 1023), 4000),
    ((17, 1024), -3),
    ((3, 17, 7), 11),
    ((2, 1, 1023), 0),
    ((2, 2048, 2), 100),
    ((4, 0, 64), 0),
    ((2, 17, 1024), -17.75),
    ((3, 2048, 1), 5),
    ((2, 3, 17, 3), 1),
    ((2, 2, 1, 64), -2),
    ((1, 2, 2048, 7), 123456),
    ((0, 3, 17, 7), 0),
    ((2, 3, 0, 2), 0),
    ((2, 2, 17, 1023), 0.5),
    ((2, 2048, 64), 0),
    ((2048, 1024), 2**20 - 2048),
]

BIG = 150_000  # elements; above this only a few memory layouts are tried
BIG_KINDS = ("C", "TD-transposed", "D-stride2", "T-reversed")


def _kinds_for(shape):
    return BIG_KINDS if math.prod(shape) * 2 > BIG else ALL_KINDS


def _id(case):
    shape, offset = case
    return f"{'x'.join(map(str, shape))}-off{offset}"


@pytest.mark.parametrize("case", SHAPES, ids=_id)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_matrix_memory_layouts(dtype, layout, case):
    """In-place add with a scalar offset, every memory layout of x."""
    shape, offset = case
    rng = rng_for("matrix", dtype, layout, shape)
    for label, x in array_variants(shape, dtype, rng, kinds=_kinds_for(shape)):
        check_add_against_reference(x, f"layout={layout} memory={label}", offset=offset, layout=layout)


@pytest.mark.parametrize("case", [c for c in SHAPES if math.prod(c[0]) < BIG], ids=_id)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_matrix_out_separate(dtype, case):
    """out= a separate array (contiguous or not); x must stay untouched."""
    shape, offset = case
    rng = rng_for("out", dtype, shape)
    layout = LAYOUTS[len(shape) % 2]
    for xlabel, x in array_variants(shape, dtype, rng, kinds=("C", "D-reversed", "batch-T-swapped", "F")):
        for olabel, out in out_variants(shape, dtype, rng):
            check_add_against_reference(
                x, f"layout={layout} x={xlabel} {olabel}", out=out, offset=offset, layout=layout, scale=0.5
            )


# ------------------------------------------------------------------ offsets

OFFSET_CASES = [
    # (x shape, offset, label)
    ((17, 8), 0, "zero"),
    ((17, 8), 7, "int"),
    ((17, 8), -300, "negative"),
    ((17, 8), 0.5, "fractional"),
    ((17, 8), -3.25, "negative-fractional"),
    ((17, 8), 1_000_000, "huge"),
    ((17, 8), np.int64(3), "numpy-int"),
    ((17, 8), np.float32(2.5), "numpy-float32"),
    ((17, 8), np.array(9), "0d-array"),
    ((4, 17, 6), np.array([5, 5, 5, 5]), "equal-per-seq"),
    ((4, 17, 6), [0, 17, 3, -9], "list-per-seq"),
    ((4, 17, 6), np.array([2.5, -1.5, 2.5, 1000.125]), "fractional-per-seq"),
    ((4, 17, 6), np.array([7, 7, 8, 6], dtype=np.uint8), "uint8-per-seq"),
    ((4, 17, 6), np.array([-5, 3, -5, 12], dtype=np.int32), "negative-equal-per-seq"),
    ((4, 17, 6), np.array([16, 0, 33, 17]), "adjacent-runs"),  # one sequence continues another
    ((3, 4, 17, 5), np.array([[1], [2], [3]]), "broadcast-(A,1)"),
    ((3, 4, 17, 5), np.array([1, 2, 3, 4]), "broadcast-(B,)"),
    ((3, 4, 17, 5), np.arange(12).reshape(3, 4) % 5 - 2.0, "full-(A,B)-with-repeats"),
    ((3, 4, 17, 5), np.full((1, 1), 6.0), "(1,1)"),
    ((2, 3, 600, 7), np.array([[0, 600, 1200], [1800, 2400, 3000]]), "long-contiguous-chain"),
    ((2, 3, 600, 7), np.array([[0, 0, 0], [1, 1, 1]]), "long-repeated"),
    ((3000, 2, 5), np.arange(3000) * 7 % 1001 - 500.0, "many-sequences-with-repeats"),
    ((3000, 1, 6), np.arange(3000)[::-1].copy(), "many-sequences-T1-chain"),
]


@pytest.mark.parametrize("case", OFFSET_CASES, ids=lambda c: c[2])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_offsets(dtype, layout, case):
    shape, offset, label = case
    rng = rng_for("offset", dtype, layout, label)
    for kind, x in array_variants(shape, dtype, rng, kinds=("C", "T-reversed", "batch-T-swapped", "batch-transposed")):
        check_add_against_reference(x, f"offset={label} memory={kind} layout={layout}", offset=offset, layout=layout)


def test_offset_equals_explicit_positions_semantics():
    """offset + t is the token's position: checked against the reference fed explicit positions."""
    rng = rng_for("offset-vs-positions")
    x = random_values((3, 9, 10), np.float64, rng)
    offs = np.array([4.0, -2.5, 4.0])
    pos = offs[:, None] + np.arange(9)
    got = fastpe.add_sinusoidal(x.copy(), offset=offs)
    expected = reference.add_sinusoidal(x.copy(), positions=pos)
    assert_within(got, expected, 1e-12, "offset vs explicit positions")


# ---------------------------------------------------------------- positions


def _positions_cases():
    rng = np.random.default_rng(1234)
    T = 33
    yield (T, 8), np.arange(T), "1d-arange"
    yield (T, 8), np.arange(T)[::-1].copy(), "1d-reversed"
    yield (T, 8), rng.permutation(T), "1d-unsorted"
    yield (T, 8), np.arange(T) - 20, "1d-negative"
    yield (T, 8), np.arange(T) * 0.5 - 3.0, "1d-fractional"
    yield (T, 8), np.full(T, 7), "1d-all-repeated"
    yield (T, 8), rng.integers(0, 4, T), "1d-few-values"
    yield (T, 8), 1_000_000 + rng.permutation(T), "1d-huge-unsorted"
    yield (T, 8), rng.uniform(-2**20, 2**20, T), "1d-random-contract-range"
    yield (T, 9), np.arange(T, dtype=np.int32), "int32"
    yield (T, 9), np.arange(T, dtype=np.uint16), "uint16"
    yield (T, 9), np.arange(T, dtype=np.float32) + 0.25, "float32"
    yield (T, 9), list(range(T)), "list"
    yield (T, 9), 5, "scalar-broadcast"
    yield (4, T, 6), np.arange(T), "(T,)-broadcast-over-batch"
    yield (4, T, 6), rng.integers(-50, 50, (4, T)), "per-batch-(B,T)"
    yield (4, T, 6), np.tile(rng.permutation(T), (4, 1)), "per-batch-identical-rows"
    yield (4, T, 6), np.array([[3], [3], [-8], [1e6]]) + 0.0, "(B,1)-broadcast-over-T"
    yield (4, T, 6), rng.uniform(-5, 5, (4, T)), "per-batch-fractional"
    yield (2, 3, T, 5), rng.integers(0, 100, (3, T)), "(B,T)-over-4d"
    yield (2, 3, T, 5), rng.integers(0, 100, (2, 3, T)), "(A,B,T)"
    yield (2, 3, T, 5), rng.integers(0, 100, (2, 1, T)), "(A,1,T)"
    yield (2, 3, T, 5), 7, "scalar-over-4d"
    yield (2, 3, T, 5), np.array([[[4.5]]]), "(1,1,1)-over-4d"
    yield (2, 3, T, 5), np.array([[-2], [9], [-2]]), "(B,1)-over-4d"
    yield (2, 300, 7), np.concatenate([np.arange(300), np.arange(1000, 1300)]).reshape(2, 300), "long-runs-with-gap"
    yield (2, 300, 7), np.arange(600).reshape(2, 300)[:, ::-1] + 0.5, "long-run-across-batches"
    yield (4, T, 6), rng.integers(-40, 40, (T, 4)).T, "per-batch-transposed-view"
    yield (T, 6), np.arange(3 * T)[::-3], "1d-negative-stride-view"


POSITION_CASES = list(_positions_cases())


@pytest.mark.parametrize("case", POSITION_CASES, ids=lambda c: c[2])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_positions(dtype, layout, case):
    shape, positions, label = case
    rng = rng_for("positions", dtype, layout, label)
    for kind, x in array_variants(shape, dtype, rng, kinds=("C", "F", "D-reversed", "T-stride2", "batch-T-swapped")):
        check_add_against_reference(x, f"positions={label} memory={kind} layout={layout}", positions=positions, layout=layout)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_positions_with_zero_offset_allowed(dtype):
    """offset=0 (the default, or an all-zero array) may accompany positions."""
    rng = rng_for("zero-offset-positions", dtype)
    x = random_values((3, 5, 4), dtype, rng)
    check_add_against_reference(x.copy(), "offset=0", positions=np.arange(5) + 2, offset=0)
    check_add_against_reference(x.copy(), "offset=zeros(3)", positions=np.arange(5) + 2, offset=np.zeros(3))


# ------------------------------------------------------------------- scale

SCALES = [None, 1.0, 0.0, -2.5, 8.0, math.sqrt(512), 1e3, np.float32(0.5), 2, np.float64(-1e-3)]


@pytest.mark.parametrize("scale", SCALES, ids=repr)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_scale(dtype, scale):
    rng = rng_for("scale", dtype, repr(scale))
    for shape, kw in [((17, 7), {"offset": 3}), ((3, 17, 64), {"offset": np.array([0, 100, 0])}),
                      ((2, 17, 10), {"positions": rng.integers(-9, 9, (2, 17))})]:
        for kind, x in array_variants(shape, dtype, rng, magnitude=50.0, kinds=("C", "D-stride2", "T-reversed")):
            check_add_against_reference(x, f"scale={scale!r} memory={kind}", scale=scale, **kw)
            check_add_against_reference(x, f"scale={scale!r} memory={kind} layout=concat",
                                        scale=scale, layout="concat", **kw)


def test_scale_zero_gives_pure_encoding():
    """x * 0 + PE is the table itself (the reference table, within the contract)."""
    x = np.full((2, 20, 9), 123.0)
    fastpe.add_sinusoidal(x, scale=0.0, offset=np.array([0, 7]))
    assert_within(x[0], reference.sinusoidal_table(20, 9, dtype=np.float64), 1e-12, "scale=0 seq 0")
    assert_within(x[1], reference.sinusoidal_table(20, 9, offset=7, dtype=np.float64), 1e-12, "scale=0 seq 1")


# ---------------------------------------------------------- out= and aliasing


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_out_is_x(dtype, layout):
    rng = rng_for("out-is-x", dtype, layout)
    for shape in [(17, 7), (3, 17, 64), (2, 2, 1, 3)]:
        for kind, x in array_variants(shape, dtype, rng):
            check_add_against_reference(x, f"out=x memory={kind}", out=x, offset=4, layout=layout, scale=2.0)
            # a distinct Python object viewing exactly the same memory
            check_add_against_reference(x, f"out=x[...] memory={kind}", out=x[...], offset=4, layout=layout)


def _overlap_cases(dtype, rng):
    T, D = 40, 24
    buf = random_values((T + 1, D), dtype, rng)
    yield "out one row below x", buf[:-1], buf[1:]
    buf = random_values((T + 1, D), dtype, rng)
    yield "out one row above x", buf[1:], buf[:-1]
    buf = random_values((T, D + 1), dtype, rng)
    yield "out one column right of x", buf[:, :-1], buf[:, 1:]
    buf = random_values((T, D + 1), dtype, rng)
    yield "out one column left of x", buf[:, 1:], buf[:, :-1]
    x = random_values((T, D), dtype, rng)
    yield "out = x reversed rows", x, x[::-1]
    x = random_values((T, D), dtype, rng)
    yield "out = x reversed columns", x, x[:, ::-1]
    x = random_values((D, D), dtype, rng)
    yield "out = x.T (square)", x, x.T
    buf = random_values((3, T + 1, D), dtype, rng)
    yield "3-D, shifted along T", buf[:, :-1], buf[:, 1:]
    buf = random_values((4, T, D), dtype, rng)
    yield "3-D, shifted along batch", buf[:-1], buf[1:]
    buf = random_values((2 * T, D), dtype, rng)
    yield "interleaved rows (x even rows, out rows 1..)", buf[0 : 2 * T - 1 : 2][: T - 1], buf[1 : T][: T - 1]
    flat = random_values((T * D + 5,), dtype, rng)
    yield "flat buffer shifted by 5 elements", flat[:-5].reshape(T, D), flat[5:].reshape(T, D)
    big = random_values((2, 600, 64), dtype, rng)
    yield "big, shifted along T (threaded path)", big[:, :-1], big[:, 1:]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_out_partially_overlaps_x(dtype):
    """out sharing memory with x without being x: results as if x were read first."""
    rng = rng_for("overlap", dtype)
    for label, x, out in _overlap_cases(dtype, rng):
        assert np.shares_memory(x, out)
        for kw in ({"offset": 3}, {"positions": np.arange(x.shape[-2])[::-1] * 2}, {"offset": -7.5, "scale": 3.0}):
            xs_abs = np.abs(x.astype(np.float64)) * kw.get("scale", 1.0)
            expected = reference.add_sinusoidal(x.copy(), **kw)
            got = fastpe.add_sinusoidal(x, out=out, **kw)
            assert got is out
            # copy back x for the next kwargs so every call sees fresh data from the same buffer
            assert_within(got, expected, add_tolerance(dtype, 4096, xs_abs),
                          f"{label} {kw} x {describe(x)} out {describe(out)}")
            x = x.copy()
            out = np.empty_like(out)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_out_overlap_reference_agrees(dtype):
    """The reference itself handles partially overlapping out (it computes before writing)."""
    rng = rng_for("overlap-ref", dtype)
    buf = random_values((11, 6), dtype, rng)
    x, out = buf[:-1], buf[1:]
    expected = reference.add_sinusoidal(x.copy(), offset=2)
    got = reference.add_sinusoidal(x, out=out, offset=2)
    assert_within(got, expected, 0, "reference with overlapping out")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_read_only_and_broadcast_x_with_out(dtype):
    """x is only read when out= is given: read-only and zero-stride (broadcast) x are fine."""
    rng = rng_for("ro-x", dtype)
    x = random_values((3, 17, 8), dtype, rng)
    x.flags.writeable = False
    out = np.empty_like(x)
    check_add_against_reference(x, "read-only x", out=out, offset=2)
    row = random_values((8,), dtype, rng)
    xb = np.broadcast_to(row, (3, 17, 8))
    check_add_against_reference(xb, "broadcast x", out=np.empty((3, 17, 8), dtype), offset=np.array([0, 1, 2]))


def test_list_x_with_out():
    """A nested list is a valid x when the result goes to out (it is converted as float64)."""
    x = [[0.5, -1.0, 2.0], [3.0, 4.0, -5.0]]
    out = np.empty((2, 3))
    got = fastpe.add_sinusoidal(x, out=out, offset=1)
    assert got is out
    assert_within(out, reference.add_sinusoidal(np.array(x), offset=1), 1e-12, "list x")


# ----------------------------------------------------------------- inv_freq


def _inv_freq_cases(rng):
    for D in (1, 2, 3, 7, 64, 1023):
        for layout in LAYOUTS:
            n = (D + 1) // 2 if layout == "interleaved" else D // 2
            yield D, layout, rng.uniform(1e-4, 1.5, n), "random"
    yield 8, "interleaved", [1.0, 0.5, 0.25, 0.125], "list"
    yield 8, "concat", np.array([1, 2, 3, 4]), "int-array"
    yield 6, "interleaved", np.array([0.1, 0.2, 0.3], dtype=np.float32), "float32-array"
    yield 6, "concat", np.zeros(3), "zero-frequencies"
    yield 6, "interleaved", np.array([-1.0, 0.0, 2.0]), "negative-frequency"
    yield 10, "interleaved", reference.frequencies(10, 500.0, "interleaved"), "same-as-base-500"


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_inv_freq(dtype):
    rng = rng_for("inv_freq", dtype)
    for D, layout, freq, label in _inv_freq_cases(rng):
        for shape, kw in [((17, D), {"offset": 3}), ((3, 17, D), {"offset": np.array([0, 5, 0])}),
                          ((2, 17, D), {"positions": rng.integers(-300, 300, (2, 17))})]:
            for kind, x in array_variants(shape, dtype, rng, kinds=("C", "D-reversed")):
                check_add_against_reference(
                    x, f"inv_freq={label} D={D} layout={layout} memory={kind}", inv_freq=freq, layout=layout, **kw
                )


@pytest.mark.parametrize("layout", LAYOUTS)
def test_base(layout):
    rng = rng_for("base", layout)
    for base in (10000.0, 10000, 500.0, 2.0, 1.0, 0.5, 1e6, np.float32(100.0)):
        for shape, kw in [((17, 12), {"offset": 1}), ((2, 17, 7), {"positions": rng.integers(0, 500, (2, 17))})]:
            x = random_values(shape, np.float64, rng)
            check_add_against_reference(x, f"base={base!r} layout={layout}", base=base, layout=layout, **kw)


# -------------------------------------------------------------- empty arrays

EMPTY_SHAPES = [(0, 4), (5, 0), (0, 0), (0, 5, 4), (3, 0, 4), (3, 5, 0), (2, 0, 5, 4), (0, 0, 0, 0)]


@pytest.mark.parametrize("shape", EMPTY_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_empty_is_noop(dtype, shape):
    x = np.empty(shape, dtype)
    for kw in ({}, {"offset": 3}, {"positions": np.zeros(shape[:-1])}, {"scale": 2.0, "layout": "concat"},
               {"offset": np.zeros(shape[:-2])}):
        assert fastpe.add_sinusoidal(x, **kw) is x
        assert reference.add_sinusoidal(x, **kw) is x
        out = np.empty(shape, dtype)
        assert fastpe.add_sinusoidal(x, out=out, **kw) is out


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_zero_dim_interleaved_and_concat_odd_columns(dtype):
    """D = 1: interleaved is one sine column; concat leaves the only column at x * scale."""
    x = np.linspace(-1, 1, 10).astype(dtype).reshape(10, 1)
    got = fastpe.add_sinusoidal(x.copy(), offset=2, layout="concat", scale=3.0)
    assert_within(got, x.astype(np.float64) * 3.0, 2 * np.finfo(dtype).eps * 3, "concat D=1")
    got = fastpe.add_sinusoidal(x.copy(), offset=2)
    assert_within(got[:, 0], x[:, 0].astype(np.float64) + np.sin(np.arange(2, 12.0)), 3e-7, "interleaved D=1")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_nan_and_inf_in_x_propagate(dtype):
    """Non-finite values in x stay where they are (NaN stays NaN, +-inf stays +-inf); the rest is normal."""
    rng = rng_for("nonfinite", dtype)
    for shape, kw in [((40, 16), {"offset": 3}), ((3, 40, 9), {"positions": rng.integers(0, 99, (3, 40))}),
                      ((2, 2, 300, 64), {"offset": np.array([[0, 1], [2, 3]]), "scale": -2.0})]:
        x = random_values(shape, dtype, rng)
        flat = x.reshape(-1)
        idx = rng.choice(flat.size, size=3 * max(1, flat.size // 50), replace=False)
        flat[idx[0::3]] = np.nan
        flat[idx[1::3]] = np.inf
        flat[idx[2::3]] = -np.inf
        expected = reference.add_sinusoidal(x.copy(), **kw)
        got = fastpe.add_sinusoidal(x.copy(), **kw)
        label = f"non-finite x {describe(x)} {kw}"
        assert np.array_equal(np.isnan(got), np.isnan(expected)), f"{label}: NaN pattern differs"
        inf = np.isinf(expected)
        assert np.array_equal(got[inf], expected[inf]) and not np.isinf(got[~inf]).any(), f"{label}: inf differs"
        fin = np.isfinite(expected)
        scale = kw.get("scale", 1.0)
        tol = 1.2e-7 + 2 * np.finfo(dtype).eps * np.abs(x[fin].astype(np.float64) * scale)
        assert_within(got[fin], expected[fin], tol, label)


def test_numpy_integer_arguments_accepted():
    """NumPy integer scalars work wherever Python ints do (dim, n_positions, num_threads)."""
    t = fastpe.sinusoidal_table(np.int64(5), np.int32(6), num_threads=np.int64(2), offset=np.int16(3))
    assert_within(t, reference.sinusoidal_table(5, 6, offset=3), 1.2e-7, "numpy ints")
    e = fastpe.sinusoidal_encode(np.arange(4), np.uint8(6), num_threads=np.uint8(1))
    assert_within(e, reference.sinusoidal_encode(np.arange(4), 6), 1.2e-7, "numpy ints encode")


def test_arguments_not_modified():
    """Successful calls leave every input they only read exactly as it was: x (with out=),
    positions, offset and inv_freq keep their bytes and their writeable flag."""
    rng = rng_for("inputs-untouched")
    for dtype in DTYPES:
        for kw in (
            {"positions": rng.integers(-50, 50, (3, 40)).astype(np.float64)},
            {"positions": rng.permutation(40).astype(np.int64)},
            {"offset": np.array([5.0, 5.0, -2.0])},
            {"offset": np.array([3, 1, 2], dtype=np.int32), "inv_freq": np.linspace(0.1, 1.0, 8)},
            {"positions": np.arange(40.0)[::-1], "inv_freq": np.linspace(0.1, 1.0, 8), "layout": "concat"},
        ):
            x = random_values((3, 40, 16), dtype, rng)
            readonly_inputs = [x] + [v for v in kw.values() if isinstance(v, np.ndarray)]
            before = [(a.tobytes(), a.flags.writeable, a.strides) for a in readonly_inputs]
            out = np.empty_like(x)
            fastpe.add_sinusoidal(x, out=out, **kw)
            fastpe.add_sinusoidal(out, **kw)  # in place on out: the other inputs are still only read
            fastpe.sinusoidal_encode(kw.get("positions", np.arange(3)), 16, layout=kw.get("layout", "interleaved"),
                                     inv_freq=kw.get("inv_freq"))
            after = [(a.tobytes(), a.flags.writeable, a.strides) for a in readonly_inputs]
            for a, b, c in zip(readonly_inputs, before, after):
                assert b == c, f"{describe(a)} changed by a call with {sorted(kw)}"


def test_memmap_x_in_place(tmp_path):
    """A np.memmap (an ndarray subclass over a file) is written in place and returned as is."""
    x = np.memmap(tmp_path / "x.f32", dtype=np.float32, mode="w+", shape=(3, 17, 8))
    x[...] = np.linspace(-1, 1, x.size, dtype=np.float32).reshape(x.shape)
    expected = reference.add_sinusoidal(np.array(x), offset=np.array([0, 4, 8]))
    got = fastpe.add_sinusoidal(x, offset=np.array([0, 4, 8]))
    assert got is x
    x.flush()
    on_disk = np.fromfile(tmp_path / "x.f32", dtype=np.float32).reshape(3, 17, 8)
    assert_within(on_disk, expected, 2.4e-7, "memmap written through to the file")
    del x, got


@pytest.mark.parametrize("D", [513, 515, 4097, 16385, 20000])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_wide_dims(layout, D):
    """Widths past the kernels' frequency chunk (256) and row-tile budget (16384 doubles),
    odd and even: single-sequence rows, shared-offset batches and explicit positions."""
    rng = rng_for("wide", layout, D)
    for dtype in DTYPES:
        for shape, kw in [((9, D), {"offset": 1000}), ((3, 5, D), {"offset": -7}),
                          ((2, 6, D), {"offset": np.array([3, 40])}),
                          ((2, 4, D), {"positions": rng.integers(-300, 300, (2, 4))})]:
            for kind, x in array_variants(shape, dtype, rng, kinds=("C", "D-reversed")):
                check_add_against_reference(x, f"wide D={D} memory={kind}", layout=layout, **kw)
        got = fastpe.sinusoidal_table(5, D, offset=2**20 - 5, layout=layout, dtype=dtype)
        expected = reference.sinusoidal_table(5, D, offset=2**20 - 5, layout=layout, dtype=dtype)
        assert_within(got, expected, 2 * (1.2e-7 if dtype == np.float32 else 1e-9), f"wide table D={D} {layout}")


@pytest.mark.parametrize("dim", [1026, 2050])
def test_regression_padding_row_scaled_once_per_frequency_chunk(dim):
    """The row at padding_idx was written inside the kernel's frequency-chunk
    loop (512 frequencies a chunk), so with dim > 1024 an in-place add with a
    scale scaled that row once per chunk (x * scale**2 and worse; error 5.99
    on dim=2050, scale=2)."""
    rng = rng_for("padding-chunks", dim)
    x = random_values((2, 6, dim), np.float64, rng)
    x0 = x.copy()
    expected = reference.add_sinusoidal(x0.copy(), padding_idx=1, offset=-3, scale=2.0)
    fastpe.add_sinusoidal(x, padding_idx=1, offset=-3, scale=2.0)
    assert_within(x, expected, add_tolerance(np.float64, 10, 2.0 * np.abs(x0)), f"dim={dim}")
    assert_within(x[:, 4], 2.0 * x0[:, 4], 0.0, "the padding row (position 1) is scale * x exactly")
