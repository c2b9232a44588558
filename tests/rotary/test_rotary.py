"""apply_rotary and rotary_cos_sin: kernel vs the NumPy reference over layouts,
dtypes, grouped-query head counts, sequence axes, offsets and positions,
strided and out= arrays; the reference against an independent complex
multiplication; the float32 accuracy bound at large positions; bad input. (Hugging Face's
apply_rotary_pos_emb: conformance/test_conformance_rotary.py.)"""

import cmath
import math

import numpy as np
import pytest
from rotary_cases import rotary_kwargs, rotary_tolerance
from util import DTYPES, array_variants, assert_unchanged, assert_within, rng_for, snapshot

import fastpe
from fastpe import reference

LAYOUTS = ("half", "interleaved")


CASES = [
    # (q shape, k shape or None, seq_axis, kwargs)
    ((2, 8, 33, 64), (2, 2, 33, 64), -2, {"offset": np.array([0, 7])}),
    ((2, 33, 8, 64), (2, 33, 2, 64), -3, {"positions": "BT"}),
    ((1, 4, 17, 32), None, -2, {"offset": 5.5}),
    ((3, 2, 21, 48), (3, 2, 21, 48), -2, {"positions": "T", "rotary_dim": 32}),
    ((2, 600, 4, 64), (2, 600, 1, 64), -3, {"offset": np.array([3, 100])}),     # threaded
    ((17, 16), None, 0, {"offset": 2}),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", range(len(CASES)))
def test_apply_rotary_matches_reference(dtype, layout, case):
    qshape, kshape, seq_axis, kw = CASES[case]
    rng = rng_for("rotary", case, layout, np.dtype(dtype).name)
    kw = rotary_kwargs(kw, qshape, seq_axis, rng)
    kinds = None  # every memory layout the generator has: C, F, transposed, strided, reversed views
    for label, q in array_variants(qshape, dtype, rng, kinds=kinds):
        arrays = [q] if kshape is None else [q, rng.standard_normal(kshape).astype(dtype)]
        before = [a.copy() for a in arrays]
        expected = reference.apply_rotary(*[b.copy() for b in before], layout=layout, seq_axis=seq_axis, **kw)
        got = fastpe.apply_rotary(*arrays, layout=layout, seq_axis=seq_axis, **kw)
        expected = expected if isinstance(expected, tuple) else (expected,)
        got = got if isinstance(got, tuple) else (got,)
        for g, e, a in zip(got, expected, arrays):
            assert g is a
            assert_within(g, e, rotary_tolerance(dtype, e), f"{layout} {label} q{qshape} {kw}")
        r = kw.get("rotary_dim")
        if r is not None:
            for a, b in zip(arrays, before):
                assert np.array_equal(a[..., r:], b[..., r:]), "channels past rotary_dim must stay untouched"


def test_reference_against_complex_rotation():
    """Interleaved RoPE is multiplication of (x[2k] + i x[2k+1]) by exp(i p w_k)."""
    rng = rng_for("rotary-complex")
    x = rng.standard_normal((3, 10, 8))
    positions = [0, 1, 5, 1000, 4096, 2**20, -3, 7.5, 12, 100]
    got = reference.apply_rotary(x.copy(), positions=np.array(positions), layout="interleaved", base=500.0)
    for b in range(3):
        for t, p in enumerate(positions):
            for k in range(4):
                w = math.pow(500.0, -2 * k / 8)
                z = complex(x[b, t, 2 * k], x[b, t, 2 * k + 1]) * cmath.exp(1j * p * w)
                assert abs(got[b, t, 2 * k] - z.real) < 2e-9 and abs(got[b, t, 2 * k + 1] - z.imag) < 2e-9


@pytest.mark.parametrize("layout", LAYOUTS)
def test_float32_within_4_ulp_of_float64_at_large_positions(layout):
    """Angles in float64: float32 results stay within 4 ulp (of |x|) of a float64
    rotation from the same frequencies, for positions up to 2**20."""
    rng = rng_for("rotary-ulp", layout)
    x = rng.standard_normal((2, 4, 64, 128)).astype(np.float32)
    positions = np.concatenate([np.arange(32), 2**20 - np.arange(32)])
    got = fastpe.apply_rotary(x.copy(), positions=positions, layout=layout)
    expected = reference.apply_rotary(x.astype(np.float64), positions=positions, layout=layout)
    ulp = np.spacing(np.maximum(np.abs(expected), np.abs(x)).astype(np.float32)).astype(np.float64)
    assert_within(got, expected, 4 * ulp, f"float32 {layout} up to 2**20")


def test_out_leaves_inputs_and_copies_untouched_channels():
    rng = rng_for("rotary-out")
    q = rng.standard_normal((2, 3, 9, 12))
    k = rng.standard_normal((2, 1, 9, 12))
    q0, k0 = q.copy(), k.copy()
    outs = (np.full_like(q, np.nan), np.full_like(k, np.nan))
    got = fastpe.apply_rotary(q, k, rotary_dim=8, out=outs, offset=4)
    assert got[0] is outs[0] and got[1] is outs[1]
    assert np.array_equal(q, q0) and np.array_equal(k, k0)
    exp = reference.apply_rotary(q0.copy(), k0.copy(), rotary_dim=8, offset=4)
    for g, e in zip(got, exp):
        assert_within(g, e, rotary_tolerance(np.float64, e), "out=")


def test_out_partially_overlapping_input():
    rng = rng_for("rotary-overlap")
    buf = rng.standard_normal((2, 11, 8))
    x, out = buf[:, :-1], buf[:, 1:]
    expected = reference.apply_rotary(x.copy(), offset=1)
    got = fastpe.apply_rotary(x, offset=1, out=[out])
    assert_within(got, expected, rotary_tolerance(np.float64, expected), "overlapping out")


def test_rotary_cos_sin_layouts():
    for layout in LAYOUTS:
        c, s = fastpe.rotary_cos_sin(40, 16, offset=3, layout=layout, dtype=np.float64)
        rc, rs = reference.rotary_cos_sin(40, 16, offset=3, layout=layout, dtype=np.float64)
        assert_within(c, rc, 1e-12, f"cos {layout}")
        assert_within(s, rs, 1e-12, f"sin {layout}")
    c, _ = fastpe.rotary_cos_sin(5, 8, dtype=np.float64)
    assert np.array_equal(c[:, :4], c[:, 4:]), "half: the frequencies repeat in both halves"
    c, _ = fastpe.rotary_cos_sin(5, 8, layout="interleaved", dtype=np.float64)
    assert np.array_equal(c[:, 0::2], c[:, 1::2]), "interleaved: each frequency twice, adjacent"
    angles = np.arange(5)[:, None] * 10000.0 ** (-np.arange(4) * 2 / 8)
    assert_within(c[:, 0::2], np.cos(angles), 1e-12, "cos values")


BAD = [
    ("no-arrays", TypeError, "at least one", lambda x: fastpe.apply_rotary()),
    ("odd-rotary-dim", ValueError, "rotary_dim", lambda x: fastpe.apply_rotary(x, rotary_dim=5)),
    ("odd-width", ValueError, "rotary_dim", lambda x: fastpe.apply_rotary(x[..., :7])),
    ("rotary-dim-too-wide", ValueError, "rotary_dim", lambda x: fastpe.apply_rotary(x, rotary_dim=10)),
    ("layout", ValueError, "layout", lambda x: fastpe.apply_rotary(x, layout="neox")),
    ("seq-axis-channel", ValueError, "seq_axis", lambda x: fastpe.apply_rotary(x, seq_axis=-1)),
    ("seq-axis-range", ValueError, "seq_axis", lambda x: fastpe.apply_rotary(x, seq_axis=9)),
    ("length-mismatch", ValueError, "sequence length", lambda x: fastpe.apply_rotary(x, x[:, :, :5].copy())),
    ("dtype-mismatch", TypeError, "dtype", lambda x: fastpe.apply_rotary(x, x.astype(np.float32))),
    ("offset-shape", ValueError, "offset", lambda x: fastpe.apply_rotary(x, offset=np.zeros(5))),
    ("positions-shape", ValueError, "positions", lambda x: fastpe.apply_rotary(x, positions=np.zeros(4))),
    ("positions-nan", ValueError, "positions", lambda x: fastpe.apply_rotary(x, positions=np.full(6, np.nan))),
    ("offset-with-positions", ValueError, "offset", lambda x: fastpe.apply_rotary(x, offset=1, positions=np.arange(6))),
    ("inv-freq-length", ValueError, "inv_freq", lambda x: fastpe.apply_rotary(x, inv_freq=np.ones(3))),
    ("base", ValueError, "base", lambda x: fastpe.apply_rotary(x, base=-1.0)),
    ("read-only", ValueError, "arrays", lambda x: fastpe.apply_rotary(np.broadcast_to(x, x.shape))),
    ("int-array", TypeError, "arrays", lambda x: fastpe.apply_rotary(x.astype(np.int64))),
    ("out-count", ValueError, "out", lambda x: fastpe.apply_rotary(x, out=[])),
    ("out-shape", ValueError, "out", lambda x: fastpe.apply_rotary(x, out=[np.zeros((2, 3))])),
    ("num-threads", ValueError, "num_threads", lambda x: fastpe.apply_rotary(x, num_threads=0)),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_rotary_input_raises_and_writes_nothing(case):
    _, exc, match, call = case
    x = rng_for("rotary-bad", case[0]).standard_normal((2, 3, 6, 8))
    snaps = snapshot(x)
    with pytest.raises(exc, match=match):
        call(x)
    assert_unchanged(snaps, case[0])


SCALINGS = [
    {"rope_type": "linear", "factor": 4.0},
    {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
     "original_max_position_embeddings": 256},
    {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 256},
    {"rope_type": "dynamic", "factor": 2.0, "max_position_embeddings": 64},
    {"rope_type": "longrope", "long_factor": [1.5] * 16, "short_factor": [1.0] * 16,
     "original_max_position_embeddings": 64, "max_position_embeddings": 256, "rope_theta": 5e5},
]


@pytest.mark.parametrize("scaling", SCALINGS, ids=[s["rope_type"] for s in SCALINGS])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_apply_rotary_with_scaling(scaling, dtype):
    """With scaling, the frequencies and attention factor come from
    rope_inv_freq (checked against HF in conformance/test_conformance_rope_scaling.py); the rotation
    must use them, and the attention factor scales cos and sin."""
    rng = rng_for("rotary-scaling", scaling["rope_type"], np.dtype(dtype).name)
    q = rng.standard_normal((2, 4, 100, 32)).astype(dtype)
    expected = reference.apply_rotary(q.copy(), scaling=scaling, offset=np.array([0, 30]))
    got = fastpe.apply_rotary(q, scaling=scaling, offset=np.array([0, 30]))
    assert_within(got, expected, rotary_tolerance(dtype, expected), f"scaling {scaling}")
    # independent check of the reference: rotate with rope_inv_freq's output by hand
    freq, factor = fastpe.rope_inv_freq(32, scaling=scaling, seq_len=130)
    x = q.astype(np.float64) if dtype == np.float64 else None
    if x is not None:
        x0 = rng_for("rotary-scaling", scaling["rope_type"], np.dtype(dtype).name).standard_normal((2, 4, 100, 32))
        pos = np.array([0, 30])[:, None, None] + np.arange(100)[None, None, :]
        ang = pos[..., None] * freq
        c, s = np.cos(ang) * factor, np.sin(ang) * factor
        manual = x0.copy()
        manual[..., :16] = x0[..., :16] * c - x0[..., 16:] * s
        manual[..., 16:] = x0[..., 16:] * c + x0[..., :16] * s
        assert_within(expected, manual, 1e-12 * (1 + np.abs(manual)), "reference vs a hand rotation")
