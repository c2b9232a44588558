"""sinusoidal_table, sinusoidal_encode and reference.frequencies.

The kernels are compared with the NumPy reference; the reference itself is
checked against an independent elementwise formula built from the math
module only, so a mistake shared by both implementations is caught too.
"""

import math

import numpy as np
import pytest

import fastpe
from fastpe import reference
from util import (
    DTYPES,
    LAYOUTS,
    add_tolerance,
    assert_within,
    contract_atol,
    describe,
    math_encoding_row,
    math_frequencies,
    rng_for,
)

DIMS = (0, 1, 2, 3, 7, 64, 1023, 1024)

# ---------------------------------------------------- the reference, checked


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dim", (1, 2, 3, 4, 5, 7, 8, 64, 1023, 1024))
@pytest.mark.parametrize("base", (10000.0, 100.0, 2.0, 1e5, 1.0))
def test_reference_frequencies_match_math_pow(base, dim, layout):
    w = reference.frequencies(dim, base, layout)
    expected = math_frequencies(dim, base, layout)
    assert w.dtype == np.float64
    assert w.shape == ((dim + 1) // 2 if layout == "interleaved" else dim // 2,)
    for k, (got, exp) in enumerate(zip(w.tolist(), expected)):
        # np.power and math.pow may round differently: allow one ulp
        assert abs(got - exp) <= math.ulp(exp), f"w_{k} dim={dim} base={base} layout={layout}: {got!r} vs {exp!r}"


def test_reference_frequencies_known_values():
    assert reference.frequencies(4, 10000.0).tolist() == [1.0, 0.01]
    assert reference.frequencies(4, 10000.0, "concat").tolist() == [1.0, 0.01]
    assert reference.frequencies(5, 10000.0).tolist()[0] == 1.0
    assert len(reference.frequencies(5, 10000.0, "interleaved")) == 3
    assert len(reference.frequencies(5, 10000.0, "concat")) == 2
    assert len(reference.frequencies(1, 10000.0, "concat")) == 0
    assert len(reference.frequencies(0, 10000.0)) == 0


SMALL_CASES = [
    # (n_positions, dim, offset, base, layout)
    (5, 1, 0, 10000.0, "interleaved"),
    (5, 1, 0, 10000.0, "concat"),
    (6, 2, 3, 10000.0, "interleaved"),
    (6, 2, 3, 10000.0, "concat"),
    (4, 3, -2.5, 10000.0, "interleaved"),
    (4, 3, -2.5, 10000.0, "concat"),
    (7, 5, 10, 100.0, "interleaved"),
    (7, 5, 10, 100.0, "concat"),
    (3, 8, 1000, 10000.0, "interleaved"),
    (3, 8, 1000, 10000.0, "concat"),
    (2, 16, -4000.25, 500.0, "interleaved"),
    (2, 16, -4000.25, 500.0, "concat"),
]


def _math_table(n, dim, offset, base, layout, inv_freq=None):
    return np.array([math_encoding_row(offset + t, dim, base, layout, inv_freq) for t in range(n)]).reshape(n, dim)


@pytest.mark.parametrize("impl", ["reference", "fastpe"])
@pytest.mark.parametrize("case", SMALL_CASES, ids=str)
def test_table_matches_math_formula(case, impl):
    n, dim, offset, base, layout = case
    mod = reference if impl == "reference" else fastpe
    expected = _math_table(n, dim, offset, base, layout)
    for dtype in DTYPES:
        got = mod.sinusoidal_table(n, dim, offset=offset, base=base, layout=layout, dtype=dtype)
        assert got.dtype == dtype and got.shape == (n, dim)
        # math.pow may differ from np.power by one ulp of w, which moves the
        # angle by one ulp of |p|: well inside the small-position contract
        assert_within(got, expected, contract_atol(dtype, abs(offset) + n), f"{impl} table {case} {np.dtype(dtype).name}")


@pytest.mark.parametrize("impl", ["reference", "fastpe"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_encode_matches_math_formula(layout, impl):
    mod = reference if impl == "reference" else fastpe
    positions = np.array([[3, -1.5, 0], [2, 2, 1e3]])
    for dim in (1, 2, 5, 6):
        expected = np.array(
            [[math_encoding_row(p, dim, 10000.0, layout) for p in row] for row in positions.tolist()]
        ).reshape(2, 3, dim)
        for dtype in DTYPES:
            got = mod.sinusoidal_encode(positions, dim, layout=layout, dtype=dtype)
            assert got.shape == (2, 3, dim) and got.dtype == dtype
            assert_within(got, expected, contract_atol(dtype, 1e3), f"{impl} encode dim={dim} {layout}")


@pytest.mark.parametrize("impl", ["reference", "fastpe"])
def test_inv_freq_matches_math_formula(impl):
    mod = reference if impl == "reference" else fastpe
    for dim, layout, freq in [(5, "interleaved", [1.0, 0.3, 0.07]), (5, "concat", [0.9, 0.02]), (4, "concat", [2.0, 1e-3])]:
        expected = _math_table(6, dim, 2, 10000.0, layout, freq)
        got = mod.sinusoidal_table(6, dim, offset=2, layout=layout, inv_freq=freq, dtype=np.float64)
        assert_within(got, expected, 1e-12, f"{impl} inv_freq dim={dim} {layout}")


@pytest.mark.parametrize("impl", ["reference", "fastpe"])
def test_known_rows(impl):
    """Position 0 is sin 0 = 0, cos 0 = 1; odd concat dims end in a zero column."""
    mod = reference if impl == "reference" else fastpe
    t = mod.sinusoidal_table(1, 7, dtype=np.float64)
    assert t.tolist() == [[0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0]]
    t = mod.sinusoidal_table(1, 7, layout="concat", dtype=np.float64)
    assert t.tolist() == [[0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0]]
    t = mod.sinusoidal_table(50, 7, offset=-20, layout="concat", dtype=np.float64)
    assert (t[:, 6] == 0.0).all()
    t = mod.sinusoidal_table(3, 2, offset=1, dtype=np.float64)
    assert_within(t, [[math.sin(p), math.cos(p)] for p in (1, 2, 3)], 1e-15, f"{impl} dim=2")


# --------------------------------------------------- kernel vs the reference

TABLE_CASES = [
    (n, dim, offset)
    for n, dim, offset in [
        (0, 4, 0), (4, 0, 0), (1, 1, 0), (17, 2, 3), (17, 3, -5), (2048, 7, 0), (300, 64, 2.5),
        (17, 1023, 100), (2, 1024, -7), (1000, 1, 999_000), (600, 64, -(2**20) + 600), (257, 16, 0),
        (4096, 8, -2048),
    ]
]


@pytest.mark.parametrize("case", TABLE_CASES, ids=str)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_table_vs_reference(dtype, layout, case):
    n, dim, offset = case
    got = fastpe.sinusoidal_table(n, dim, offset=offset, layout=layout, dtype=dtype)
    expected = reference.sinusoidal_table(n, dim, offset=offset, layout=layout, dtype=dtype)
    assert got.dtype == np.dtype(dtype) and got.shape == (n, dim)
    pmax = max(abs(offset), abs(offset + n - 1)) if n else 0
    assert_within(got, expected, add_tolerance(dtype, pmax, 0.0), f"table {case} {layout} {np.dtype(dtype).name}")


def test_table_default_dtype_is_float32():
    assert fastpe.sinusoidal_table(3, 4).dtype == np.float32
    assert fastpe.sinusoidal_encode([1, 2], 4).dtype == np.float32
    assert reference.sinusoidal_table(3, 4).dtype == np.float32
    assert fastpe.sinusoidal_table(3, 4, dtype="float64").dtype == np.float64
    assert fastpe.sinusoidal_table(3, 4, dtype=np.dtype("f8")).dtype == np.float64


def _position_arrays(rng):
    yield "scalar", 5
    yield "0d-float", np.array(-3.5)
    yield "1d-arange", np.arange(40)
    yield "unsorted", rng.permutation(300)
    yield "repeated", np.array([4, 4, 4, 5, 4, 3, 3])
    yield "negative-fractional", np.linspace(-100, 10, 57)
    yield "huge", 1_000_000 + rng.permutation(500)
    yield "contract-range", rng.uniform(-(2**20), 2**20, (3, 50))
    yield "2d-runs", np.arange(600).reshape(2, 300) + np.array([[0], [5000]])
    yield "3d-int32", rng.integers(-500, 500, (2, 3, 4)).astype(np.int32)
    yield "uint8", np.arange(256, dtype=np.uint8)
    yield "list", [0, 1, 2, 10, 11]
    yield "negative-stride-view", np.arange(900)[::-3]
    yield "transposed-view", rng.integers(-50, 50, (7, 5)).T
    yield "empty", np.zeros((0,))
    yield "empty-2d", np.zeros((3, 0))


@pytest.mark.parametrize("dim", (1, 2, 3, 7, 64, 1023))
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_encode_vs_reference(dtype, layout, dim):
    rng = rng_for("encode", dtype, layout, dim)
    for label, pos in _position_arrays(rng):
        if dim == 1023 and np.size(pos) > 300:
            continue
        got = fastpe.sinusoidal_encode(pos, dim, layout=layout, dtype=dtype)
        expected = reference.sinusoidal_encode(pos, dim, layout=layout, dtype=dtype)
        assert got.shape == np.shape(pos) + (dim,), label
        assert got.dtype == dtype
        pmax = float(np.abs(np.asarray(pos, dtype=np.float64)).max()) if np.size(pos) else 0.0
        assert_within(got, expected, add_tolerance(dtype, pmax, 0.0), f"encode positions={label} dim={dim} {layout}")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_encode_of_a_run_is_the_table(layout):
    """encode(offset + arange(n)) (grouped kernel, runs via the recurrence) against the reference table."""
    for dtype in DTYPES:
        expected = reference.sinusoidal_table(700, 12, offset=-300, layout=layout, dtype=dtype)
        enc = fastpe.sinusoidal_encode(np.arange(700) - 300, 12, layout=layout, dtype=dtype)
        assert_within(enc, expected, add_tolerance(dtype, 400, 0.0), f"encode(arange) vs table {layout}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_table_and_encode_out(dtype):
    """out= receives the table (any strides) in its own dtype (dtype=None, the
    default, and dtype=out.dtype alike), and is returned."""
    rng = rng_for("table-out", dtype)
    for label, out in [
        ("C", np.empty((50, 9), dtype)),
        ("F", np.empty((50, 9), dtype, order="F")),
        ("D-stride2", np.empty((50, 18), dtype)[:, ::2]),
        ("reversed", np.empty((50, 9), dtype)[::-1, ::-1]),
    ]:
        out[...] = rng.uniform(-1e3, 1e3, out.shape)
        got = fastpe.sinusoidal_table(50, 9, offset=7, out=out)
        assert got is out, label
        expected = reference.sinusoidal_table(50, 9, offset=7, dtype=dtype)
        assert_within(out, expected, add_tolerance(dtype, 60, 0.0), f"table out={label} {describe(out)}")
        out[...] = 1e3
        pos = rng.integers(-100, 100, 50)
        got = fastpe.sinusoidal_encode(pos, 9, layout="concat", dtype=out.dtype, out=out)
        assert got is out, label
        expected = reference.sinusoidal_encode(pos, 9, layout="concat", dtype=dtype)
        assert_within(out, expected, add_tolerance(dtype, 100, 0.0), f"encode out={label} {describe(out)}")


@pytest.mark.parametrize("module", [fastpe, reference], ids=["fastpe", "reference"])
@pytest.mark.parametrize("function", ["sinusoidal_table", "sinusoidal_encode"])
def test_regression_dtype_disagreeing_with_out_is_refused(module, function):
    """sinusoidal_table(8, 16, dtype=np.float32, out=np.empty((8, 16))) silently
    returned float64: an explicit dtype must be out's (ValueError naming both)."""
    out = np.full((8, 16), 7.0)
    args = (8, 16) if function == "sinusoidal_table" else (np.arange(8), 16)
    with pytest.raises(ValueError, match="dtype=float32 disagrees with out's dtype float64"):
        getattr(module, function)(*args, dtype=np.float32, out=out)
    assert np.all(out == 7.0)
    assert getattr(module, function)(*args, out=out).dtype == np.float64     # dtype=None: out's
    assert getattr(module, function)(*args).dtype == np.float32              # dtype=None: float32


def test_reference_table_out_returns_out():
    out = np.empty((3, 4))
    assert reference.sinusoidal_table(3, 4, out=out) is out
    assert reference.sinusoidal_encode([1, 2, 3], 4, out=out) is out
    assert_within(out, reference.sinusoidal_encode([1, 2, 3], 4, dtype=np.float64), 0, "reference out")


@pytest.mark.parametrize("dim", DIMS)
def test_table_inv_freq_vs_reference(dim):
    rng = rng_for("table-inv", dim)
    for layout in LAYOUTS:
        n = (dim + 1) // 2 if layout == "interleaved" else dim // 2
        freq = rng.uniform(0, 1.2, n)
        for dtype in DTYPES:
            got = fastpe.sinusoidal_table(300, dim, offset=-40, layout=layout, inv_freq=freq, dtype=dtype)
            expected = reference.sinusoidal_table(300, dim, offset=-40, layout=layout, inv_freq=freq, dtype=dtype)
            assert_within(got, expected, add_tolerance(dtype, 300, 0.0), f"table inv_freq dim={dim} {layout}")
            pos = rng.uniform(-1000, 1000, 77)
            got = fastpe.sinusoidal_encode(pos, dim, layout=layout, inv_freq=freq, dtype=dtype)
            expected = reference.sinusoidal_encode(pos, dim, layout=layout, inv_freq=freq, dtype=dtype)
            assert_within(got, expected, add_tolerance(dtype, 1000, 0.0), f"encode inv_freq dim={dim} {layout}")


def test_table_base_vs_reference():
    for base in (2.0, 1.0, 0.25, 1e8, 10000):
        for layout in LAYOUTS:
            got = fastpe.sinusoidal_table(500, 10, offset=3, base=base, layout=layout, dtype=np.float64)
            expected = reference.sinusoidal_table(500, 10, offset=3, base=base, layout=layout, dtype=np.float64)
            assert_within(got, expected, 1e-12, f"base={base} {layout}")
