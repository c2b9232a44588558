"""add_table's compiled front door (fastpe/_frontdoor_table.pxi).

Every common call (ndarrays, an integer offset within the table, no
positions or scale, out absent, x itself or apart from x) must take it and
give the general path's bits, and match the NumPy reference; every other
call must take the general path and return or raise exactly what it does
there, leaving the arrays as they were on an error.
fastpe._frontdoor.table_calls() tells which path ran; the general path alone
is run by switching the front door off in fastpe._frontdoor.
"""

import numpy as np
import pytest
from util import array_variants, assert_same_bits, assert_within, outcome, random_values, rng_for
import util

import fastpe
from fastpe import _frontdoor, reference


def general_path_only():
    return util.general_path_only(_frontdoor, "add_table")


def _general(x, table, **kwargs):
    with general_path_only():
        return fastpe.add_table(x, table, **kwargs)


X_DTYPES = [np.float32, np.float64, np.float16]
OFFSETS = [0, 3, np.int64(5), np.uint8(2), np.array(4), np.array(1, np.int16), np.array(6, ">i4")]


@pytest.mark.parametrize("table_dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("x_dtype", X_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", [(1, 1, 8), (2, 5, 7), (3, 2, 4, 16), (9, 3)], ids=str)
def test_common_calls_take_the_front_door_with_the_general_bits(shape, x_dtype, table_dtype):
    rng = rng_for("table fast path", shape, np.dtype(x_dtype).name, np.dtype(table_dtype).name)
    table = random_values((shape[-2] + 8, shape[-1]), table_dtype, rng, 2.0)
    for kind, x in array_variants(shape, x_dtype, rng):
        for offset in OFFSETS:
            msg = f"{shape} x {np.dtype(x_dtype).name} {kind}, table {np.dtype(table_dtype).name}, offset={offset!r}"
            fast, general = x.copy(), x.copy()
            before = _frontdoor.table_calls()
            assert fastpe.add_table(fast, table, offset=offset) is fast
            assert _frontdoor.table_calls() == before + 1, f"{msg}: the common call did not take the front door"
            _general(general, table, offset=offset)
            assert_same_bits(fast, general, msg)
            expected = reference.add_table(x.astype(np.float64), table.astype(np.float64), offset=int(offset))
            ulp = np.spacing(np.abs(expected).astype(x_dtype)).astype(np.float64)
            assert_within(fast.astype(np.float64), expected, ulp, msg)  # within one ulp: rounded once or twice

            out = np.full_like(x, np.nan)
            read_only = x.copy()
            read_only.flags.writeable = False
            before = _frontdoor.table_calls()
            assert fastpe.add_table(read_only, table, offset=offset, out=out) is out
            assert _frontdoor.table_calls() == before + 1, f"{msg}: out= apart did not take the front door"
            assert_same_bits(read_only, x, f"{msg}: x was written")
            assert_same_bits(out, general, f"{msg}: out=")


@pytest.mark.parametrize("x_dtype", X_DTYPES, ids=lambda d: np.dtype(d).name)
def test_a_scale_keeps_the_front_door_with_the_general_bits(x_dtype):
    """x * scale + table[p] with a finite int or float scale (sqrt(D) in BERT-like models), in place and
    into out."""
    rng = rng_for("table fast path scale", np.dtype(x_dtype).name)
    for table_dtype in (np.float32, np.float64):
        table = random_values((20, 24), table_dtype, rng, 2.0)
        x = random_values((2, 7, 24), x_dtype, rng, 3.0)
        for scale in (1.0, 2.0, 4.898979485566356, 0.1, -3, np.float32(0.7), 3, np.int64(2), 1e-30, -0.0):
            msg = f"x {np.dtype(x_dtype).name} table {np.dtype(table_dtype).name} scale={scale!r}"
            fast, general = x.copy(), x.copy()
            before = _frontdoor.table_calls()
            fastpe.add_table(fast, table, offset=5, scale=scale)
            out = np.zeros_like(x)
            fastpe.add_table(x, table, offset=5, scale=scale, out=out)
            assert _frontdoor.table_calls() == before + 2, msg
            _general(general, table, offset=5, scale=scale)
            assert_same_bits(fast, general, msg)
            assert_same_bits(out, general, f"{msg} out=")


def test_table_layouts_it_reads_as_they_are():
    """A row-strided, reversed, read-only or broadcast table is read where it is, with the general bits."""
    rng = rng_for("table layouts")
    x = random_values((2, 4, 8), np.float32, rng, 2.0)
    base = random_values((20, 8), np.float32, rng, 2.0)
    read_only = base.copy()
    read_only.flags.writeable = False
    tables = {"every other row": base[::2], "reversed": base[::-1], "read-only": read_only,
              "broadcast row": np.broadcast_to(base[0], (6, 8)), "F-order": np.asfortranarray(base)[:, :]}
    for name, table in tables.items():
        if table.strides[1] != table.itemsize:
            continue
        fast, general = x.copy(), x.copy()
        before = _frontdoor.table_calls()
        fastpe.add_table(fast, table, offset=2)
        assert _frontdoor.table_calls() == before + 1, name
        _general(general, table, offset=2)
        assert_same_bits(fast, general, name)


def check_same_outcome(make_x, make_table, expected_calls, make_out=None, **kwargs):
    """add_table(make_x(), make_table(), **kwargs) with and without the front door: the same result or the
    same error, and nothing written by an error."""
    outcomes, written = [], []
    before = _frontdoor.table_calls()
    for general in (False, True):
        x, table = make_x(), make_table()
        out = make_out(x) if make_out else None
        extra = {} if make_out is None else {"out": out}
        if general:
            with general_path_only():
                got = outcome(lambda: fastpe.add_table(x, table, **kwargs, **extra))
        else:
            got = outcome(lambda: fastpe.add_table(x, table, **kwargs, **extra))
            taken = _frontdoor.table_calls() - before
        outcomes.append(got)
        written.append(np.array(x if out is None else out, copy=True))
    msg = f"{kwargs!r}"
    assert taken == expected_calls, f"{msg}: front door calls {taken}"
    assert outcomes[0][0] == outcomes[1][0], f"{msg}: {outcomes[0]} vs {outcomes[1]}"
    if outcomes[0][0] == "error":
        assert outcomes[0][1:] == outcomes[1][1:], msg
        x = make_x()
        assert_same_bits(written[0], x if make_out is None else make_out(x), f"{msg}: a refused call wrote")
    else:
        assert_same_bits(written[0], written[1], msg)


X = random_values((2, 5, 8), np.float32, rng_for("uncommon table"), 3.0)
TABLE = random_values((9, 8), np.float32, rng_for("uncommon table rows"), 3.0)

UNCOMMON = {
    "positions": dict(positions=np.arange(5)),
    "bool scale": dict(scale=True),
    "nan scale": dict(scale=float("nan")),
    "0-d scale": dict(scale=np.array(2.0)),
    "huge int scale": dict(scale=2**2000),
    "offset per sequence": dict(offset=np.array([0, 1])),
    "offset beyond the rows": dict(offset=5),
    "negative offset": dict(offset=-1),
    "float offset": dict(offset=2.0),
    "bool offset": dict(offset=True),
    "0-d bool offset": dict(offset=np.array(True)),
    "0-d float offset": dict(offset=np.array(2.0)),
    "huge offset": dict(offset=2**70),
    "uint64 offset": dict(offset=np.uint64(2**63)),
    "string offset": dict(offset="1"),
    "num_threads 0": dict(num_threads=0),
    "num_threads float": dict(num_threads=2.0),
}


@pytest.mark.parametrize("name", sorted(UNCOMMON))
def test_every_other_argument_takes_the_general_path(name):
    check_same_outcome(X.copy, TABLE.copy, 0, **UNCOMMON[name])


UNCOMMON_TABLES = {
    "float16": lambda: TABLE.astype(np.float16),
    "big-endian": lambda: TABLE.astype(">f4"),
    "list": lambda: TABLE.tolist(),
    "1-d": lambda: TABLE[0],
    "3-d": lambda: TABLE[None],
    "other width": lambda: TABLE[:, :7].copy(),
    "column-strided": lambda: np.asfortranarray(TABLE),
    "int": lambda: TABLE.astype(np.int32),
    "subclass": lambda: TABLE.view(np.matrix),
}


@pytest.mark.parametrize("name", sorted(UNCOMMON_TABLES))
def test_every_other_table_takes_the_general_path(name):
    check_same_outcome(X.copy, UNCOMMON_TABLES[name], 0, offset=1)


def test_a_table_sharing_memory_with_the_written_array_takes_the_general_path():
    """x a view of the table written in place, or out overlapping the table: the general path reads the
    table from a copy."""
    def fused():
        buffer = np.arange(14 * 8, dtype=np.float32).reshape(14, 8)
        return buffer

    holder = {}

    def make_x():
        holder["buffer"] = fused()
        return holder["buffer"][None, 9:14]

    def make_table():
        return holder["buffer"][:12]  # rows 9 .. 11 are x's first rows

    check_same_outcome(make_x, make_table, 0, offset=2)
    check_same_outcome(make_x, make_table, 0, make_out=lambda x: holder["buffer"][None, 4:9], offset=2)
    # x sharing the table's memory is only read when out is elsewhere: the front door's
    check_same_outcome(make_x, make_table, 1, make_out=lambda x: np.zeros((1, 5, 8), np.float32), offset=2)
    check_same_outcome(make_x, lambda: holder["buffer"][:9], 1, offset=2)  # apart: the front door's


UNCOMMON_OUTS = {
    "other dtype": lambda x: np.zeros(x.shape, np.float64),
    "other shape": lambda x: np.zeros((2, 5, 9), np.float32),
    "overlapping x": lambda x: x[::-1],
    "read-only": lambda x: np.lib.stride_tricks.as_strided(np.zeros_like(x), writeable=False),
}


@pytest.mark.parametrize("name", sorted(UNCOMMON_OUTS))
def test_every_other_out_takes_the_general_path(name):
    check_same_outcome(X.copy, TABLE.copy, 0, make_out=UNCOMMON_OUTS[name], offset=1)
