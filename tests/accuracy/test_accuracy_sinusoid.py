"""The accuracy contract of the sinusoid family over every accepted position (docs/contract.rst).

float64 encodings are within 1e-9 of the exact value: mpmath's sin and cos
of the float64 position as given times the exact frequency (the rule's
formula evaluated exactly; an inv_freq as given), at integer and fractional
positions up to 2**53, negative ones included, through every path: tables,
sinusoid_encode, the fused add's compiled fast path (cached rows and
generation) and general path, explicit positions, each preset.

Measured on the development machine (x86-64-v4), largest error of any case
here: 2.1e-14 (integers at 2**53 - 8 and -(2**50 + 3), whose rows are
248 and 253 rotations from their seeds); 3.3e-16 on rows at a seed point.
Before the frequencies were kept to twice float64's precision and the seeds
reduced exactly, the same tables were 4.9e-8 off at 2**30, 5.2e-5 at 2**40,
0.049 at 2**50 and 0.39 at 2**53 - 8 (the reference: 0.42).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import exact
import fastpe
from fastpe import _frontdoor, reference
from fastpath import general_path_only
from fastpe._validation import POSITION_LIMIT

BOUND = 1e-9
INTEGERS = [2**30, 2**30 + 255, 2**40 - 1, 2**40 + 77, 2**50 + 3, 2**53 - 1, 2**53 - 8, 2**53 - 200]
# 2**31 + x: timestamps in seconds; 2**40 + x: the case.
FRACTIONS = [2**40 + 0.375, 2**40 - 0.1, 2**31 + 0.5, 2**31 + 0.123456, 1.7e9 + 0.25, 2**51 + 0.5]
NEGATIVES = [-(2**30) - 5, -(2**50) - 3, -(2**53) + 1, -(2**40) - 0.625, -(2**31) - 0.5]
POSITIONS = INTEGERS + FRACTIONS + NEGATIVES
DIMS = [1, 2, 7, 64, 65]


def _exact_rows(positions, dim, preset=None, **params):
    if preset is None:
        freqs = exact.vaswani(dim, params.get("base", 10000.0), (dim + 1) // 2)
    else:
        freqs = exact.preset_frequencies(preset, dim, **params)
    return exact.encodings(positions, freqs, exact.preset_columns(preset, dim))


def _error(got, expected):
    return float(np.abs(np.asarray(got, dtype=np.float64) - expected).max()) if expected.size else 0.0


def _consecutive(p, n):
    """n positions p, p + 1, ... as float64 sums (what a table or an add forms), below the limit."""
    return [float(np.float64(p) + t) for t in range(n) if abs(float(np.float64(p) + t)) < POSITION_LIMIT]


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("p", POSITIONS)
def test_table_and_encode_within_bound(p, dim):
    n = 3 if abs(p) < 2**53 - 3 else 1
    positions = _consecutive(p, n)
    expected = _exact_rows(positions, dim)
    table = fastpe.sinusoidal_table(len(positions), dim, offset=p, dtype=np.float64)
    assert _error(table, expected) <= BOUND, f"table at {p}, dim {dim}: {_error(table, expected):.3g}"
    encoded = fastpe.sinusoidal_encode(positions[::-1], dim, dtype=np.float64)
    assert _error(encoded, expected[::-1]) <= BOUND, f"encode at {p}, dim {dim}"


@pytest.mark.parametrize("p", POSITIONS)
def test_add_fast_and_general_paths_within_bound(p):
    """add_sinusoidal(x, offset=p) on an ndarray: the compiled fast path
    (cached rows for integers, generation for fractions), then the general
    path, each into zeros (0 + pe is pe)."""
    dim, T = 64, 3 if abs(p) < 2**53 - 3 else 1
    positions = _consecutive(p, T)
    expected = _exact_rows(positions, dim)
    x = np.zeros((2, T, dim))
    fast_before, rows_before = _frontdoor.sinusoid_calls(), _frontdoor.row_calls()
    fastpe.add_sinusoidal(x, offset=p)
    assert _frontdoor.sinusoid_calls() == fast_before + 1, "the common call must take the fast path"
    if float(p).is_integer():
        assert _frontdoor.row_calls() == rows_before + 1, "integer offsets of a small call add cached rows"
    assert max(_error(x[b], expected) for b in range(2)) <= BOUND, f"fast path at {p}"
    general = np.zeros((2, T, dim))
    with general_path_only():
        fastpe.add_sinusoidal(general, offset=np.array([p, p]), scale=1.0)
    assert max(_error(general[b], expected) for b in range(2)) <= BOUND, f"general path at {p}"


def test_explicit_positions_of_every_magnitude_within_bound():
    """One call, positions of every magnitude in any order (the grouped kernel)."""
    dim = 33
    positions = np.array(POSITIONS + [0.0, 1.5, -7.0, 4096.0])
    expected = _exact_rows(list(positions), dim)
    x = np.zeros((len(positions), dim))
    fastpe.add_sinusoidal(x, positions=positions)
    assert _error(x, expected) <= BOUND


PRESET_CASES = [(preset, dim) for preset in ("vaswani", "marian", "tensor2tensor", "fairseq", "whisper")
                for dim in (8, 9, 64) if not (preset == "whisper" and dim % 2)]  # whisper: even widths only


@pytest.mark.parametrize("preset,dim", PRESET_CASES)
def test_presets_within_bound(preset, dim):
    positions = [2**40 + 0.375, 2**53 - 8, -(2**50) - 3, 2**31 + 0.5, 2**30]
    kwargs = {"padding_idx": -1} if preset == "fairseq" else {}  # no padding row among the positions
    expected = _exact_rows(positions, dim, preset)
    got = fastpe.sinusoidal_encode(positions, dim, dtype=np.float64, preset=preset, **kwargs)
    assert _error(got, expected) <= BOUND, f"{preset} dim {dim}: {_error(got, expected):.3g}"
    x = np.zeros((1, len(positions), dim))
    fastpe.add_sinusoidal(x, positions=np.array(positions)[None], preset=preset, **kwargs)
    assert _error(x[0], expected) <= BOUND


def test_preset_parameters_within_bound():
    """Non-default bases and timescales: their frequencies are exact too."""
    positions = [2**45 + 0.5, 2**53 - 3]
    for preset, params in [("vaswani", {"base": 500000.0}), ("fairseq", {"base": 1234.5}),
                           ("tensor2tensor", {"min_timescale": 2.0, "max_timescale": 3e5}),
                           ("whisper", {"max_timescale": 1e5})]:
        expected = _exact_rows(positions, 16, preset, **params)
        got = fastpe.sinusoidal_encode(positions, 16, dtype=np.float64, preset=preset, padding_idx=-1, **params)
        assert _error(got, expected) <= BOUND, f"{preset} {params}"


def test_inv_freq_is_exact_as_given():
    """An explicit inv_freq is the frequency itself, whatever its magnitude
    (angles past 2**55 take the seed's libm path)."""
    inv_freq = np.array([1.0, 0.1, 3.0, 1e-7, 1234.5678])
    positions = [2**53 - 5, 2**40 + 0.375, -(2**45) - 1]
    with exact.mpmath.workprec(exact.PRECISION):
        freqs = [exact.mpmath.mpf(float(w)) for w in inv_freq]
    expected = exact.encodings(positions, freqs, exact.preset_columns("concat", 10))
    got = fastpe.sinusoidal_encode(positions, 10, layout="concat", inv_freq=inv_freq, dtype=np.float64)
    assert _error(got, expected) <= BOUND


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_narrow_dtypes_round_the_exact_float64_row(dtype):
    """float32 and float16 tables are the float64 table rounded once (to nearest even)."""
    for p in (2**40 + 0.375, 2**53 - 8, -(2**50) - 3):
        wide = fastpe.sinusoidal_table(3 if p < 2**53 - 8 else 1, 65, offset=p, dtype=np.float64)
        narrow = fastpe.sinusoidal_table(wide.shape[0], 65, offset=p, dtype=dtype)
        np.testing.assert_array_equal(narrow, wide.astype(dtype))


def test_regression_fractional_positions_just_above_minus_2_52():
    """Fractional positions in (-2**52, -2**52 + 256) were seeded at a
    canonical point float64 cannot hold (it fell past -2**52, where halves do
    not exist), so their rows were another position's: sin off by up to 1.8
    with inv_freq=[1]. Such a position is now seeded at itself."""
    positions = [-(2.0**52) + 100.5, -(2.0**52) + 0.5, -(2.0**52) + 255.5]
    with exact.mpmath.workprec(exact.PRECISION):
        freqs = [exact.mpmath.mpf(1.0), exact.mpmath.mpf(0.001)]
    expected = exact.encodings(positions, freqs, exact.preset_columns("concat", 4))
    got = fastpe.sinusoidal_encode(positions, 4, layout="concat", inv_freq=[1.0, 0.001], dtype=np.float64)
    assert _error(got, expected) <= BOUND
    table = fastpe.sinusoidal_table(3, 4, offset=positions[0] - 1, layout="concat", inv_freq=[1.0, 0.001],
                                    dtype=np.float64)
    assert _error(table[1:2], expected[:1]) <= BOUND


def test_reference_is_the_less_exact_side():
    """Why the kernel-against-reference tests stop at 2**20: beyond it the
    reference (float64 products of NumPy's rounded frequencies) drifts from
    the exact value, the kernels do not."""
    p = 2**40 + 0.375
    expected = _exact_rows([p], 64)
    assert _error(reference.sinusoidal_table(1, 64, offset=p, dtype=np.float64), expected) > 1e-6
    assert _error(fastpe.sinusoidal_table(1, 64, offset=p, dtype=np.float64), expected) <= BOUND


@settings(max_examples=60, deadline=None)
@given(position=st.one_of(st.integers(-(2**53) + 2, 2**53 - 2).map(float),
                          st.floats(-(2.0**53) + 2, 2.0**53 - 2, allow_nan=False, allow_infinity=False)),
       dim=st.sampled_from([3, 8, 33]))
def test_property_any_accepted_position_within_bound(position, dim):
    positions = _consecutive(position, 2)
    expected = _exact_rows(positions, dim)
    got = fastpe.sinusoidal_table(len(positions), dim, offset=position, dtype=np.float64)
    assert _error(got, expected) <= BOUND
    assert _error(fastpe.sinusoidal_encode(positions[-1:], dim, dtype=np.float64), expected[-1:]) <= BOUND
