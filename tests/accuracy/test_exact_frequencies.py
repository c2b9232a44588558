"""The exact frequencies (fastpe._double_double, the rules of fastpe._formulas)
against their definitions evaluated with mpmath (tests/helpers/exact.py).

Each rule gives hi + lo: hi must be the exact value correctly rounded to
float64 (what rope_inv_freq and the plans show), hi + lo within 2**-100 of
it, relative (measured: 2**-104.7 at worst over these cases).
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import exact
import fastpe
from exact import mpmath
from fastpe import _formulas, _frontdoor
from fastpe._double_double import DoubleDouble, exp_progression
from fastpe._validation import Encoding
from fastpe._rope import call_frequencies
from rope_parameters import LLAMA3, longrope_parameters

RELATIVE = 2.0**-100


def assert_exact(hi, lo, expected, what):
    """hi is each expected value rounded to float64, hi + lo within RELATIVE of it."""
    assert len(hi) == len(expected), what
    with mpmath.workprec(exact.PRECISION):
        for k, (h, low, want) in enumerate(zip(hi, lo, expected)):
            assert h == float(want), f"{what}[{k}]: hi {h!r} is not {float(want)!r}"
            if want == 0:
                assert low == 0, f"{what}[{k}]"
                continue
            error = abs((mpmath.mpf(float(h)) + mpmath.mpf(float(low)) - want) / want)
            assert error <= RELATIVE, f"{what}[{k}]: hi + lo off by 2**{float(mpmath.log(error, 2)):.1f}"


@pytest.mark.parametrize("dim", [1, 2, 7, 64, 65, 128, 4096])
@pytest.mark.parametrize("base", [10000.0, 500000.0, 1.5, 0.37, 1e6 + 0.1])
def test_vaswani_powers(dim, base):
    n = (dim + 1) // 2
    freq = _formulas.vaswani_frequencies(dim, base, n)
    expected = exact.vaswani(dim, base, n)
    assert_exact(freq.hi, freq.lo, expected, f"base {base} dim {dim}")


@pytest.mark.parametrize("preset", ["vaswani", "marian", "tensor2tensor", "fairseq", "whisper"])
@pytest.mark.parametrize("dim", [4, 9, 64, 1024])
def test_preset_plans_hold_the_exact_frequencies(preset, dim):
    if preset == "whisper" and dim % 2:
        dim += 1  # whisper takes even widths only
    plan = _frontdoor.encoding_plan(Encoding(dim, None, None, None, preset))
    assert_exact(plan.freq, plan.freq_lo, exact.preset_frequencies(preset, dim), preset)


def test_preset_parameters():
    for preset, params in [("tensor2tensor", {"min_timescale": 2.0, "max_timescale": 3e5}),
                           ("tensor2tensor", {"min_timescale": 0.1, "max_timescale": 7.0}),
                           ("fairseq", {"base": 1234.5}), ("whisper", {"max_timescale": 1e5})]:
        kwargs = dict(params)
        enc = Encoding(32, kwargs.pop("base", None), None, None, preset, None, kwargs.get("min_timescale"),
                       kwargs.get("max_timescale"))
        plan = _frontdoor.encoding_plan(enc)
        assert_exact(plan.freq, plan.freq_lo, exact.preset_frequencies(preset, 32, **params), f"{preset} {params}")


def test_inv_freq_is_exact_as_given():
    inv_freq = np.array([1.0, 0.1, 1e-7, 3.0])
    plan = _frontdoor.encoding_plan(Encoding(8, None, "concat", inv_freq))
    assert np.array_equal(plan.freq, inv_freq) and not plan.freq_lo.any()
    # with lo = 0, one position's rotation is libm's cos and sin of the frequency as given
    assert plan.step_cos.tolist() == [math.cos(w) for w in inv_freq.tolist()]
    assert plan.step_sin.tolist() == [math.sin(w) for w in inv_freq.tolist()]
    scaled = call_frequencies(8, None, 10000.0, None, inv_freq, None)
    freq, lo = scaled.freq, scaled.freq_lo
    assert np.array_equal(freq, inv_freq) and not lo.any()


def test_step_rotation_is_the_exact_frequency_rounded():
    """cos w and sin w of one position's step, rounded from hi + lo (to an ulp)."""
    plan = _frontdoor.encoding_plan(Encoding(64, 0.01, None, None))  # frequencies up to 100: lo matters
    with mpmath.workprec(exact.PRECISION):
        for k, w in enumerate(exact.vaswani(64, 0.01, 32)):
            assert abs(plan.step_cos[k] - float(mpmath.cos(w))) <= 2.3e-16
            assert abs(plan.step_sin[k] - float(mpmath.sin(w))) <= 2.3e-16


def _rope_exact(name, params, rdim, base, seq_len):
    scaled = call_frequencies(None, rdim, base, params, None, seq_len)
    freq, lo = scaled.freq, scaled.freq_lo
    assert_exact(freq, lo, exact.rope(params["rope_type"], rdim, base, params, seq_len), name)
    np.testing.assert_array_equal(fastpe.rope_inv_freq(rdim, base, params, seq_len=seq_len)[0], freq)


@pytest.mark.parametrize("rdim", [4, 64, 128])
def test_rope_scalings(rdim):
    base = 500000.0
    for name, params, seq_len in [
            ("default", {"rope_type": "default"}, None),
            ("linear", {"rope_type": "linear", "factor": 8.0}, None),
            ("linear 3", {"rope_type": "linear", "factor": 3.0}, None),
            ("dynamic past", {"rope_type": "dynamic", "factor": 2.0, "max_position_embeddings": 2048}, 10**9),
            ("dynamic below", {"rope_type": "dynamic", "factor": 2.0, "max_position_embeddings": 2048}, 100),
            ("yarn", {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 2048}, None),
            ("llama3", {**LLAMA3, "original_max_position_embeddings": 8192}, None),
            ("longrope long", longrope_parameters(rdim // 2, 3, factor=4.0), 5000),
            ("longrope short", longrope_parameters(rdim // 2, 3, factor=4.0), 10)]:
        _rope_exact(name, params, rdim, base, seq_len)


def test_llama3_has_all_three_bands():
    """The llama3 case above blends too: some frequencies in each band."""
    hi = fastpe.rope_inv_freq(128, 500000.0, {**LLAMA3, "original_max_position_embeddings": 8192})[0]
    plain = fastpe.rope_inv_freq(128, 500000.0)[0]
    unchanged, divided = hi == plain, np.isclose(hi, plain / 8.0, rtol=1e-15, atol=0)
    assert unchanged.any() and divided.any() and (~unchanged & ~divided).any()


def test_proportional():
    params = {"rope_type": "proportional", "partial_rotary_factor": 0.25, "factor": 3.0}
    scaled = call_frequencies(64, None, 10000.0, params, None, None)
    freq, lo = scaled.freq, scaled.freq_lo
    with mpmath.workprec(exact.PRECISION):
        expected = [w / 3 for w in exact.vaswani(64, 10000.0, 8)] + [mpmath.mpf(0)] * 24
    assert_exact(freq, lo, expected, "proportional")


def test_grid_frequencies():
    for q, base, denominator in [(16, 10000.0, 16), (16, 10000.0, 15), (1, 10000.0, 1), (256, 100.0, 256)]:
        freq = _formulas.grid_2d_frequencies(q, base, denominator)
        with mpmath.workprec(exact.PRECISION):
            expected = [1 / mpmath.mpf(base) ** (mpmath.mpf(k) / denominator) for k in range(q)]
        assert_exact(freq.hi, freq.lo, expected, f"grid {q} {base} {denominator}")
    freq = _formulas.tensor2tensor_frequencies(10, 1.0, 1e4, 9)
    expected = exact.log_increment(10, 1.0, lambda: mpmath.log(mpmath.mpf(1e4)), 9)
    assert_exact(freq.hi, freq.lo, expected, "n-D grid")


def test_absurd_bases_keep_a_float64_frequency():
    """Beyond the double-double's safe range the low parts are 0, hi within an ulp or two."""
    for dim, base in [(4, 1e300), (4, 1e-300), (64, 2.0**1000), (64, 2.0**-1000)]:
        freq = _formulas.vaswani_frequencies(dim, base, dim // 2)
        expected = exact.vaswani(dim, base, dim // 2)
        assert np.isfinite(freq.hi).all() and np.isfinite(freq.lo).all()
        np.testing.assert_allclose(freq.hi, [float(w) for w in expected], rtol=5e-16)


def test_empty_progressions():
    assert exp_progression(0, [(-2, 10000.0)], 0).hi.shape == (0,)
    assert _formulas.grid_2d_frequencies(0, 10000.0, 0).hi.shape == (0,)


finite = st.floats(1e-6, 1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=80, deadline=None)
@given(a=finite, b=finite, c=finite, dim=st.integers(2, 40), base=st.floats(1.01, 1e7))
def test_property_double_double_operations(a, b, c, dim, base):
    """times, divided, plus and product of exact powers stay within 2**-100 of the exact results."""
    w = _formulas.vaswani_frequencies(dim, base, 3)
    x = DoubleDouble(np.array([a, b, c]))
    with mpmath.workprec(exact.PRECISION):
        ws = exact.vaswani(dim, base, 3)
        xs = [mpmath.mpf(v) for v in (a, b, c)]
        for result, expected in [(w.times(np.array([a, b, c])), [u * v for u, v in zip(ws, xs)]),
                                 (w.divided(np.array([a, b, c])), [u / v for u, v in zip(ws, xs)]),
                                 (w.plus(x), [u + v for u, v in zip(ws, xs)]),
                                 (w.product(w), [u * u for u in ws])]:
            for h, lo, want in zip(result.hi, result.lo, expected):
                error = abs((mpmath.mpf(float(h)) + mpmath.mpf(float(lo)) - want) / want)
                assert error <= RELATIVE and abs(h - float(want)) <= math.ulp(float(want))
