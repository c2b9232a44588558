"""The accuracy contract of rotary angles over every accepted position (docs/contract.rst).

cos and sin of the angles (before any attention factor) are within 1e-9 of
mpmath's cos and sin of the float64 position as given times the exact
frequency of the scaling: base powers exact, products and quotients by the
scaling's float64 parameters exact, the blend weights of yarn and llama3 the
float64 values Hugging Face's expressions give (tests/helpers/exact.py
writes each rule out again). Checked through rotary_cos_sin, the compiled
fast path of a decode step (apply_rotary(q, k, offset=p), one token) and
the general path (explicit positions).

apply_rotary is checked on unit vectors: pair (1, 0) rotates to (cos, sin)
with no rounding of its own, so the result is the angle's cos and sin.

Measured on the development machine, largest error of any case here:
1.9e-14. Before the frequencies were kept to twice float64's precision, the
default scaling's cos/sin rows were 4.9e-8 off at 2**30, 5.2e-5 at 2**40,
0.049 at 2**50 and 0.39 at 2**53 - 8.
"""

import numpy as np
import pytest

import exact
import fastpe
from fastpe import _frontdoor
from rope_parameters import LLAMA3, longrope_parameters

BOUND = 1e-9
POSITIONS = [2**30, 2**40 + 77, 2**50 + 3, 2**53 - 8, 2**40 + 0.375, 2**31 + 0.5, -(2**50) - 3, -(2**31) - 0.25]
INTEGER_POSITIONS = [p for p in POSITIONS if float(p).is_integer()]
RDIM = 64
SCALINGS = {
    "default": {"rope_type": "default"},
    "linear": {"rope_type": "linear", "factor": 8.0},
    "dynamic": {"rope_type": "dynamic", "factor": 2.0, "max_position_embeddings": 2048},
    "yarn": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 2048},
    "longrope": longrope_parameters(RDIM // 2, 7, max_position_embeddings=4096),
    "llama3": LLAMA3,
}


def _exact_frequencies(name, base, positions):
    params = SCALINGS[name]
    seq_len = int(np.floor(max(positions))) + 1 if max(positions) >= 0 else 0  # HF's seq_len: largest + 1
    return exact.rope(params["rope_type"], RDIM, base, params, seq_len)


def _attention_factor(name, base, seq_len):
    return fastpe.rope_inv_freq(RDIM, base, SCALINGS[name], seq_len=seq_len)[1]


def _error(got, expected):
    return float(np.abs(got - expected).max())


@pytest.mark.parametrize("name", list(SCALINGS))
@pytest.mark.parametrize("p", POSITIONS)
def test_rotary_cos_sin_within_bound(p, name):
    base = 500000.0
    n = 2 if abs(p) < 2**53 - 2 else 1
    positions = [float(np.float64(p) + t) for t in range(n)]
    freqs = _exact_frequencies(name, base, positions)
    cos_exact, sin_exact = exact.cos_sin(positions, freqs)
    factor = _attention_factor(name, base, max(int(np.floor(positions[-1])) + 1, 0))
    cos, sin = fastpe.rotary_cos_sin(n, RDIM, offset=p, base=base, scaling=SCALINGS[name], dtype=np.float64)
    half = RDIM // 2
    for got, want in ((cos[:, :half], cos_exact), (sin[:, :half], sin_exact), (cos[:, half:], cos_exact)):
        assert _error(got / factor, want) <= BOUND, f"{name} at {p}: {_error(got / factor, want):.3g}"


def _unit_pairs(shape, half):
    """Vectors whose pair k is (1, 0) in the "half" layout: they rotate to (cos, sin)."""
    x = np.zeros(shape)
    x[..., :half] = 1.0
    return x


@pytest.mark.parametrize("name", ["default", "linear"])
@pytest.mark.parametrize("p", INTEGER_POSITIONS)
def test_decode_step_fast_path_within_bound(p, name):
    """apply_rotary(q, k, offset=p) with one token per sequence: the compiled fast path."""
    base, half = 10000.0, RDIM // 2
    q, k = _unit_pairs((1, 4, 1, RDIM), half), _unit_pairs((1, 2, 1, RDIM), half)
    before = _frontdoor.rotary_calls()
    fastpe.apply_rotary(q, k, offset=p, base=base, scaling=SCALINGS[name])
    assert _frontdoor.rotary_calls() == before + 1, "a decode step must take the fast path"
    cos_exact, sin_exact = exact.cos_sin([float(p)], _exact_frequencies(name, base, [p]))
    for a in (q, k):
        rows = a.reshape(-1, RDIM)
        assert _error(rows[:, :half], cos_exact) <= BOUND, f"{name} cos at {p}"
        assert _error(rows[:, half:], sin_exact) <= BOUND, f"{name} sin at {p}"


@pytest.mark.parametrize("name", ["default", "linear", "yarn", "llama3"])
def test_general_path_positions_within_bound(name):
    """Explicit positions of every magnitude in one call (interleaved layout)."""
    base = 10000.0
    positions = np.array([POSITIONS])  # (batch 1, T)
    x = np.zeros((1, 2, positions.shape[1], RDIM))
    x[..., 0::2] = 1.0  # interleaved pairs (2k, 2k + 1) = (1, 0)
    before = _frontdoor.rotary_calls()
    fastpe.apply_rotary(x, positions=positions, base=base, layout="interleaved", scaling=SCALINGS[name])
    assert _frontdoor.rotary_calls() == before
    freqs = _exact_frequencies(name, base, list(positions[0]))
    cos_exact, sin_exact = exact.cos_sin(list(positions[0]), freqs)
    factor = _attention_factor(name, base, int(np.floor(positions.max())) + 1)
    for head in range(2):
        assert _error(x[0, head, :, 0::2] / factor, cos_exact) <= BOUND, f"{name} cos"
        assert _error(x[0, head, :, 1::2] / factor, sin_exact) <= BOUND, f"{name} sin"


def test_proportional_within_bound():
    """proportional: base powers over the whole head, the rest 0 (not rotated), over factor."""
    head_dim, base, p = 64, 10000.0, 2**50 + 3
    params = {"rope_type": "proportional", "partial_rotary_factor": 0.5, "factor": 4.0}
    x = _unit_pairs((1, 1, 1, head_dim), head_dim // 2)
    fastpe.apply_rotary(x, offset=p, base=base, scaling=params)
    with exact.mpmath.workprec(exact.PRECISION):
        freqs = [w / 4 for w in exact.vaswani(head_dim, base, head_dim // 4)] + [exact.mpmath.mpf(0)] * (head_dim // 4)
    cos_exact, sin_exact = exact.cos_sin([float(p)], freqs)
    assert _error(x[0, 0, :, :head_dim // 2], cos_exact) <= BOUND
    assert _error(x[0, 0, :, head_dim // 2:], sin_exact) <= BOUND


@pytest.mark.parametrize("p", [2**40 + 77, 2**53 - 8, -(2**50) - 3])
def test_fast_and_general_paths_give_the_same_bits(p):
    """The fast path's cached cos/sin rows (a block of 256 positions) and the
    general path's table of the call's positions are the same rows."""
    q = np.random.default_rng(5).standard_normal((1, 4, 1, RDIM))
    fast, general = q.copy(), q.copy()
    before = _frontdoor.rotary_calls()
    fastpe.apply_rotary(fast, offset=p, scaling=SCALINGS["linear"])
    fastpe.apply_rotary(general, positions=np.array([[p]]), scaling=SCALINGS["linear"])
    assert _frontdoor.rotary_calls() == before + 1
    assert np.array_equal(fast, general)
