"""Rows shared by a batch are swept over groups of sequences (SWEEP_GROUP in
fastpe/_kernels.pyx): every batch size around the group's boundaries gets,
for each sequence, the bits that sequence gets when it is added alone, and
the reference's values within the contract. Covers the sinusoid's shared
tile (generated and from the row cache), 16-bit prepared rows, and
add_table, in place and into out=, with x's batch axis strided."""

import numpy as np
import pytest
from util import add_tolerance, assert_same_bits, assert_within, check_add_against_reference, float_dtypes, rng_for

import fastpe
from fastpe import _kernels, reference

GROUP = _kernels.SWEEP_GROUP_SEQUENCES
# Around one and two groups, and a batch of one (no sharing at all).
BATCHES = sorted({1, 2, GROUP - 1, GROUP, GROUP + 1, 2 * GROUP + 1})
T, D = 37, 70


def _dtype_id(dt):
    return np.dtype(dt).name


def _x(batch, dtype, seed):
    rng = rng_for("batch-sweep", batch, np.dtype(dtype).name, seed)
    return (rng.standard_normal((batch, T, D)) * 3).astype(dtype)


@pytest.mark.parametrize("dtype", float_dtypes(), ids=_dtype_id)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("offset", [0, 300, 5000.5])
@pytest.mark.parametrize("into_out", [False, True], ids=["in_place", "out"])
def test_add_sinusoidal_each_sequence_as_alone(dtype, batch, offset, into_out):
    x = _x(batch, dtype, 1)
    alone = [fastpe.add_sinusoidal(x[b:b + 1].copy(), offset=offset) for b in range(batch)]
    out = np.empty_like(x) if into_out else None
    result = check_add_against_reference(x if into_out else x.copy(), "batch sweep", out=out, offset=offset)
    for b in range(batch):
        assert_same_bits(result[b:b + 1], alone[b], f"sequence {b} of {batch}, {np.dtype(dtype).name}, offset={offset}")


@pytest.mark.parametrize("dtype", float_dtypes(), ids=_dtype_id)
@pytest.mark.parametrize("batch", BATCHES)
def test_add_sinusoidal_strided_batch(dtype, batch):
    """Sequences every other one of a larger buffer, in reverse order."""
    base = _x(2 * batch, dtype, 2)
    x = base[::-2]
    untouched = base[-2::-2].copy()
    alone = [fastpe.add_sinusoidal(x[b:b + 1].copy(), offset=11) for b in range(batch)]
    fastpe.add_sinusoidal(x, offset=11)
    for b in range(batch):
        assert_same_bits(x[b:b + 1], alone[b], f"strided sequence {b} of {batch}")
    assert_same_bits(base[-2::-2], untouched, "the rows between the strided sequences")


@pytest.mark.parametrize("x_dtype", float_dtypes(), ids=_dtype_id)
@pytest.mark.parametrize("table_dtype", [np.float32, np.float64], ids=_dtype_id)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("into_out", [False, True], ids=["in_place", "out"])
def test_add_table_each_sequence(x_dtype, table_dtype, batch, into_out):
    rng = rng_for("batch-sweep-table", batch, np.dtype(x_dtype).name, np.dtype(table_dtype).name)
    table = rng.standard_normal((T + 50, D)).astype(table_dtype)
    x = _x(batch, x_dtype, 3)
    offset = 13
    alone = [fastpe.add_table(x[b:b + 1].copy(), table, offset=offset) for b in range(batch)]
    out = np.empty_like(x) if into_out else None
    result = fastpe.add_table(x if into_out else x.copy(), table, offset=offset, out=out)
    msg = f"add_table, batch {batch}, x {np.dtype(x_dtype).name}, table {np.dtype(table_dtype).name}"
    for b in range(batch):
        assert_same_bits(result[b:b + 1], alone[b], f"{msg}: sequence {b}")
    rows = table[offset:offset + T].astype(np.float64)
    if np.dtype(x_dtype).name == "bfloat16":
        # ml_dtypes' float64 -> bfloat16 cast is not relied on to round once.
        assert_within(result, reference.add_table(x.copy(), table, offset=offset),
                      add_tolerance(x_dtype, 0, np.abs(x.astype(np.float64))), msg)
    else:
        # The sum of two values of at most float32's precision is exact in
        # float64, so rounding it once to x's dtype is every path's result.
        assert_same_bits(result, (x.astype(np.float64) + rows).astype(x_dtype), msg)
