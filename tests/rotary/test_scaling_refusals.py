"""Scalings fastpe cannot apply exactly as the model does are refused, never
guessed: a rope_parameters with one dict per layer type (Gemma 3), and a
partial_rotary_factor where the arrays could be whole heads or the rotary
channels alone (Phi slices those off before rotating). The right calls give
the rotation of frequencies written out here. Configs are duck-typed (no
transformers); the real models are in conformance/test_conformance_rotary.py
and hf/.
"""

from types import SimpleNamespace

import numpy as np
import pytest
from util import assert_unchanged, assert_within, rng_for, snapshot

import fastpe
from fastpe import reference

GEMMA3_LAYERS = {"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                 "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0}}
PHI_PARAMETERS = {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5}
IMPLEMENTATIONS = [fastpe, reference]


def _gemma3():
    return SimpleNamespace(head_dim=16, hidden_size=64, num_attention_heads=4, max_position_embeddings=4096,
                           rope_parameters={k: dict(v) for k, v in GEMMA3_LAYERS.items()},
                           layer_types=["sliding_attention", "full_attention"])


def _phi():
    # head_dim 32 (64 // 2), rotary width int(32 * 0.5) = 16
    return SimpleNamespace(hidden_size=64, num_attention_heads=2, max_position_embeddings=2048,
                           rope_parameters=dict(PHI_PARAMETERS))


def _frequencies(width, theta, factor=1.0):
    return np.array([theta ** (-2.0 * k / width) / factor for k in range(width // 2)])


def _refused(impl, match, *arrays, **kwargs):
    snaps = snapshot(*arrays)
    with pytest.raises(ValueError, match=match):
        impl.apply_rotary(*arrays, **kwargs)
    assert_unchanged(snaps, f"{impl.__name__}: a refused call wrote")


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda m: m.__name__)
def test_per_layer_type_config_is_refused(impl):
    """Read as plain RoPE with theta 1e4 for every layer, a Gemma 3 config put the full-attention
    layers' logits 0.76 off (the only sign: a warning about ignored keys)."""
    rng = rng_for("gemma3-refused")
    q, k = rng.standard_normal((2, 1, 4, 6, 16))
    match = (r"one rope dict per layer type \('sliding_attention', 'full_attention'\).*choose a layer type: "
             r"pass scaling=dict\(config.rope_parameters\['full_attention'\], "
             r"max_position_embeddings=config.max_position_embeddings\)")
    _refused(impl, match, q, k, scaling=_gemma3())
    _refused(impl, match, q, k, scaling=_gemma3().rope_parameters)
    with pytest.raises(ValueError, match=match):
        impl.rotary_cos_sin(6, 16, scaling=_gemma3())
    with pytest.raises(ValueError, match=match):
        fastpe.rope_inv_freq(None, scaling=_gemma3())


@pytest.mark.parametrize("layer_type,theta,factor", [("sliding_attention", 1e4, 1.0),
                                                     ("full_attention", 1e6, 8.0)])
def test_one_layer_type_dict_rotates_as_that_layer(layer_type, theta, factor):
    cfg = _gemma3()
    rng = rng_for("gemma3-layer", layer_type)
    q = rng.standard_normal((2, 4, 6, 16))
    positions = np.stack([np.arange(6) + 40, np.arange(6)])
    scaling = dict(cfg.rope_parameters[layer_type], max_position_embeddings=cfg.max_position_embeddings)
    got = fastpe.apply_rotary(q.copy(), positions=positions, scaling=scaling)
    expected = reference.apply_rotary(q.copy(), positions=positions, inv_freq=_frequencies(16, theta, factor))
    assert_within(got, expected, 1e-12, layer_type)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda m: m.__name__)
def test_partial_factor_in_a_dict_on_ambiguous_arrays_is_refused(impl):
    """Phi's attention passes the 16 rotary channels of its 32-channel heads alone; with
    scaling=config.rope_parameters they rotated as int(16 * 0.5) = 8 channels of a whole head
    (the factor applied twice: Phi's logits were off by 8.7). A dict cannot tell the two apart."""
    rng = rng_for("phi-ambiguous")
    q, k = rng.standard_normal((2, 1, 2, 5, 16))
    _refused(impl, r"scaling\['partial_rotary_factor'\]=0.5 in a dict, on arrays of 16 channels.*pass "
                   r"rotary_dim=8 \(whole heads\) or rotary_dim=16 \(the arrays hold the rotary channels alone\), "
                   r"or pass the model's config", q, k, scaling=PHI_PARAMETERS)
    _refused(impl, r"rotary_dim=4 disagrees with scaling, which rotates 8 channels.*pass rotary_dim=8 or "
                   r"rotary_dim=16", q, k, scaling=PHI_PARAMETERS, rotary_dim=4)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda m: m.__name__)
def test_rotary_channels_alone_all_rotate(impl):
    rng = rng_for("phi-alone")
    alone = rng.standard_normal((2, 2, 5, 16))
    positions = np.stack([np.arange(5) + 100, np.arange(5)])
    expected = reference.apply_rotary(alone.copy(), positions=positions, inv_freq=_frequencies(16, 1e4))
    for label, kwargs in (("the config", {"scaling": _phi()}),
                          ("the dict and rotary_dim", {"scaling": PHI_PARAMETERS, "rotary_dim": 16}),
                          ("the config and rotary_dim", {"scaling": _phi(), "rotary_dim": 16})):
        got = impl.apply_rotary(alone.copy(), positions=positions, **kwargs)
        assert_within(got, expected, 1e-12, f"{impl.__name__}: {label}")


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda m: m.__name__)
def test_whole_heads_rotate_their_first_rotary_channels(impl):
    rng = rng_for("phi-whole")
    heads = rng.standard_normal((2, 2, 5, 32))
    positions = np.stack([np.arange(5) + 100, np.arange(5)])
    expected = reference.apply_rotary(heads.copy(), positions=positions, inv_freq=_frequencies(16, 1e4),
                                      rotary_dim=16)
    assert np.array_equal(expected[..., 16:], heads[..., 16:])
    for label, kwargs in (("the config", {"scaling": _phi()}),
                          ("the dict and rotary_dim", {"scaling": PHI_PARAMETERS, "rotary_dim": 16})):
        got = impl.apply_rotary(heads.copy(), positions=positions, **kwargs)
        assert_within(got, expected, 1e-12, f"{impl.__name__}: {label}")


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda m: m.__name__)
def test_config_refuses_arrays_of_another_width(impl):
    q = rng_for("phi-width").standard_normal((1, 2, 5, 24))
    _refused(impl, "the arrays have 24 channels but the config's head width is 32 .* and its rotary width 16",
             q, scaling=_phi())


def test_factors_that_do_not_narrow_need_no_rotary_dim():
    """A factor of 1 (Phi-3's configs carry one), and proportional's factor (it spans the whole head), leave
    nothing to tell apart."""
    rng = rng_for("prf-one")
    q = rng.standard_normal((1, 2, 5, 16))
    full = {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 1.0}
    assert_within(fastpe.apply_rotary(q.copy(), scaling=full), fastpe.apply_rotary(q.copy()), 0.0, "factor 1")
    proportional = {"rope_type": "proportional", "rope_theta": 10000.0, "partial_rotary_factor": 0.5}
    inv = fastpe.rope_inv_freq(16, scaling=proportional)[0]
    assert_within(fastpe.apply_rotary(q.copy(), scaling=proportional),
                  reference.apply_rotary(q.copy(), inv_freq=inv), 1e-12, "proportional")


def test_rotary_cos_sin_with_a_dict_takes_rotary_dim_as_the_rotary_width():
    """Without arrays there is nothing to tell apart: the tables are as wide as asked."""
    cos, sin = fastpe.rotary_cos_sin(5, 16, offset=3, scaling=PHI_PARAMETERS, dtype=np.float64)
    angles = (3 + np.arange(5))[:, None] * np.tile(_frequencies(16, 1e4), 2)
    # The contract's error budget at these positions (docs/contract.rst): the seed within 7e-15 and at
    # most 7 rotations of 7e-16 each, plus the expected values' own roundings. (Regression: a flat 1e-15
    # failed with NumPy 1.24 on an AVX-512 CPU, where fastpe's values were 1e-15 from the exact ones
    # and NumPy's 2e-16: within the budget, whose cos w_k and sin w_k come from NumPy's vector loops.)
    tol = 7e-15 + 7 * 7e-16 + 4 * np.spacing(1.0)
    assert_within(cos, np.cos(angles), tol, "cos")
    assert_within(sin, np.sin(angles), tol, "sin")
