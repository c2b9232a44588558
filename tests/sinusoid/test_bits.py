"""One position, one set of bits (README, Numerical contract).

The encoding row of a position is a pure function of (position, dim,
parameters, dtype): every way of asking for it gives the same bits, whatever
the offset, the batch, the thread count, the path (sinusoidal_table,
sinusoidal_encode, add_sinusoidal into zeros, explicit positions in any order,
a preset) and the state of the plan cache. Each path is also checked against
the NumPy reference within the contract, so a path that agrees with the
others only by being wrong in the same way cannot pass.

Adding into zeros gives the encoding itself: 0 * 1 + pe is exact, except that
a -0.0 entry becomes +0.0, so the tables are compared with 0.0 added.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import exact
import fastpe
from fastpe import reference
from fastpe._runtime import RESEED_INTERVAL, SERIAL_BELOW
from util import CONTRACT_MAX_POSITION, DTYPES, LAYOUTS, add_tolerance, assert_same_bits, assert_within, rng_for

try:
    import ml_dtypes
except ImportError:  # pragma: no cover - ml_dtypes is a test dependency
    ml_dtypes = None

GRID = RESEED_INTERVAL
# Integer offsets on, next to and between canonical seed points, negative ones,
# and ones near 2**20 (the end of the contract).
INT_OFFSETS = [0, 1, 37, GRID - 1, GRID, GRID + 1, 2 * GRID - 3, 1000, 4059,
               -1, -37, -GRID + 1, -GRID, -GRID - 1, -1000,
               2**20 - 300, 2**20 - GRID, 2**20 + 17, -(2**20) - 5]
# Fractional offsets: exact binary fractions, and 0.1-like ones whose sums
# with t round differently in each binade.
FRACTIONAL_OFFSETS = [0.5, 300.25, -0.75, -300.5, 0.1, 1000.1, -1000.1, 2**20 - 0.3]
PRESET_KWARGS = [
    {"layout": "interleaved"},
    {"layout": "concat"},
    {"preset": "vaswani"},
    {"preset": "marian"},
    {"preset": "tensor2tensor"},
    {"preset": "fairseq"},
    {"preset": "whisper"},
    {"layout": "concat", "padding_idx": 300},
]
THREADS = [1, 2, 4]


def _id(kwargs):
    return ",".join(f"{k}={v}" for k, v in kwargs.items())


def _positive_zeros(a):
    return a + a.dtype.type(0)


def _check_reference(actual, expected, dtype, positions, msg):
    """Within the contract of the reference where the contract speaks (|p| <= 2**20)."""
    pmax = float(np.max(np.abs(positions)))
    if pmax <= CONTRACT_MAX_POSITION:
        assert_within(actual, expected, add_tolerance(dtype, pmax, 0.0), msg)


def _paths(offset, T, dim, dtype, kwargs, rng, num_threads=None):
    """The rows of positions offset + t, t < T, by every path; the reference's rows too.

    fairseq shifts implicit positions past padding_idx; explicit positions
    never are, so the explicit paths get the shifted positions."""
    shift = 2 if kwargs.get("preset") == "fairseq" else 0
    positions = offset + shift + np.arange(T, dtype=np.float64)
    table = fastpe.sinusoidal_table(T, dim, offset=offset + shift, dtype=dtype, num_threads=num_threads,
                                    **kwargs)
    encoded = fastpe.sinusoidal_encode(positions, dim, dtype=dtype, num_threads=num_threads, **kwargs)
    added = fastpe.add_sinusoidal(np.zeros((T, dim), dtype), offset=offset, num_threads=num_threads, **kwargs)
    order = rng.permutation(T)
    shuffled = np.empty((T, dim), dtype)
    shuffled[order] = fastpe.add_sinusoidal(np.zeros((T, dim), dtype), positions=positions[order],
                                            num_threads=num_threads, **kwargs)
    expected = reference.sinusoidal_table(T, dim, offset=offset + shift, dtype=np.float64, **kwargs)
    return positions, {"table": table, "encode": encoded, "add into zeros": added,
                       "add, shuffled positions": shuffled}, expected


def _check_paths(offset, T, dim, dtype, kwargs, rng, num_threads=None):
    positions, got, expected = _paths(offset, T, dim, dtype, kwargs, rng, num_threads)
    _check_reference(got["table"], expected, dtype, positions, f"table offset={offset} {kwargs}")
    base = _positive_zeros(got["table"])
    for name in ("encode", "add into zeros", "add, shuffled positions"):
        assert_same_bits(_positive_zeros(got[name]), base, f"{name} vs table, offset={offset} {kwargs} {dtype}")
    return got["table"]


# ----------------------------------------------------------- regression

@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_table_at_an_offset_has_the_rows_of_the_whole_table(dtype):
    """Regression: rows 37.. of sinusoidal_table(4096, 1024) differed from
    sinusoidal_table(4096 - 37, 1024, offset=37) (4 float32 elements, almost
    every float64 one at ~1e-13): each work item seeded at its own first row."""
    whole = fastpe.sinusoidal_table(4096, 1024, dtype=dtype)
    _check_reference(whole, reference.sinusoidal_table(4096, 1024, dtype=np.float64), dtype, [4095], "table")
    part = fastpe.sinusoidal_table(4096 - 37, 1024, offset=37, dtype=dtype)
    assert_same_bits(part, whole[37:], "offset=37 vs rows 37.. of the whole table")


def test_positions_near_zero_are_seeded_at_themselves():
    """Regression: a tiny negative position (-1.2e-294) was rotated 255 times
    from -255, so its cosines missed 1.0 by ~1e-15 and a float16 x + pe at a
    tie rounded the wrong way. Every |p| < 1 is its own canonical point, and
    sin(p w) = p w, cos(p w) = 1 exactly at such p, in any libm. (The sines
    are compared with the exact p w, to an ulp: the reference's frequencies,
    NumPy's powers, are a few ulps from the exact ones fastpe uses.)"""
    freqs = exact.vaswani(11, 10000.0, 6)
    for p in (-1.2373065698401223e-294, 1e-300, -5e-324, -1e-30):
        for layout in LAYOUTS:
            got = fastpe.sinusoidal_encode([p], 11, layout=layout, dtype=np.float64)
            expected = exact.encodings([p], freqs, exact.preset_columns(layout, 11))
            np.testing.assert_array_max_ulp(got, expected, maxulp=1)
            cos_columns = slice(1, None, 2) if layout == "interleaved" else slice(5, 10)
            assert (got[0, cos_columns] == 1.0).all(), f"position {p} {layout}: cosines must be exactly 1"
            table = fastpe.sinusoidal_table(300, 11, offset=p, layout=layout, dtype=np.float64)
            assert_same_bits(table[:1], got, f"table at offset {p} {layout}")


# ----------------------------------------------------------- every path, many offsets

@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("offset", INT_OFFSETS + FRACTIONAL_OFFSETS)
def test_paths_agree_at_offsets(offset, dtype):
    rng = rng_for("paths", offset, dtype)
    for kwargs in ({"layout": "interleaved"}, {"layout": "concat"}):
        _check_paths(offset, 600, 70, dtype, kwargs, rng)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("offset", [2**40 + 77, 2**53 - 700, -(2**50) - 3, 2**31 + 0.5, -(2**40) - 0.625])
def test_paths_agree_at_large_positions(offset, dtype):
    """The seeds of exact angles keep one set of bits per position far out too
    (their accuracy is checked in accuracy/): every path, two threads, and
    the compiled fast path's cached rows (integers) or generation (fractions)."""
    table = _check_paths(offset, 600, 70, dtype, {"layout": "interleaved"}, rng_for("large", offset, dtype),
                         num_threads=2)
    x = np.zeros((1, 40, 70), dtype)
    fastpe.add_sinusoidal(x, offset=offset)
    assert_same_bits(_positive_zeros(x[0]), _positive_zeros(table[:40]), f"fast path at {offset}")


@pytest.mark.parametrize("offset", [0, 37, GRID, 1000, -300, 2**20 - 100])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_slices_of_one_table(offset, dtype):
    """A table starting anywhere is a slice of a table starting earlier."""
    for layout in LAYOUTS:
        whole = fastpe.sinusoidal_table(1500, 96, offset=offset - 517, layout=layout, dtype=dtype)
        for start in (0, 1, 100, 255, 256, 517, 1000, 1499):
            part = fastpe.sinusoidal_table(1500 - start, 96, offset=offset - 517 + start, layout=layout, dtype=dtype)
            assert_same_bits(part, whole[start:], f"table from row {start} of offset {offset - 517} {layout}")
            one = fastpe.sinusoidal_table(1, 96, offset=offset - 517 + start, layout=layout, dtype=dtype)
            assert_same_bits(one[0], whole[start], f"one row at {offset - 517 + start} {layout}")


@pytest.mark.parametrize("kwargs", PRESET_KWARGS, ids=_id)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_paths_agree_for_layouts_and_presets(kwargs, dtype):
    rng = np.random.default_rng(7)
    for dim in (64, 33):
        if kwargs.get("preset") == "whisper" and dim % 2:
            continue  # whisper needs an even width
        for offset in (0, 37, 290, -300, 2**20 - 20):
            _check_paths(offset, 400, dim, dtype, kwargs, rng)


def test_padding_row_is_zero_in_every_path():
    """padding_idx's row is zeros on every path, and its neighbours keep their canonical bits."""
    rng = np.random.default_rng(11)
    table = _check_paths(250, 100, 48, np.float64, {"layout": "concat", "padding_idx": 300}, rng)
    assert not table[50].any()
    plain = fastpe.sinusoidal_table(100, 48, offset=250, layout="concat", dtype=np.float64)
    rows = np.arange(100) != 50
    assert_same_bits(table[rows], plain[rows], "rows beside the padding row")


# ----------------------------------------------------------- threads, batch, cache

@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_thread_counts_give_the_same_bits(dtype):
    rng = np.random.default_rng(5)
    T, dim = 700, 96
    assert T * dim >= SERIAL_BELOW  # the teams really run
    for offset in (0, 37, -1000, 0.5):
        tables = [_check_paths(offset, T, dim, dtype, {"layout": "interleaved"}, rng, nt) for nt in THREADS]
        for nt, table in zip(THREADS[1:], tables[1:]):
            assert_same_bits(table, tables[0], f"offset={offset}: {nt} threads vs 1")


@pytest.mark.parametrize("num_threads", THREADS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_batch_and_per_sequence_offsets(dtype, num_threads):
    """Each sequence of a batch (offsets per sequence, shared or not) holds the
    rows a single-sequence call and a table give."""
    T, dim = 300, 64
    offsets = np.array([0, 37, 37, -256, 1000, 37, 2**20 - 299, -5])
    x = np.zeros((offsets.size, T, dim), dtype)
    fastpe.add_sinusoidal(x, offset=offsets, num_threads=num_threads)
    xt = np.zeros((offsets.size, dim, T), dtype).transpose(0, 2, 1)  # strided rows
    fastpe.add_sinusoidal(xt, offset=offsets, num_threads=num_threads)
    same = np.zeros((4, T, dim), dtype)
    fastpe.add_sinusoidal(same, offset=37, num_threads=num_threads)
    for i, o in enumerate(offsets):
        table = fastpe.sinusoidal_table(T, dim, offset=o, dtype=dtype)
        _check_reference(table, reference.sinusoidal_table(T, dim, offset=o, dtype=np.float64), dtype,
                         [o, o + T - 1], f"table offset {o}")
        single = fastpe.add_sinusoidal(np.zeros((T, dim), dtype), offset=o, num_threads=1)
        assert_same_bits(single, _positive_zeros(table), f"single sequence at {o}")
        assert_same_bits(x[i], single, f"sequence {i} of the batch (offset {o})")
        assert_same_bits(xt[i], single, f"sequence {i} of a strided batch (offset {o})")
    for i in range(4):
        assert_same_bits(same[i], x[1], f"batch sharing offset 37, sequence {i}")


def test_explicit_positions_per_sequence_in_any_order():
    rng = np.random.default_rng(3)
    dim = 40
    positions = rng.integers(-3000, 3000, (5, 200))
    positions[1] = positions[0][::-1]
    x = fastpe.add_sinusoidal(np.zeros((5, 200, dim), np.float64), positions=positions, num_threads=2)
    expected = reference.add_sinusoidal(np.zeros((5, 200, dim), np.float64), positions=positions)
    _check_reference(x, expected, np.float64, positions, "explicit positions")
    for (b, t), p in np.ndenumerate(positions):
        if t % 37 == 0:
            row = fastpe.sinusoidal_table(1, dim, offset=int(p), dtype=np.float64)[0]
            assert_same_bits(x[b, t], _positive_zeros(row), f"position {p} at [{b}, {t}]")
    assert_same_bits(x[1], x[0][::-1], "reversed positions")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_plan_cache_cold_or_warm(dtype):
    def rows():
        return (fastpe.sinusoidal_table(500, 72, offset=123, dtype=dtype),
                fastpe.add_sinusoidal(np.zeros((2, 500, 72), dtype), offset=123),
                fastpe.sinusoidal_encode(123 + np.arange(500), 72, dtype=dtype))

    fastpe.cache_clear()
    cold = rows()
    warm = rows()
    limit = fastpe.cache_info().limit
    try:
        fastpe.set_cache_limit(0)  # nothing is kept: every call builds its plan
        uncached = rows()
    finally:
        fastpe.set_cache_limit(limit)
    _check_reference(cold[0], reference.sinusoidal_table(500, 72, offset=123, dtype=np.float64), dtype, [622],
                     "cold table")
    for name, a, b, c in zip(("table", "add", "encode"), cold, warm, uncached):
        assert_same_bits(b, a, f"{name}: warm cache vs cold")
        assert_same_bits(c, a, f"{name}: no cache vs cold")
    assert_same_bits(cold[1][0], _positive_zeros(cold[0]), "add vs table")
    assert_same_bits(cold[2], cold[0], "encode vs table")


# ----------------------------------------------------------- 16-bit outputs

HALF = ["float16"] + (["bfloat16"] if ml_dtypes is not None else [])


@pytest.mark.parametrize("half", HALF)
def test_half_rows_round_the_float64_row_once(half):
    """16-bit outputs follow: every path gives the same bits, and float16 ones
    are the float64 row rounded once (NumPy's float64 -> float16 cast rounds
    once; ml_dtypes' bfloat16 cast goes through float32, so bfloat16 is only
    compared path against path)."""
    dtype = np.dtype(half) if half == "float16" else np.dtype(ml_dtypes.bfloat16)
    rng = np.random.default_rng(17)
    T, dim = 600, 64
    for offset in (0, 37, -300, 2**20 - 7, 0.5):
        positions = offset + np.arange(T, dtype=np.float64)
        table = fastpe.sinusoidal_table(T, dim, offset=offset, dtype=dtype)
        f64 = fastpe.sinusoidal_table(T, dim, offset=offset, dtype=np.float64)
        _check_reference(table, reference.sinusoidal_table(T, dim, offset=offset, dtype=np.float64), dtype,
                         positions, f"{half} table at {offset}")
        if half == "float16":
            assert_same_bits(table, f64.astype(dtype), f"float16 table at {offset} vs the float64 row rounded")
        base = _positive_zeros(table.astype(np.float32)).astype(dtype)
        order = rng.permutation(T)
        encoded = fastpe.sinusoidal_encode(positions[order], dim, dtype=dtype)
        added = fastpe.add_sinusoidal(np.zeros((3, T, dim), dtype), offset=offset, num_threads=2)
        single = fastpe.add_sinusoidal(np.zeros((T, dim), dtype), offset=offset)
        assert_same_bits(encoded, table[order], f"{half} encode (shuffled) at {offset}")
        for i in range(3):
            assert_same_bits(added[i], base, f"{half} batch add at {offset}, sequence {i}")
        assert_same_bits(single, base, f"{half} single add at {offset}")


# ----------------------------------------------------------- property

SETTINGS = settings(max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(
    offset=st.one_of(st.integers(-(2**20), 2**20),
                     st.floats(-(2.0**20), 2.0**20, allow_nan=False, allow_infinity=False)),
    T=st.integers(1, 700),
    dim=st.integers(1, 80),
    dtype=st.sampled_from(DTYPES),
    layout=st.sampled_from(LAYOUTS),
    split=st.integers(0, 700),
    num_threads=st.sampled_from([1, 2, 4]),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_offset_any_split(offset, T, dim, dtype, layout, split, num_threads, seed):
    """A table equals the encoding of its shuffled positions, the add into
    zeros, and its two halves asked for separately."""
    rng = np.random.default_rng(seed)
    positions, got, expected = _paths(offset, T, dim, dtype, {"layout": layout}, rng, num_threads)
    table = got["table"]
    _check_reference(table, expected, dtype, positions, "table")
    for name in ("encode", "add into zeros", "add, shuffled positions"):
        assert_same_bits(_positive_zeros(got[name]), _positive_zeros(table), name)
    split = min(split, T - 1)
    rest_positions = positions[split] + np.arange(T - split, dtype=np.float64)
    if np.array_equal(rest_positions, positions[split:]):  # fractional offsets may round otherwise
        rest = fastpe.sinusoidal_table(T - split, dim, offset=positions[split], layout=layout, dtype=dtype,
                                       num_threads=num_threads)
        assert_same_bits(rest, table[split:], f"table from row {split}")
