"""Hugging Face transformers 4.x configs, read as they are.

A 4.x config keeps its rope dict in ``rope_scaling`` (None without a
scaling) and ``rope_theta`` and ``partial_rotary_factor`` as attributes of
their own; it has no ``rope_parameters``. fastpe reads them as HF's
``_compute_*_parameters`` did (``config.rope_theta``, ``config.rope_scaling``,
``config.partial_rotary_factor``, ``config.max_position_embeddings``), which
is what transformers 5 computes from the same values (its
``standardize_rope_params`` moves them into ``rope_parameters``). The
comparison with transformers' own rotary is in
conformance/test_conformance_rotary.py.
"""

from types import SimpleNamespace

import numpy as np
import pytest

import fastpe
from rope_parameters import as_rope_parameters, hf4_configs
from util import rng_for

CASES = hf4_configs()


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_4x_config_reads_as_its_5x_form(name):
    """The 4.x config and the same values in 5.x's shape give the same
    frequencies, attention factor and rotation, bit for bit."""
    old = SimpleNamespace(**CASES[name])
    new = SimpleNamespace(**as_rope_parameters(CASES[name]))
    for seq_len in (None, 40, 300):
        got, got_factor = fastpe.rope_inv_freq(None, scaling=old, seq_len=seq_len)
        want, want_factor = fastpe.rope_inv_freq(None, scaling=new, seq_len=seq_len)
        np.testing.assert_array_equal(got, want)
        assert got_factor == want_factor
    head_dim = getattr(old, "head_dim", None) or old.hidden_size // old.num_attention_heads
    q = rng_for("hf4", name).standard_normal((2, 4, 8, head_dim)).astype(np.float32)
    positions = np.stack([np.arange(8) + 5, np.arange(8) + 280])
    for module in (fastpe, fastpe.reference):
        np.testing.assert_array_equal(module.apply_rotary(q.copy(), positions=positions, scaling=old),
                                      module.apply_rotary(q.copy(), positions=positions, scaling=new))


def test_regression_4x_rope_theta_is_read():
    """A 4.x config's rope_theta fell back to 10000 while its rope_scaling was
    read: the frequencies are theta ** (-2k / d), written out here."""
    cfg = SimpleNamespace(hidden_size=256, num_attention_heads=4, max_position_embeddings=2048,
                          rope_theta=500000.0, rope_scaling={"type": "linear", "factor": 4.0})
    inv_freq, attention_factor = fastpe.rope_inv_freq(None, scaling=cfg)
    k = np.arange(32, dtype=np.float64)
    np.testing.assert_allclose(inv_freq, 500000.0 ** (-2 * k / 64) / 4.0, rtol=1e-15, atol=0)
    assert attention_factor == 1.0
    cos, sin = fastpe.rotary_cos_sin(3, 64, offset=1000, scaling=cfg, dtype=np.float64)
    np.testing.assert_allclose(cos[2, :32], np.cos(1002 * 500000.0 ** (-2 * k / 64) / 4.0), rtol=0, atol=1e-12)


def test_4x_config_without_a_scaling():
    """rope_scaling=None, or no rope_scaling attribute at all: the default
    rope at the config's rope_theta, over its head width."""
    k = np.arange(16, dtype=np.float64)
    expected = 123456.0 ** (-2 * k / 32)
    for cfg in (SimpleNamespace(hidden_size=128, num_attention_heads=4, rope_theta=123456.0, rope_scaling=None),
                SimpleNamespace(hidden_size=128, num_attention_heads=4, rope_theta=123456.0)):
        inv_freq, _ = fastpe.rope_inv_freq(None, scaling=cfg)
        np.testing.assert_allclose(inv_freq, expected, rtol=1e-15, atol=0)


def test_4x_config_rope_scaling_must_be_a_dict():
    cfg = SimpleNamespace(hidden_size=128, num_attention_heads=4, rope_theta=1e4, rope_scaling=["linear", 2.0])
    with pytest.raises(TypeError, match="scaling.rope_scaling must be a dict"):
        fastpe.apply_rotary(np.zeros((1, 4, 32)), scaling=cfg)


def test_rope_parameters_wins_over_rope_scaling():
    """A config with both (transformers 5 may keep a legacy rope_scaling beside them) is read from rope_parameters."""
    cfg = SimpleNamespace(hidden_size=128, num_attention_heads=4, rope_theta=1.0,
                          rope_parameters={"rope_type": "default", "rope_theta": 5000.0},
                          rope_scaling={"type": "linear", "factor": 8.0})
    inv_freq, _ = fastpe.rope_inv_freq(None, scaling=cfg)
    np.testing.assert_allclose(inv_freq, 5000.0 ** (-2 * np.arange(16) / 32), rtol=1e-15, atol=0)
