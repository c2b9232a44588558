"""fastpe.dask.add_alibi and add_relative_bias against the eager call (the same
bits) and fastpe.reference, with scores chunked along batch, heads, queries and
keys, on the local scheduler. (The same on a process cluster: test_dask_cluster.py.)"""

import numpy as np
import pytest
from optional import extra_import

da = extra_import("dask.array", "test")

from dask_checks import (assert_eager_bits, chunkings, misaligned, numpy_kwargs,  # noqa: E402
                         ulp_tolerance)
from util import assert_within, float_dtypes, rng_for  # noqa: E402

import fastpe  # noqa: E402
import fastpe.dask as fpd  # noqa: E402
from fastpe import reference  # noqa: E402

SHAPE = (3, 2, 6, 7)   # (batch, heads, queries, keys)
T5 = {"bidirectional": True, "num_buckets": 16, "max_distance": 10}


def data(shape=SHAPE, dtype=np.float32, key="scores"):
    return rng_for(key, shape, np.dtype(dtype).name).uniform(-3, 3, size=shape).astype(dtype)


def alibi_cases(rng):
    return {
        "default": {},
        "offset": {"offset": 7},
        "offsets-numpy": {"offset": np.array([0, 30, -4])},
        "offsets-dask": {"offset": da.from_array(np.array([2, 0, 9]), chunks=2)},
        "slopes-dask": {"slopes": da.from_array(rng.uniform(0, 1, 2), chunks=1), "offset": 1},
        "max_bias": {"max_bias": 4.0},
        "key-positions": {"key_positions": rng.integers(0, 50, size=(3, 7))},
        "key-positions-dask": {"key_positions": da.from_array(rng.uniform(0, 50, size=(7,)), chunks=4)},
    }


def t5_cases(rng):
    table = rng.standard_normal((16, 2))
    return {
        "bidirectional": {**T5, "bias_table": table},
        "causal": {"bidirectional": False, "num_buckets": 12, "max_distance": 20, "bias_table": table[:12],
                   "offset": np.array([0, 12, 3])},
        "dask": {**T5, "bias_table": da.from_array(table, chunks=(5, 1)),
                 "offset": da.from_array(np.array([4, 0, 1]), chunks=1)},
    }


def check(lazy, eager_fn, ref_fn, scores, msg, **kwargs):
    kwargs = numpy_kwargs(kwargs)
    table = () if "bias_table" not in kwargs else (kwargs.pop("bias_table"),)
    result = lazy.compute()
    eager = eager_fn(scores.copy(), *table, **kwargs)
    assert_eager_bits(result, eager, msg)
    expected = ref_fn(scores.copy(), *table, **kwargs)
    assert_within(result, expected, ulp_tolerance(scores.dtype, expected), f"{msg} vs reference")


def lazy_call(fn, scores, kwargs):
    kwargs = dict(kwargs)
    table = () if "bias_table" not in kwargs else (kwargs.pop("bias_table"),)
    return fn(scores, *table, **kwargs)


@pytest.mark.parametrize("chunking", list(chunkings(SHAPE)))
@pytest.mark.parametrize("case", list(alibi_cases(rng_for("names"))))
def test_alibi(case, chunking):
    scores = data()
    kwargs = alibi_cases(rng_for("alibi", case))[case]
    lazy = fpd.add_alibi(da.from_array(scores, chunks=chunkings(SHAPE)[chunking]), **kwargs)
    assert lazy.chunks == da.from_array(scores, chunks=chunkings(SHAPE)[chunking]).chunks
    check(lazy, fastpe.add_alibi, reference.add_alibi, scores, f"{case} chunks={chunking}", **kwargs)


@pytest.mark.parametrize("chunking", list(chunkings(SHAPE)))
@pytest.mark.parametrize("case", list(t5_cases(rng_for("names"))))
def test_relative_bias(case, chunking):
    scores = data()
    kwargs = t5_cases(rng_for("t5", case))[case]
    lazy = lazy_call(fpd.add_relative_bias, da.from_array(scores, chunks=chunkings(SHAPE)[chunking]), kwargs)
    check(lazy, fastpe.add_relative_bias, reference.add_relative_bias, scores, f"{case} chunks={chunking}", **kwargs)


@pytest.mark.parametrize("dtype", float_dtypes(), ids=str)
def test_dtypes(dtype):
    """16-bit scores take the float64 sum rounded once, block by block as on the whole."""
    scores = data(dtype=dtype)
    table = rng_for("t5 dtypes").standard_normal((16, 2))
    chunks = (2, 1, 4, 5)
    check(fpd.add_alibi(da.from_array(scores, chunks=chunks), offset=np.array([1, 2, 3])),
          fastpe.add_alibi, reference.add_alibi, scores, f"alibi {dtype}", offset=np.array([1, 2, 3]))
    check(fpd.add_relative_bias(da.from_array(scores, chunks=chunks), table, **T5),
          fastpe.add_relative_bias, reference.add_relative_bias, scores, f"t5 {dtype}", bias_table=table, **T5)


def test_distances_near_the_position_limit():
    """Offsets at the largest the eager call accepts: each block's own offset
    (offset + i0 - j0) stays within its own limit, so every block computes."""
    scores = data(dtype=np.float64)
    limit = 2**52 - SHAPE[2] - SHAPE[3]
    offset = np.array([limit, -limit, 0])
    check(fpd.add_alibi(da.from_array(scores, chunks=(1, 2, 2, 3)), offset=offset, slopes=np.full(2, 2.0**-40)),
          fastpe.add_alibi, reference.add_alibi, scores, "near the limit", offset=offset, slopes=np.full(2, 2.0**-40))


def test_misaligned_blocks_and_tables():
    scores = data(dtype=np.float64)
    table = rng_for("misaligned table").standard_normal((16, 2))
    lazy = fpd.add_relative_bias(da.from_array(misaligned(scores), chunks=(1, 1, 5, 6)), misaligned(table), **T5,
                                 offset=misaligned(np.array([3, 0, 8])))
    check(lazy, fastpe.add_relative_bias, reference.add_relative_bias, scores, "misaligned", bias_table=table,
          offset=np.array([3, 0, 8]), **T5)


def test_inputs_left_alone_and_empty_scores():
    scores = data()
    before = scores.copy()
    fpd.add_alibi(da.from_array(scores, chunks=(1, 1, 3, 4)), offset=2).compute()
    np.testing.assert_array_equal(scores, before)
    for shape in [(0, 2, 3, 3), (2, 0, 3, 3), (2, 2, 0, 3), (2, 2, 3, 0)]:
        assert fpd.add_alibi(da.zeros(shape)).compute().shape == shape
        assert fpd.add_relative_bias(da.zeros(shape), np.zeros((16, shape[1])), **T5).compute().shape == shape
