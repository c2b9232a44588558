"""Hypothesis: random shapes, dims, memory layouts, offsets, positions, scales,
outputs, frequencies and thread counts; the kernel must equal the reference
within the tolerance rule of util.add_tolerance.

Array contents come from a NumPy generator seeded by a drawn integer (drawing
thousands of floats through hypothesis is slow and shrinks no better); the
structure (shapes, strides, argument kinds) is drawn by hypothesis itself.
"""

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastpe
from fastpe import reference
from util import (
    ALL_KINDS,
    CONTRACT_MAX_POSITION,
    DTYPES,
    LAYOUTS,
    add_tolerance,
    array_variants,
    assert_within,
    check_add_against_reference,
)

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,  # no .hypothesis/ directory left behind
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

dtypes = st.sampled_from(DTYPES)
layouts = st.sampled_from(LAYOUTS)
threads = st.sampled_from([None, 1, 2, 7])
seeds = st.integers(0, 2**32 - 1)


def _n_freq(dim, layout):
    return (dim + 1) // 2 if layout == "interleaved" else dim // 2


@st.composite
def inv_freqs(draw, dim, layout):
    if draw(st.booleans()):
        return None
    n = _n_freq(dim, layout)
    return draw(st.lists(st.floats(0.0, 2.0, allow_nan=False, allow_infinity=False), min_size=n, max_size=n))


@st.composite
def x_arrays(draw, big=False):
    """(label, x) with a random shape and a random memory layout."""
    dtype = draw(dtypes)
    ndim = draw(st.integers(2, 4))
    if big:
        batch = tuple(draw(st.lists(st.integers(1, 3), min_size=ndim - 2, max_size=ndim - 2)))
        T = draw(st.integers(200, 1500))
        D = draw(st.sampled_from([16, 33, 64, 127, 128]))
    else:
        batch = tuple(draw(st.lists(st.integers(0, 3), min_size=ndim - 2, max_size=ndim - 2)))
        T = draw(st.integers(0, 40) | st.sampled_from([255, 256, 257, 513]))
        D = draw(st.integers(0, 70) | st.sampled_from([127, 128, 255, 256, 257, 1023, 1024]))
    max_elements = 400_000 if big else 60_000
    while math.prod(batch) * T * D > max_elements and T > 1:
        T //= 2
    shape = batch + (T, D)
    kind = draw(st.sampled_from(ALL_KINDS))
    rng = np.random.default_rng(draw(seeds))
    magnitude = draw(st.sampled_from([1.0, 100.0, 1e4]))
    variants = dict(array_variants(shape, dtype, rng, magnitude=magnitude, kinds=(kind,)))
    if kind not in variants:  # layout not defined for this ndim
        kind = "C"
        variants = dict(array_variants(shape, dtype, rng, magnitude=magnitude, kinds=("C",)))
    return kind, variants[kind]


def _broadcast_shape(draw, full_shape):
    """A shape that broadcasts to full_shape: some axes 1, maybe leading axes dropped."""
    shape = [n if draw(st.booleans()) else 1 for n in full_shape]
    drop = draw(st.integers(0, len(shape)))
    return tuple(shape[drop:])


@st.composite
def position_kwargs(draw, x_shape):
    """offset= (scalar or per-sequence) or positions= arguments for x of x_shape."""
    T = x_shape[-2]
    rng = np.random.default_rng(draw(seeds))
    mode = draw(st.sampled_from(["scalar", "per-seq", "positions"]))
    lo, hi = -CONTRACT_MAX_POSITION, CONTRACT_MAX_POSITION - max(T - 1, 0)
    if mode == "scalar":
        off = draw(st.integers(-5000, 5000) | st.integers(lo, hi)
                   | st.floats(lo, hi, allow_nan=False, allow_infinity=False))
        return {"offset": off}
    if mode == "per-seq":
        shape = _broadcast_shape(draw, x_shape[:-2])
        recipe = draw(st.sampled_from(["ints", "floats", "few-values", "chain"]))
        if recipe == "ints":
            off = rng.integers(-5000, 5000, shape)
        elif recipe == "floats":
            off = rng.uniform(lo, hi, shape)
        elif recipe == "few-values":
            off = rng.choice(np.array([0, 7, -3, 12.5]), shape)
        else:  # sequence i continues where sequence i-1 stopped
            off = (np.arange(math.prod(shape)) * T).reshape(shape) - 1000
        return {"offset": off}
    shape = _broadcast_shape(draw, x_shape[:-1])
    recipe = draw(st.sampled_from(["arange", "ints", "floats", "repeated", "huge-unsorted", "runs-with-gaps"]))
    n = math.prod(shape)
    if recipe == "arange":
        flat = np.arange(n) + draw(st.integers(-4000, 4000))
    elif recipe == "ints":
        flat = rng.integers(-300, 300, n)
    elif recipe == "floats":
        flat = rng.uniform(lo, hi, n)
    elif recipe == "repeated":
        flat = rng.choice(np.array([3, 3, 4, -1]), n)
    elif recipe == "huge-unsorted":
        flat = 1_000_000 + rng.permutation(n)
    else:
        flat = np.arange(n) + 50 * (np.arange(n) // 7)
    dtype = draw(st.sampled_from([np.int64, np.int32, np.float64])) if recipe != "floats" else np.float64
    if dtype == np.int32 and recipe == "floats":
        dtype = np.float64
    return {"positions": flat.reshape(shape).astype(dtype)}


@st.composite
def add_cases(draw, big=False):
    kind, x = draw(x_arrays(big=big))
    kwargs = draw(position_kwargs(x.shape))
    layout = draw(layouts)
    kwargs["layout"] = layout
    if draw(st.booleans()):
        kwargs["scale"] = draw(st.sampled_from([0.0, 1.0, -1.0, 8.0, 0.125]) | st.floats(-100, 100))
    if draw(st.booleans()):
        kwargs["base"] = draw(st.sampled_from([10000.0, 100.0, 2.0, 1e5]))
    freq = draw(inv_freqs(x.shape[-1], layout))
    if freq is not None:
        kwargs["inv_freq"] = freq
    kwargs["num_threads"] = draw(threads)
    out_mode = draw(st.sampled_from(["in-place", "separate", "self", "separate-strided"]))
    if out_mode == "separate":
        out = np.full(x.shape, 7.0, x.dtype)
    elif out_mode == "self":
        out = x
    elif out_mode == "separate-strided":
        out = np.full(x.shape[:-1] + (2 * x.shape[-1],), 7.0, x.dtype)[..., ::-2]
    else:
        out = None
    return kind, x, out, kwargs


@SETTINGS
@given(add_cases())
def test_add_matches_reference(case):
    kind, x, out, kwargs = case
    check_add_against_reference(x, f"hypothesis memory={kind}", out=out, **kwargs)


@settings(SETTINGS, max_examples=20)
@given(add_cases(big=True))
def test_add_matches_reference_threaded_sizes(case):
    """Arrays large enough that the kernels really split the work between threads."""
    kind, x, out, kwargs = case
    check_add_against_reference(x, f"hypothesis (big) memory={kind}", out=out, **kwargs)


@SETTINGS
@given(
    dtype=dtypes,
    layout=layouts,
    dim=st.integers(0, 80) | st.sampled_from([255, 256, 257, 1023]),
    n=st.integers(0, 700),
    offset=st.integers(-4000, 4000) | st.floats(-CONTRACT_MAX_POSITION, CONTRACT_MAX_POSITION - 700),
    num_threads=threads,
    data=st.data(),
)
def test_table_matches_reference(dtype, layout, dim, n, offset, num_threads, data):
    freq = data.draw(inv_freqs(dim, layout))
    got = fastpe.sinusoidal_table(n, dim, offset=offset, layout=layout, dtype=dtype, num_threads=num_threads,
                                  inv_freq=freq)
    expected = reference.sinusoidal_table(n, dim, offset=offset, layout=layout, dtype=dtype, inv_freq=freq)
    pmax = max(abs(offset), abs(offset + n - 1)) if n else 0
    assert_within(got, expected, add_tolerance(dtype, pmax, 0.0),
                  f"table n={n} dim={dim} offset={offset} {layout} {np.dtype(dtype).name} threads={num_threads}")


@SETTINGS
@given(
    dtype=dtypes,
    layout=layouts,
    dim=st.integers(0, 80),
    shape=st.lists(st.integers(0, 30), min_size=0, max_size=3),
    seed=seeds,
    recipe=st.sampled_from(["ints", "floats", "runs", "repeated"]),
    num_threads=threads,
)
def test_encode_matches_reference(dtype, layout, dim, shape, seed, recipe, num_threads):
    rng = np.random.default_rng(seed)
    n = math.prod(shape)
    if recipe == "ints":
        pos = rng.integers(-CONTRACT_MAX_POSITION, CONTRACT_MAX_POSITION, n)
    elif recipe == "floats":
        pos = rng.uniform(-CONTRACT_MAX_POSITION, CONTRACT_MAX_POSITION, n)
    elif recipe == "runs":
        pos = np.arange(n) - 300 + 1000 * (np.arange(n) // 97)
    else:
        pos = rng.integers(0, 3, n)
    pos = pos.reshape(shape)
    got = fastpe.sinusoidal_encode(pos, dim, layout=layout, dtype=dtype, num_threads=num_threads)
    expected = reference.sinusoidal_encode(pos, dim, layout=layout, dtype=dtype)
    pmax = float(np.abs(pos).max()) if pos.size else 0.0
    assert_within(got, expected, add_tolerance(dtype, pmax, 0.0),
                  f"encode shape={tuple(shape)} recipe={recipe} dim={dim} {layout} {np.dtype(dtype).name}")
