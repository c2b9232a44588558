"""The numerical contract, checked directly (not via the reference) at large positions.

Reference values: sin(float64(p) * w_k) and cos(float64(p) * w_k), the angle
being the float64 product and sin/cos evaluated by the math module (libm), in
float64. Bounds (util.contract_atol):
    float64: 1e-12 absolute for |p| <= 4096, 1e-9 absolute for |p| <= 2**20
    float32: 1.2e-7 absolute
Both the compiled kernels and the NumPy reference must meet it, through every
entry point: tables (the grid kernel), encode (the grouped kernel), and
add_sinusoidal with offsets or positions, single- and multi-threaded.
The position sets cross the kernels' reseed interval (256) and reach the
edges of the contract (|p| = 4096 and |p| = 2**20 exactly).
"""

import math

import numpy as np
import pytest

import fastpe
from fastpe import reference
from util import CONTRACT_MAX_POSITION, CONTRACT_SMALL_POSITION, DTYPES, LAYOUTS, assert_within, contract_atol

IMPLS = {"fastpe": fastpe, "reference": reference}


def contract_values(positions, dim, layout, base=10000.0):
    """float64 expected encodings of a 1-D list of positions, elementwise with math.sin/cos."""
    w = reference.frequencies(dim, base, layout).tolist()  # checked against math.pow in test_tables
    rows = []
    half = dim // 2
    for p in np.asarray(positions, dtype=np.float64).tolist():
        row = [0.0] * dim
        if layout == "interleaved":
            for k, wk in enumerate(w):
                a = p * wk
                row[2 * k] = math.sin(a)
                if 2 * k + 1 < dim:
                    row[2 * k + 1] = math.cos(a)
        else:
            for k, wk in enumerate(w):
                a = p * wk
                row[k] = math.sin(a)
                row[half + k] = math.cos(a)
        rows.append(row)
    return np.array(rows, dtype=np.float64).reshape(len(rows), dim)


N = 600  # > 2 reseed intervals
# (label, first position of a run of N consecutive positions)
RUNS = {
    "small-positive-edge": CONTRACT_SMALL_POSITION - N + 1,  # ends exactly at 4096
    "small-negative-edge": -CONTRACT_SMALL_POSITION,  # starts exactly at -4096
    "small-around-zero": -N // 2 + 0.5,
    "large-positive-edge": CONTRACT_MAX_POSITION - N + 1,  # ends exactly at 2**20
    "large-negative-edge": -CONTRACT_MAX_POSITION,
    "large-fractional": 777_777.375,
    "large-mid": 2**19 + 3,
}


def _pmax(start, n=N):
    return max(abs(start), abs(start + n - 1))


@pytest.mark.parametrize("num_threads", [1, 2])
@pytest.mark.parametrize("run", RUNS, ids=str)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("impl", IMPLS)
def test_table_contract(impl, layout, run, num_threads):
    start = RUNS[run]
    for dim in (7, 64):
        expected = contract_values(start + np.arange(N), dim, layout)
        for dtype in DTYPES:
            got = IMPLS[impl].sinusoidal_table(N, dim, offset=start, layout=layout, dtype=dtype, num_threads=num_threads)
            assert_within(got, expected, contract_atol(dtype, _pmax(start)),
                          f"{impl} table run={run} dim={dim} {layout} {np.dtype(dtype).name} threads={num_threads}")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("impl", IMPLS)
def test_table_contract_wide(impl, layout):
    """Wide encodings (column chunks, many frequencies) at the large edge."""
    start = CONTRACT_MAX_POSITION - 300 + 1
    for dim in (1023, 1024):
        expected = contract_values(start + np.arange(300), dim, layout)
        for dtype in DTYPES:
            got = IMPLS[impl].sinusoidal_table(300, dim, offset=start, layout=layout, dtype=dtype)
            assert_within(got, expected, contract_atol(dtype, CONTRACT_MAX_POSITION),
                          f"{impl} wide table dim={dim} {layout} {np.dtype(dtype).name}")


def _encode_position_sets(rng):
    yield "random-fractional-large", rng.uniform(-CONTRACT_MAX_POSITION, CONTRACT_MAX_POSITION, 2000)
    yield "random-int-large", rng.integers(-CONTRACT_MAX_POSITION, CONTRACT_MAX_POSITION + 1, 2000)
    yield "runs-at-both-edges", np.concatenate(
        [CONTRACT_MAX_POSITION - np.arange(700), -CONTRACT_MAX_POSITION + np.arange(700)]
    )
    yield "unsorted-run-large", CONTRACT_MAX_POSITION - rng.permutation(1000)
    yield "half-integer-run-large", 2**20 - 0.5 - np.arange(600)
    yield "small-edges", np.concatenate([np.arange(-4096, -3500), np.arange(3500, 4097)])
    yield "small-random-fractional", rng.uniform(-4096, 4096, 2000)


@pytest.mark.parametrize("num_threads", [1, 2])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("impl", IMPLS)
def test_encode_contract(impl, layout, num_threads):
    rng = np.random.default_rng(20)
    for label, pos in _encode_position_sets(rng):
        pmax = float(np.abs(pos).max())
        for dim in (5, 64):
            expected = contract_values(pos, dim, layout)
            for dtype in DTYPES:
                got = IMPLS[impl].sinusoidal_encode(pos, dim, layout=layout, dtype=dtype, num_threads=num_threads)
                assert_within(got, expected, contract_atol(dtype, pmax),
                              f"{impl} encode {label} dim={dim} {layout} {np.dtype(dtype).name} threads={num_threads}")


@pytest.mark.parametrize("num_threads", [1, 2, None])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("impl", IMPLS)
def test_add_contract_offsets(impl, layout, num_threads):
    """add_sinusoidal onto zeros is the encoding itself: per-sequence offsets at the edges."""
    dim = 64
    for region, offsets in [
        ("small", np.array([CONTRACT_SMALL_POSITION - N + 1, -CONTRACT_SMALL_POSITION, 0, -CONTRACT_SMALL_POSITION])),
        ("large", np.array([CONTRACT_MAX_POSITION - N + 1, -CONTRACT_MAX_POSITION, 777_777.375, CONTRACT_MAX_POSITION - N + 1])),
    ]:
        pmax = max(_pmax(o) for o in offsets)
        expected = np.stack([contract_values(o + np.arange(N), dim, layout) for o in offsets])
        for dtype in DTYPES:
            x = np.zeros((len(offsets), N, dim), dtype)
            got = IMPLS[impl].add_sinusoidal(x, offset=offsets, layout=layout, num_threads=num_threads)
            assert_within(got, expected, contract_atol(dtype, pmax),
                          f"{impl} add offsets {region} {layout} {np.dtype(dtype).name} threads={num_threads}")


@pytest.mark.parametrize("num_threads", [1, 2, None])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("impl", IMPLS)
def test_add_contract_positions(impl, layout, num_threads):
    rng = np.random.default_rng(21)
    dim = 33
    for label, pos in [
        ("large-random", rng.uniform(-CONTRACT_MAX_POSITION, CONTRACT_MAX_POSITION, (3, 400))),
        ("large-runs", np.stack([CONTRACT_MAX_POSITION - np.arange(400), -CONTRACT_MAX_POSITION + np.arange(400),
                                 CONTRACT_MAX_POSITION - 399 + np.arange(400)])),
        ("small-runs", np.stack([4096 - np.arange(400), -4096 + np.arange(400), rng.permutation(400) - 200])),
    ]:
        pmax = float(np.abs(pos).max())
        expected = contract_values(pos.ravel(), dim, layout).reshape(pos.shape + (dim,))
        for dtype in DTYPES:
            x = np.zeros(pos.shape + (dim,), dtype)
            got = IMPLS[impl].add_sinusoidal(x, positions=pos, layout=layout, num_threads=num_threads)
            assert_within(got, expected, contract_atol(dtype, pmax),
                          f"{impl} add positions {label} {layout} {np.dtype(dtype).name} threads={num_threads}")


def test_contract_atol_values():
    """The bounds the tests use are the documented ones."""
    assert contract_atol(np.float64, 4096) == 1e-12
    assert contract_atol(np.float64, 4097) == 1e-9
    assert contract_atol(np.float64, 2**20) == 1e-9
    assert contract_atol(np.float32, 2**20) == 1.2e-7
    with pytest.raises(AssertionError):
        contract_atol(np.float64, 2**20 + 1)
