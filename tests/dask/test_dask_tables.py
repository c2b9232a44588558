"""fastpe.dask's learned tables, padding-aware positions and grids against the
eager call (the same bits) and fastpe.reference, for every way of chunking, on
the local scheduler. (The same on a process cluster: test_dask_cluster.py.)"""

import numpy as np
import pytest
from optional import extra_import

da = extra_import("dask.array", "test")

from dask_checks import (assert_eager_bits, chunkings, misaligned, numpy_kwargs,  # noqa: E402
                         numpy_of, ulp_tolerance)
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from util import add_tolerance, assert_within, float_dtypes, rng_for  # noqa: E402

import fastpe  # noqa: E402
import fastpe.dask as fpd  # noqa: E402
from fastpe import reference  # noqa: E402

SHAPE = (3, 20, 8)
N_ROWS = 64


def data(shape=SHAPE, dtype=np.float64, key="x"):
    return rng_for(key, shape, np.dtype(dtype).name).uniform(-3, 3, size=shape).astype(dtype)


# --------------------------------------------------------------------------
# add_table


def table_cases(rng):
    return {
        "offset": {"offset": 5},
        "offsets-numpy": {"offset": rng.integers(0, 40, size=(3,))},
        "offsets-dask": {"offset": da.from_array(rng.integers(0, 40, size=(3,)), chunks=2)},
        "positions-numpy": {"positions": rng.integers(0, N_ROWS, size=SHAPE[:-1]), "scale": 1.5},
        "positions-T": {"positions": rng.permutation(SHAPE[1])},
        "positions-dask": {"positions": da.from_array(rng.integers(0, N_ROWS, size=SHAPE[:-1]), chunks=(1, 7))},
    }


def check_table(lazy, x, table, msg, **kwargs):
    kwargs = numpy_kwargs(kwargs)
    result = lazy.compute()
    eager = fastpe.add_table(x.copy(), table, **kwargs)
    assert_eager_bits(result, eager, msg)
    expected = reference.add_table(x.copy(), table, **kwargs)
    scaled = x.astype(np.float64) * kwargs.get("scale", 1.0)
    assert_within(result, expected, ulp_tolerance(x.dtype, expected, scaled), f"{msg} vs reference")


@pytest.mark.parametrize("case", list(table_cases(rng_for("names"))))
@pytest.mark.parametrize("chunking", list(chunkings(SHAPE)))
def test_add_table(chunking, case):
    x, table = data(), data((N_ROWS, SHAPE[-1]), key="table")
    kwargs = table_cases(rng_for("table case", case))[case]
    chunks = chunkings(SHAPE)[chunking]
    # A Dask table too, except with single-element chunks (thousands of blocks twice over).
    for table_arg in (table,) + (() if chunking == "single" else (da.from_array(table, chunks=(10, 3)),)):
        lazy = fpd.add_table(da.from_array(x, chunks=chunks), table_arg, **kwargs)
        assert lazy.chunks == da.from_array(x, chunks=chunks).chunks
        check_table(lazy, x, table, f"{case} chunks={chunking} table {type(table_arg).__name__}", **kwargs)


@pytest.mark.parametrize("table_dtype", float_dtypes(), ids=str)
@pytest.mark.parametrize("x_dtype", float_dtypes(), ids=str)
def test_add_table_dtypes(x_dtype, table_dtype):
    """Every pair of dtypes, one (native) or the other (mixed, 16-bit: a float64 sum) rule, block by block."""
    x, table = data(dtype=x_dtype), data((N_ROWS, SHAPE[-1]), dtype=table_dtype, key="table")
    positions = rng_for("dtypes").integers(0, N_ROWS, size=SHAPE[:-1])
    for chunks in [(2, 7, (3, 5)), (1, 3, 1)]:
        lazy = fpd.add_table(da.from_array(x, chunks=chunks), table, positions=positions, scale=0.75)
        check_table(lazy, x, table, f"{x_dtype}+{table_dtype} chunks={chunks}", positions=positions, scale=0.75)


def test_add_table_reads_misaligned_blocks():
    """Blocks, tables and positions at odd addresses (as a worker process may
    unpickle them) are read as they are: the result lands in a new buffer."""
    x, table = data(dtype=np.float32), data((N_ROWS, SHAPE[-1]), key="table")
    positions = rng_for("misaligned").integers(0, N_ROWS, size=SHAPE[:-1])
    lazy = fpd.add_table(da.from_array(misaligned(x), chunks=(1, 7, 8)), misaligned(table),
                         positions=da.from_array(misaligned(positions), chunks=(2, 5)))
    check_table(lazy, x, table, "misaligned inputs", positions=positions)


def test_add_table_leaves_its_input_alone():
    x, table = data(), data((N_ROWS, SHAPE[-1]), key="table")
    before = x.copy()
    fpd.add_table(da.from_array(x, chunks=(1, 5, 3)), table, offset=2, scale=2.0).compute()
    np.testing.assert_array_equal(x, before)


def test_add_table_rows_of_dask_offsets_are_checked_by_the_blocks():
    x = da.zeros(SHAPE, chunks=(1, 10, 8))
    lazy = fpd.add_table(x, np.zeros((N_ROWS, 8)), offset=da.from_array(np.array([0, 50, 1])))
    with pytest.raises(IndexError, match="must lie in"):
        lazy.compute()


def test_bart_learned_positions_with_padding():
    """BART and M2M100's learned positions: make_positions on chunked token ids,
    then rows of the table (BART's offset of 2 is padding_idx + 1)."""
    rng = rng_for("bart")
    ids = rng.integers(2, 50, size=(3, 20))
    ids[0, :6] = 1   # left padding
    ids[1, 13:] = 1  # right padding
    x, table = data(), data((40, 8), key="table")
    positions = fpd.make_positions(da.from_array(ids, chunks=(2, 6)), padding_idx=1, past_length=np.array([0, 3, 7]))
    lazy = fpd.add_table(da.from_array(x, chunks=(1, 5, 8)), table, positions=positions)
    eager_positions = fastpe.make_positions(ids, padding_idx=1, past_length=np.array([0, 3, 7]))
    check_table(lazy, x, table, "BART", positions=eager_positions)


# --------------------------------------------------------------------------
# make_positions: the count runs across chunks


@pytest.mark.parametrize("chunks", [-1, (1, 1), (2, (7, 1, 12)), (3, 4)], ids=str)
@pytest.mark.parametrize("past", ["zero", "numpy", "dask"])
def test_make_positions(past, chunks):
    rng = rng_for("make_positions", past)
    ids = rng.integers(0, 4, size=(3, 20))  # padding_idx 0: many pads, anywhere
    ids[0, :10] = 0
    ids[1, 5:] = 0
    past_length = {"zero": 0, "numpy": np.array([0, 5, 100]),
                   "dask": da.from_array(np.array([7, 0, 2]), chunks=1)}[past]
    lazy = fpd.make_positions(da.from_array(ids, chunks=chunks), 0, past_length=past_length)
    assert lazy.dtype == np.int64 and lazy.chunks == da.from_array(ids, chunks=chunks).chunks
    result = lazy.compute()
    past_np = numpy_of(past_length)
    np.testing.assert_array_equal(result, fastpe.make_positions(ids, 0, past_length=past_np))
    # And from the definition: real tokens count up from padding_idx + 1 + past_length.
    for b in range(3):
        count = int(np.broadcast_to(past_np, (3,))[b])
        for t in range(20):
            count += ids[b, t] != 0
            assert result[b, t] == (count if ids[b, t] else 0), f"sequence {b}, token {t}"


@st.composite
def padded_ids(draw):
    T = draw(st.integers(1, 25))
    B = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ids = rng.integers(2, 9, size=(B, T))
    for b in range(B):
        n_pad = draw(st.integers(0, T))
        if draw(st.booleans()):
            ids[b, :n_pad] = 1
        else:
            ids[b, T - n_pad:] = 1
    cuts = sorted(set(draw(st.lists(st.integers(1, T - 1), max_size=4)))) if T > 1 else []
    t_chunks = tuple(np.diff([0] + cuts + [T]).tolist())
    return ids, (draw(st.integers(1, B)), t_chunks), draw(st.integers(0, 1000))


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(padded_ids())
def test_padding_positions_across_any_chunks(case):
    """Left or right padding, any chunks of T, any past length: the eager
    positions, and add_sinusoidal's fairseq preset then gives the eager bits."""
    ids, chunks, past = case
    positions = fpd.make_positions(da.from_array(ids, chunks=chunks), padding_idx=1, past_length=past)
    eager_positions = fastpe.make_positions(ids, padding_idx=1, past_length=past)
    np.testing.assert_array_equal(positions.compute(scheduler="sync"), eager_positions)
    x = data(ids.shape + (8,), dtype=np.float32)
    lazy = fpd.add_sinusoidal(da.from_array(x, chunks=chunks + (8,)), positions=positions, preset="fairseq")
    assert_eager_bits(lazy.compute(scheduler="sync"),
                      fastpe.add_sinusoidal(x.copy(), positions=eager_positions, preset="fairseq"),
                      f"fairseq chunks={chunks}")


# --------------------------------------------------------------------------
# Grids


GRID_CASES = {
    "mae": (3, 5, {"layout": "mae"}),
    "timm-cls": (4, 6, {"layout": "timm", "cls_token": True, "scale": 2.0}),
    "big_vision": (3, 3, {"layout": "big_vision", "base": 500.0}),
}


@pytest.mark.parametrize("dtype", float_dtypes(), ids=str)
@pytest.mark.parametrize("case", list(GRID_CASES))
def test_add_sincos_2d(case, dtype):
    grid_h, grid_w, kwargs = GRID_CASES[case]
    shape = (2, grid_h * grid_w + kwargs.get("cls_token", False), 8)
    x = data(shape, dtype=dtype)
    expected = reference.add_sincos_2d(x.copy(), grid_h, grid_w, **kwargs)
    eager = fastpe.add_sincos_2d(x.copy(), grid_h, grid_w, **kwargs)
    xs = np.abs(x.astype(np.float64) * kwargs.get("scale", 1.0))
    for chunking, chunks in chunkings(shape).items():
        result = fpd.add_sincos_2d(da.from_array(x, chunks=chunks), grid_h, grid_w, **kwargs).compute()
        assert_eager_bits(result, eager, f"{case} chunks={chunking}")
        assert_within(result, expected, add_tolerance(dtype, max(grid_h, grid_w), xs),
                      f"{case} {chunking} vs reference")


@pytest.mark.parametrize("dtype", float_dtypes(), ids=str)
@pytest.mark.parametrize("grid", [(2, 3, 2), (5,), (3, 4)], ids=str)
def test_add_sinusoidal_nd(grid, dtype):
    n_tokens = int(np.prod(grid))
    shape = (2, n_tokens, 4 * len(grid) + 1)
    x = data(shape, dtype=dtype)
    kwargs = {"min_timescale": 0.5, "max_timescale": 300.0, "scale": 0.5}
    expected = reference.add_sinusoidal_nd(x.copy(), grid, **kwargs)
    eager = fastpe.add_sinusoidal_nd(x.copy(), grid, **kwargs)
    for chunking, chunks in chunkings(shape).items():
        result = fpd.add_sinusoidal_nd(da.from_array(x, chunks=chunks), grid, **kwargs).compute()
        assert_eager_bits(result, eager, f"{grid} chunks={chunking}")
        assert_within(result, expected, add_tolerance(dtype, max(grid), np.abs(x.astype(np.float64) * 0.5)),
                      f"{grid} {chunking} vs reference")


def test_grids_on_two_dimensional_and_empty_input():
    x = data((12, 8))
    assert_eager_bits(fpd.add_sincos_2d(da.from_array(x, chunks=(5, 3)), 3, 4).compute(),
                      fastpe.add_sincos_2d(x.copy(), 3, 4), "2-D x")
    empty = fpd.add_sinusoidal_nd(da.zeros((0, 6, 8)), (2, 3))
    assert empty.shape == (0, 6, 8) and empty.compute().shape == (0, 6, 8)
    assert fpd.add_table(da.zeros((2, 0, 4)), np.zeros((3, 4))).compute().shape == (2, 0, 4)


def test_blocks_read_the_table_without_copying_it(monkeypatch):
    """Regression: every block got its own concatenated copy of the table (all
    its rows), a table's worth of memory and copying per task; every block now
    reads the one column block of the table that the graph holds."""
    from fastpe import _sinusoid

    x, table = data(), data((N_ROWS, SHAPE[-1]), key="table")
    addresses = []
    eager_add_table = _sinusoid.add_table

    def spy(block, table_arg, **kwargs):
        if np.size(block):
            addresses.append(table_arg.__array_interface__["data"][0])
        return eager_add_table(block, table_arg, **kwargs)

    monkeypatch.setattr(_sinusoid, "add_table", spy)
    result = fpd.add_table(da.from_array(x, chunks=(1, 5, 8)), table, offset=3).compute(scheduler="threads")
    monkeypatch.undo()
    assert len(addresses) == 12 and len(set(addresses)) == 1, addresses
    assert_eager_bits(result, fastpe.add_table(x.copy(), table, offset=3), "table read in place")
