"""fastpe.dask.apply_rotary against the eager call (the same bits) and
fastpe.reference, chunked along every axis, with every scaling, on the local
scheduler. (The same on a process cluster: test_dask_cluster.py.)"""

import warnings

import numpy as np
import pytest
from optional import extra_import

da = extra_import("dask.array", "test")

from dask_checks import (assert_eager_bits, chunkings, misaligned, numpy_kwargs,  # noqa: E402
                         ulp_tolerance)
from rope_parameters import LLAMA3, longrope_parameters  # noqa: E402
from rotary_cases import rotary_tolerance  # noqa: E402
from util import assert_within, float_dtypes, rng_for  # noqa: E402

import fastpe  # noqa: E402
import fastpe.dask as fpd  # noqa: E402
from fastpe import reference  # noqa: E402

Q_SHAPE = (2, 4, 24, 16)   # (batch, heads, T, head width)
K_SHAPE = (2, 2, 24, 16)   # fewer key heads

# The scalings whose frequencies follow the call's largest position (dynamic,
# longrope) are set to switch inside the sequence: a block that saw only its
# own positions would take other frequencies.
SCALINGS = {
    "none": None,
    "linear": {"rope_type": "linear", "factor": 4.0},
    "dynamic": {"rope_type": "dynamic", "factor": 2.0, "max_position_embeddings": 16},
    "longrope": longrope_parameters(8, 1, original_max_position_embeddings=16, max_position_embeddings=64),
    "yarn": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 8},
    "llama3": {**LLAMA3, "original_max_position_embeddings": 8},
}


def data(shape, dtype=np.float32, key="x"):
    return rng_for(key, shape, np.dtype(dtype).name).standard_normal(shape).astype(dtype)


def position_cases(rng):
    return {
        "offset": {"offset": 3},
        "fractional": {"offset": 2.75},
        "inexact": {"offset": np.array([0.1, 123456.789])},  # offset + t rounds: formed as the eager call forms it
        "offsets-numpy": {"offset": np.array([0, 11])},
        "offsets-dask": {"offset": da.from_array(np.array([5, 1]), chunks=1)},
        "positions-T": {"positions": rng.permutation(24) * 2 - 7},
        "positions-BT": {"positions": rng.integers(0, 40, size=(2, 24))},
        "positions-dask": {"positions": da.from_array(rng.uniform(0, 40, size=(2, 1, 24)), chunks=(1, 1, 5))},
    }


def tolerance(dtype, expected):
    if np.dtype(dtype).itemsize == 2:
        return ulp_tolerance(dtype, expected)
    return rotary_tolerance(dtype, expected)


def check(lazies, arrays, msg, **kwargs):
    """Computed lazies against the eager call and the reference on copies of arrays."""
    kwargs = numpy_kwargs(kwargs)
    eager = fastpe.apply_rotary(*[a.copy() for a in arrays], **kwargs)
    expected = reference.apply_rotary(*[a.copy() for a in arrays], **kwargs)
    if len(arrays) == 1:
        lazies, eager, expected = (lazies,), (eager,), (expected,)
    for i, (lazy, a) in enumerate(zip(lazies, arrays)):
        result = lazy.compute()
        assert result.shape == a.shape and result.dtype == a.dtype
        assert_eager_bits(result, eager[i], f"{msg} array {i}")
        assert_within(result, expected[i], tolerance(a.dtype, expected[i]), f"{msg} array {i} vs reference")


@pytest.mark.parametrize("case", list(position_cases(rng_for("names"))))
@pytest.mark.parametrize("scaling", list(SCALINGS))
def test_q_and_k(scaling, case):
    q, k = data(Q_SHAPE), data(K_SHAPE, key="k")
    kwargs = {"scaling": SCALINGS[scaling], **position_cases(rng_for("rotary", case))[case]}
    lazy_q, lazy_k = fpd.apply_rotary(da.from_array(q, chunks=(1, 3, 7, 16)), da.from_array(k, chunks=(2, 1, 10, 16)),
                                      **kwargs)
    check((lazy_q, lazy_k), (q, k), f"{scaling} {case}", **kwargs)


SMALL = (2, 3, 9, 8)


@pytest.mark.parametrize("chunking", list(chunkings(SMALL)))
@pytest.mark.parametrize("layout", ["half", "interleaved"])
def test_every_chunking(layout, chunking):
    """Batch, heads, sequence and channels cut evenly, unevenly and into single
    elements: the channels are merged for the rotation and cut again."""
    q = data(SMALL, np.float64)
    chunks = chunkings(SMALL)[chunking]
    for kwargs in ({"offset": np.array([2, 9])}, {"positions": np.arange(9) * 3, "rotary_dim": 4},
                   {"scaling": SCALINGS["dynamic"], "offset": 1}):
        lazy = fpd.apply_rotary(da.from_array(q, chunks=chunks), layout=layout, **kwargs)
        assert lazy.chunks == da.from_array(q, chunks=chunks).chunks
        check(lazy, (q,), f"{layout} chunks={chunking} {sorted(kwargs)}", layout=layout, **kwargs)


@pytest.mark.parametrize("dtype", float_dtypes(), ids=str)
def test_dtypes(dtype):
    q, k = data(Q_SHAPE, dtype), data(K_SHAPE, dtype, key="k")
    for kwargs in ({"offset": np.array([4, 0])}, {"scaling": SCALINGS["yarn"], "positions": np.arange(24) + 100}):
        lazies = fpd.apply_rotary(da.from_array(q, chunks=(1, 2, 5, 16)), da.from_array(k, chunks=(2, 1, 24, 8)),
                                  **kwargs)
        check(lazies, (q, k), f"{dtype} {sorted(kwargs)}", **kwargs)


def test_sequence_axis_before_the_heads():
    """(B, T, H, D) arrays (seq_axis=-3), with HF's (B, T) position ids."""
    q, k = data((2, 24, 4, 16)), data((2, 24, 2, 16), key="k")
    positions = rng_for("seq axis").integers(0, 30, size=(2, 24))
    for kwargs in ({"offset": np.array([3, 8])}, {"positions": positions, "scaling": SCALINGS["longrope"]}):
        lazies = fpd.apply_rotary(da.from_array(q, chunks=(1, 5, 3, 16)), da.from_array(k, chunks=(2, 7, 1, 16)),
                                  seq_axis=-3, **kwargs)
        check(lazies, (q, k), f"seq_axis=-3 {sorted(kwargs)}", seq_axis=-3, **kwargs)


def test_dynamic_scaling_sees_the_whole_calls_largest_position():
    """Regression: with the dynamic and longrope scalings, a block rotated on
    its own positions took the frequencies of its own largest position, not
    the call's (the first blocks of a sequence that passes
    max_position_embeddings were rotated as a short call)."""
    q = data((1, 2, 40, 16), np.float64)
    for name in ("dynamic", "longrope"):
        for kwargs in ({"offset": 0}, {"positions": da.from_array(np.arange(40) * 2.0, chunks=8)}):
            lazy = fpd.apply_rotary(da.from_array(q, chunks=(1, 1, 8, 16)), scaling=SCALINGS[name], **kwargs)
            check(lazy, (q,), f"{name} {sorted(kwargs)}", scaling=SCALINGS[name], **kwargs)


def test_arrays_of_two_widths_keep_the_calls_frequencies():
    """Regression: arrays of different widths give the frequencies of a call
    without one common width; a block rotated alone took its own width (with a
    partial_rotary_factor it was refused, or rotated at other frequencies)."""
    q, k = data((2, 3, 20, 32)), data((2, 1, 20, 24), key="k")
    for scaling in (None, {"rope_type": "default", "partial_rotary_factor": 0.5},
                    {"rope_type": "dynamic", "factor": 2.0, "max_position_embeddings": 10}):
        lazies = fpd.apply_rotary(da.from_array(q, chunks=(1, 2, 6, 32)), da.from_array(k, chunks=(2, 1, 7, 24)),
                                  rotary_dim=16, scaling=scaling, offset=np.array([0, 5]))
        check(lazies, (q, k), f"widths 32 and 24, {scaling}", rotary_dim=16, scaling=scaling, offset=np.array([0, 5]))


def test_misaligned_blocks_and_positions():
    q = data(Q_SHAPE)
    positions = rng_for("misaligned").uniform(0, 50, size=(2, 24))
    lazy = fpd.apply_rotary(da.from_array(misaligned(q), chunks=(1, 2, 7, 16)),
                            positions=da.from_array(misaligned(positions), chunks=(1, 10)))
    check(lazy, (q,), "misaligned", positions=positions)


def test_inputs_left_alone_and_empty_arrays():
    q = data(Q_SHAPE)
    before = q.copy()
    fpd.apply_rotary(da.from_array(q, chunks=(1, 2, 5, 16)), scaling=SCALINGS["dynamic"]).compute()
    np.testing.assert_array_equal(q, before)
    for kwargs in ({}, {"positions": np.zeros((0, 1, 24))}):  # nothing to rotate: returned as they are
        lazy = fpd.apply_rotary(da.zeros((0, 2, 24, 16), dtype=q.dtype), scaling=SCALINGS["dynamic"], **kwargs)
        assert lazy.compute().shape == (0, 2, 24, 16)
    empty, full = fpd.apply_rotary(da.zeros((0, 2, 24, 16), dtype=q.dtype), da.from_array(q), offset=0)
    assert empty.compute().shape == (0, 2, 24, 16)
    assert_eager_bits(full.compute(), fastpe.apply_rotary(np.zeros((0, 2, 24, 16), q.dtype), q.copy())[1],
                      "beside an empty array")


def test_unused_scaling_keys_warn_as_the_eager_call_does():
    """The eager call warns once per call; the graph warns when it is built
    (and each block's eager call again when computed)."""
    scaling = {"rope_type": "linear", "factor": 2.0, "beta_fast": 32.0}
    q = data(Q_SHAPE)
    with pytest.warns(UserWarning, match="beta_fast"):
        lazy = fpd.apply_rotary(da.from_array(q, chunks=(1, 4, 24, 16)), scaling=scaling)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = lazy.compute(scheduler="sync")
        eager = fastpe.apply_rotary(q.copy(), scaling=scaling)
    assert_eager_bits(result, eager, "unused keys")
