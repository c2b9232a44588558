"""add_table (learned position tables): kernel vs the NumPy reference and an
independent gather, over dtypes (x and table may differ), memory layouts,
offsets, explicit positions, scale and out=; bad input leaves everything as
it was."""

import numpy as np
import pytest
from util import (
    DTYPES,
    array_variants,
    assert_unchanged,
    assert_within,
    describe,
    out_variants,
    rng_for,
    snapshot,
)

import fastpe
from fastpe import reference


def _tolerance(x_dtype, table_dtype, expected):
    """Both sides form x*scale + row in the wider dtype and round once to x's;
    the kernel may fuse the multiply-add (one rounding fewer). Two ulps of the
    wider type on |result| + 1, plus one ulp of x's dtype for the final
    rounding landing on the other side of a boundary."""
    wider = np.result_type(x_dtype, table_dtype)
    mag = 1.0 + np.abs(expected.astype(np.float64))
    return 2 * np.finfo(wider).eps * mag + np.finfo(x_dtype).eps * mag


def _independent(x, table, positions, scale):
    """x * scale + table[positions] with an explicit Python loop over rows, in float64."""
    x64 = x.astype(np.float64)
    out = np.empty_like(x64)
    pos = np.broadcast_to(positions, x.shape[:-1])
    for idx in np.ndindex(*x.shape[:-1]):
        out[idx] = x64[idx] * (1.0 if scale is None else scale) + table[pos[idx]].astype(np.float64)
    return out


TABLE_CASES = [
    # (x shape, call kwargs builder)
    ((17, 5), lambda rng, s: {"offset": 3}),
    ((3, 40, 8), lambda rng, s: {"offset": np.array([0, 7, 7])}),
    ((2, 3, 9, 6), lambda rng, s: {"offset": 2, "scale": 2.5}),
    ((4, 33, 7), lambda rng, s: {"positions": rng.integers(0, 120, s[:-1])}),
    ((4, 33, 7), lambda rng, s: {"positions": rng.integers(0, 120, s[-2]), "scale": -1.25}),
    ((2, 600, 64), lambda rng, s: {"offset": np.array([1, 50])}),          # threaded path
    ((3, 700, 32), lambda rng, s: {"positions": rng.integers(0, 120, s[:-1])}),
]


def _implicit_positions(shape, kw):
    if "positions" in kw:
        return np.asarray(kw["positions"])
    off = np.asarray(kw.get("offset", 0))
    off = off.reshape(off.shape + (1,) * 0)
    return np.asarray(off)[..., None] + np.arange(shape[-2]) if off.ndim else off + np.arange(shape[-2])


@pytest.mark.parametrize("x_dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("table_dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", range(len(TABLE_CASES)))
def test_add_table_matches_reference(x_dtype, table_dtype, case):
    shape, make_kw = TABLE_CASES[case]
    rng = rng_for("table", case, np.dtype(x_dtype).name, np.dtype(table_dtype).name)
    kw = make_kw(rng, shape)
    table = rng.standard_normal((720, shape[-1])).astype(table_dtype)
    for label, x in array_variants(shape, x_dtype, rng):
        x0 = x.copy()
        expected = reference.add_table(x0.copy(), table, **kw)
        got = fastpe.add_table(x, table, **kw)
        assert got is x
        assert_within(got, expected, _tolerance(x_dtype, table_dtype, expected),
                      f"add_table {label} {describe(x)} table {table.dtype} {kw}")


@pytest.mark.parametrize("x_dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_reference_against_independent_gather(x_dtype):
    rng = rng_for("table-independent", np.dtype(x_dtype).name)
    for shape, make_kw in TABLE_CASES[:5]:
        kw = make_kw(rng, shape)
        table = rng.standard_normal((720, shape[-1]))
        x = rng.standard_normal(shape).astype(x_dtype)
        positions = _implicit_positions(shape, kw)
        expected = _independent(x, table, positions, kw.get("scale"))
        got = reference.add_table(x.copy(), table, **kw)
        assert_within(got, expected, _tolerance(x_dtype, np.float64, expected), f"reference {shape} {kw}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_out_and_strided_table(dtype):
    rng = rng_for("table-out", np.dtype(dtype).name)
    shape = (3, 50, 12)
    base_table = rng.standard_normal((200, 24)).astype(dtype)
    for table in (base_table[:, ::2], base_table[::-2, 3:15], np.asfortranarray(base_table[:, :12])):
        x = rng.standard_normal(shape).astype(dtype)
        x0 = x.copy()
        table0 = table.copy()
        for label, out in out_variants(shape, dtype, rng):
            got = fastpe.add_table(x, table, offset=np.array([0, 10, 20]), out=out)
            expected = reference.add_table(x0.copy(), table0, offset=np.array([0, 10, 20]))
            assert got is out
            assert_within(got, expected, _tolerance(dtype, dtype, expected), f"out {label} table {describe(table)}")
            assert np.array_equal(x, x0), "x changed although out= was given"
            assert np.array_equal(table, table0), "the table changed"


def test_out_partially_overlapping_x():
    rng = rng_for("table-overlap")
    buf = rng.standard_normal((41, 8))
    x, out = buf[:-1], buf[1:]
    table = rng.standard_normal((64, 8))
    expected = reference.add_table(x.copy(), table, offset=4)
    got = fastpe.add_table(x, table, offset=4, out=out)
    assert_within(got, expected, _tolerance(np.float64, np.float64, expected), "overlapping out")


def test_empty_inputs_are_noops():
    table = np.ones((4, 3))
    for shape in [(0, 3), (2, 0, 3), (0, 5, 3)]:
        x = np.zeros(shape)
        assert fastpe.add_table(x, table) is x
    x = np.zeros((2, 0))
    assert fastpe.add_table(x, np.ones((4, 0))) is x


def test_bart_offset_of_two():
    """BART's learned positions are rows offset + 2 (its +2 is expressed through offset)."""
    rng = rng_for("bart")
    table = rng.standard_normal((1026, 16)).astype(np.float32)
    x = rng.standard_normal((2, 10, 16)).astype(np.float32)
    expected = x + table[2:12]
    got = fastpe.add_table(x.copy(), table, offset=2)
    assert_within(got, expected, _tolerance(np.float32, np.float32, expected), "BART offset")


BAD_TABLE_CALLS = [
    ("index-high", IndexError, "offset", lambda x, t: fastpe.add_table(x, t, offset=t.shape[0] - x.shape[-2] + 1)),
    ("index-negative-offset", IndexError, "offset", lambda x, t: fastpe.add_table(x, t, offset=-1)),
    ("index-per-sequence", IndexError, "offset", lambda x, t: fastpe.add_table(x, t, offset=np.array([0, 100]))),
    ("index-positions", IndexError, "positions", lambda x, t: fastpe.add_table(x, t, positions=np.full(x.shape[:-1], t.shape[0]))),
    ("index-negative-positions", IndexError, "positions", lambda x, t: fastpe.add_table(x, t, positions=-np.ones(x.shape[-2], dtype=int))),
    ("float-offset", TypeError, "offset", lambda x, t: fastpe.add_table(x, t, offset=1.0)),
    ("float-positions", TypeError, "positions", lambda x, t: fastpe.add_table(x, t, positions=np.zeros(x.shape[-2]))),
    ("table-width", ValueError, "table", lambda x, t: fastpe.add_table(x, t[:, :-1])),
    ("table-1d", ValueError, "table", lambda x, t: fastpe.add_table(x, t[0])),
    ("table-int", TypeError, "table", lambda x, t: fastpe.add_table(x, t.astype(np.int64))),
    ("table-longdouble", TypeError, "table", lambda x, t: fastpe.add_table(x, t.astype(np.longdouble))),
    ("positions-and-offset", ValueError, "offset", lambda x, t: fastpe.add_table(x, t, offset=1, positions=np.zeros(x.shape[-2], dtype=int))),
    ("positions-shape", ValueError, "positions", lambda x, t: fastpe.add_table(x, t, positions=np.zeros((3, 2), dtype=int))),
    ("scale-nan", ValueError, "scale", lambda x, t: fastpe.add_table(x, t, scale=float("nan"))),
    ("x-readonly", ValueError, "x", lambda x, t: fastpe.add_table(np.broadcast_to(x, x.shape), t)),
    ("out-shape", ValueError, "out", lambda x, t: fastpe.add_table(x, t, out=np.zeros((2, 3)))),
    ("num-threads", ValueError, "num_threads", lambda x, t: fastpe.add_table(x, t, num_threads=0)),
]


@pytest.mark.parametrize("impl", ["fastpe", "reference"])
@pytest.mark.parametrize("case", BAD_TABLE_CALLS, ids=[c[0] for c in BAD_TABLE_CALLS])
def test_bad_table_input_raises_and_writes_nothing(impl, case, monkeypatch):
    _, exc, name, call = case
    if impl == "reference":
        monkeypatch.setattr(fastpe, "add_table", reference.add_table)
    rng = rng_for("table-bad", case[0])
    x = rng.standard_normal((2, 6, 5))
    table = rng.standard_normal((8, 5))
    snaps = snapshot(x, table)
    with pytest.raises(exc, match=name):
        call(x, table)
    assert_unchanged(snaps, f"{impl} {case[0]}")
