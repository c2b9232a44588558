"""The blocked row generator (fpe_rows_* in _simd.h) against the one-row step.

Consecutive positions (an offset) are generated a block of rows at a time,
the rotation state of a strip of frequencies held in registers across the
rows; explicit positions (`positions=`) still go one row at a time through the
one-row step and the encoding-row apply. Both must give the same bits for
every width (whole strips, a partial strip, odd widths with a lone sine
column), every length (partial blocks of rows, runs cut at canonical seed
points and at the padding row), every mode (the add in place, out=, the
table), the tile shared by several sequences, the layouts whose columns take
the vector path and those that do not (column strides), any row stride, and
every storage type. Each result is also checked against the NumPy reference,
so the two cannot agree by being wrong together.
"""

import math

import numpy as np
import pytest
from optional import extra_reason

import fastpe
from fastpe import reference
from util import CONTRACT_MAX_POSITION, add_tolerance, assert_same_bits, assert_within, rng_for

try:
    import ml_dtypes
except ImportError:  # pragma: no cover - ml_dtypes is a test dependency
    ml_dtypes = None

# Widths around the strip (32 frequencies: 64 interleaved columns): below
# one strip, whole strips, a partial strip after whole ones, odd widths.
DIMS = [2, 6, 63, 64, 66, 130, 129, 200, 1030]
# Lengths around the block of rows (8), crossing canonical points (256).
LENGTHS = [1, 7, 8, 9, 23, 300]
OFFSETS = [0, -20, 250, 1000.25]


def _explicit(x, offset, **kwargs):
    """The same add through explicit positions (the one-row path)."""
    T = x.shape[-2]
    positions = np.broadcast_to(offset + np.arange(T, dtype=np.float64), x.shape[:-1])
    return fastpe.add_sinusoidal(x, positions=positions, **kwargs)


def _check(blocked, one_row, x_before, offset, scale, kwargs, msg):
    assert_same_bits(blocked, one_row, msg)
    T, dim = x_before.shape[-2], x_before.shape[-1]
    positions = offset + np.arange(T, dtype=np.float64)
    if np.max(np.abs(positions)) <= CONTRACT_MAX_POSITION:
        expected = reference.add_sinusoidal(x_before.astype(np.float64), positions=np.broadcast_to(
            positions, x_before.shape[:-1]), scale=scale, **kwargs)
        xs = np.abs(x_before.astype(np.float64) * (1.0 if scale is None else scale))
        assert_within(blocked, expected, add_tolerance(blocked.dtype, float(np.max(np.abs(positions))), xs), msg)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["interleaved", "concat"])
@pytest.mark.parametrize("dim", DIMS)
def test_widths_and_lengths(dim, layout, dtype):
    rng = rng_for("widths", dim, layout, np.dtype(dtype).name)
    for T in LENGTHS:
        for offset in OFFSETS:
            x = rng.standard_normal((T, dim)).astype(dtype)
            blocked = fastpe.add_sinusoidal(x.copy(), offset=offset, scale=1.5, layout=layout)
            one_row = _explicit(x.copy(), offset, scale=1.5, layout=layout)
            _check(blocked, one_row, x, offset, 1.5, {"layout": layout},
                   f"dim={dim} T={T} offset={offset} {layout} {np.dtype(dtype).name}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["interleaved", "concat"])
def test_out_table_and_shared_tile(layout, dtype):
    rng = rng_for("modes", layout, np.dtype(dtype).name)
    T, dim, offset = 333, 130, 77
    x = rng.standard_normal((3, T, dim)).astype(dtype)
    one_row = _explicit(x.copy(), offset, layout=layout)
    # out= (the add to a separate array), one sequence at a time: the direct path.
    for b in range(3):
        out = np.full((T, dim), np.nan, dtype)
        fastpe.add_sinusoidal(x[b], offset=offset, layout=layout, out=out)
        _check(out, one_row[b], x[b], offset, None, {"layout": layout}, f"out= sequence {b}")
    # Three sequences at one offset share a tile of encoding rows.
    shared = fastpe.add_sinusoidal(x.copy(), offset=offset, layout=layout)
    _check(shared, one_row, x, offset, None, {"layout": layout}, "shared tile")
    shared_out = np.empty_like(x)
    fastpe.add_sinusoidal(x, offset=offset, layout=layout, out=shared_out)
    assert_same_bits(shared_out, one_row, "shared tile, out=")
    # The table stores the rows.
    table = fastpe.sinusoidal_table(T, dim, offset=offset, layout=layout, dtype=dtype)
    zeros = _explicit(np.zeros((T, dim), dtype), offset, layout=layout)
    assert_same_bits(table + dtype(0), zeros, "table")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_and_column_strides(dtype):
    rng = rng_for("strides", np.dtype(dtype).name)
    T, dim, offset = 100, 128, 5
    base = rng.standard_normal((T, 2 * dim)).astype(dtype)
    views = {
        "reversed rows": lambda a: a[::-1, :dim],
        "every other row": lambda a: a[::2, :dim],
        "strided columns": lambda a: a[:, ::2],
        "reversed columns": lambda a: a[:, dim - 1::-1],
        "Fortran order": lambda a: np.asfortranarray(a[:, :dim]),
    }
    for label, view in views.items():
        blocked_base, one_row_base = base.copy(), base.copy()
        x_before = view(base).copy()
        blocked = fastpe.add_sinusoidal(view(blocked_base), offset=offset)
        one_row = _explicit(view(one_row_base), offset)
        _check(blocked, one_row, x_before, offset, None, {}, label)


def test_padding_row_inside_a_block():
    rng = rng_for("padding")
    T, dim = 40, 96
    x = rng.standard_normal((2, T, dim)).astype(np.float32)
    for padding_idx in (0, 3, 13, 39):
        kwargs = {"layout": "concat", "padding_idx": padding_idx}
        blocked = fastpe.add_sinusoidal(x[:1].copy(), **kwargs)
        one_row = _explicit(x[:1].copy(), 0, **kwargs)
        assert_same_bits(blocked, one_row, f"padding_idx={padding_idx}, one sequence")
        np.testing.assert_array_equal(blocked[0, padding_idx], x[0, padding_idx])
        shared = fastpe.add_sinusoidal(x.copy(), **kwargs)
        assert_same_bits(shared, _explicit(x.copy(), 0, **kwargs), f"padding_idx={padding_idx}, shared tile")
    table = fastpe.sinusoidal_table(T, dim, layout="concat", padding_idx=13)
    assert not table[13].any()


@pytest.mark.skipif(ml_dtypes is None, reason=extra_reason("ml_dtypes", "test"))
@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_half_storage_through_blocked_float64_rows(half):
    dtype = np.float16 if half == "float16" else ml_dtypes.bfloat16
    rng = rng_for("half", half)
    T, dim, offset = 70, 130, 250
    x = rng.standard_normal((2, T, dim)).astype(dtype)
    for layout in ("interleaved", "concat"):
        blocked = fastpe.add_sinusoidal(x.copy(), offset=offset, layout=layout)
        one_row = _explicit(x.copy(), offset, layout=layout)
        assert_same_bits(blocked, one_row, f"{half} {layout}")
        expected = reference.add_sinusoidal(x.astype(np.float64), offset=offset, layout=layout)
        # One rounding of a float64 sum to the 16-bit type: half an ulp of |result|.
        eps = float(np.finfo(np.float16).eps) if half == "float16" else 2.0**-7
        assert_within(blocked.astype(np.float64), expected,
                      eps * (np.abs(expected) + 1.0), f"{half} {layout} against the reference")


@pytest.mark.parametrize("num_threads", [1, 2, 3])
def test_thread_splits_cut_blocks_anywhere(num_threads):
    rng = rng_for("threads", num_threads)
    T, dim = 1000, 200
    x = rng.standard_normal((T, dim)).astype(np.float32)
    for offset in (0, 3, 129):
        blocked = fastpe.add_sinusoidal(x.copy(), offset=offset, num_threads=num_threads)
        one_row = _explicit(x.copy(), offset, num_threads=1)
        _check(blocked, one_row, x, offset, None, {}, f"threads={num_threads} offset={offset}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dim,layout", [(129, "interleaved"), (63, "interleaved"), (129, "concat")])
def test_regression_lone_sine_and_zero_columns_of_an_add_have_the_row_paths_bits(dim, layout, dtype):
    """The column of an odd width outside the sine/cosine pairs (the lone sine
    of interleaved, the zero column of concat) was added in float64 by a
    non-dispatched loop, so its sum with x differed in the last bit from the
    same position's column through explicit positions (whole-row apply:
    rounded encoding, then x * scale + pe in x's type, one multiply-add)."""
    rng = rng_for("lone column", dim, layout, np.dtype(dtype).name)
    x = rng.standard_normal((40, dim)).astype(dtype)
    for scale in (1.5, float(np.sqrt(512.0))):  # sqrt(512) is not a float32
        blocked = fastpe.add_sinusoidal(x.copy(), offset=250, scale=scale, layout=layout)
        one_row = _explicit(x.copy(), 250, scale=scale, layout=layout)
        _check(blocked, one_row, x, 250, scale, {"layout": layout}, f"scale={scale}")


@pytest.mark.parametrize("dim", [2, 64, 768, 1000])
def test_regression_the_step_rotations_are_libms_not_numpys(dim):
    """Each frequency's one-position rotation (cos w, sin w of w = hi + lo) is libm's cos and sin of each
    part by the angle-sum rule, as the seeds are libm's: with NumPy's vector loops (NumPy 1.24's AVX-512
    cos errs by up to 4 ulps) the float64 results moved with NumPy's release and the CPU (1e-15 at small
    positions). Compared with Python's math module, one element at a time."""
    from fastpe import _frontdoor
    from fastpe._validation import Encoding

    plan = _frontdoor.encoding_plan(Encoding(dim, 10000.0, "interleaved", None))
    for k, (hi, lo) in enumerate(zip(plan.freq.tolist(), plan.freq_lo.tolist())):
        expected_cos = math.cos(hi) * math.cos(lo) - math.sin(hi) * math.sin(lo)
        expected_sin = math.sin(hi) * math.cos(lo) + math.cos(hi) * math.sin(lo)
        assert (plan.step_cos[k], plan.step_sin[k]) == (expected_cos, expected_sin), f"frequency {k}"
