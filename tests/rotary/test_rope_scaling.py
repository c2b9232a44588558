"""fastpe.rope_inv_freq: RoPE frequencies and attention factors,
checked against the formulas written out here (no outside library; the
comparison with Hugging Face transformers is in
conformance/test_conformance_rope_scaling.py).
"""

import math

import numpy as np
import pytest

import exact
from fastpe._rotary import rope_inv_freq
from rope_parameters import LLAMA3, longrope_parameters

# ------------------------------------------------------------ independent checks

@pytest.mark.parametrize("dim", [2, 8, 64, 96, 128])
@pytest.mark.parametrize("base", [10000.0, 500000.0, 1.5])
def test_default_is_base_power(dim, base):
    """The exact power, correctly rounded (math.pow rounds -2k/dim first: a few ulps off)."""
    inv, att = rope_inv_freq(dim, base)
    expected = [float(w) for w in exact.vaswani(dim, base, dim // 2)]
    np.testing.assert_array_equal(inv, expected)
    assert att == 1.0 and inv.flags.c_contiguous
    same, _ = rope_inv_freq(dim, 3.0, {"rope_type": "default", "rope_theta": base})
    np.testing.assert_array_equal(same, inv)


@pytest.mark.parametrize("factor", [0.5, 2, 8.0])
def test_linear_is_default_over_factor(factor):
    inv, att = rope_inv_freq(128, 500000.0, {"rope_type": "linear", "factor": factor})
    np.testing.assert_array_equal(inv, rope_inv_freq(128, 500000.0)[0] / factor)
    assert att == 1.0


def test_llama3_piecewise_by_hand():
    # dim 8, base 100: w = 1, 10**-0.5, 0.1, 10**-1.5; wavelengths 2pi/w = 6.28, 19.87, 62.83, 198.7
    # original 256, low 1, high 8 -> low_freq_wavelen 256, high_freq_wavelen 32
    p = {"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0, "high_freq_factor": 8.0,
         "original_max_position_embeddings": 256}
    inv, att = rope_inv_freq(8, 100.0, p)
    w = [1.0, 10 ** -0.5, 0.1, 10 ** -1.5]
    smooth = [(256 / (2 * math.pi / w[k]) - 1.0) / (8.0 - 1.0) for k in (2, 3)]
    expected = [w[0], w[1]] + [(1 - s) * w[k] / 4.0 + s * w[k] for s, k in zip(smooth, (2, 3))]
    np.testing.assert_allclose(inv, expected, rtol=1e-15)
    # now make the lowest frequency's wavelength exceed low_freq_wavelen: divided by factor
    inv2, _ = rope_inv_freq(8, 100.0, {**p, "original_max_position_embeddings": 150})
    assert inv2[3] == pytest.approx(w[3] / 4.0, rel=1e-15)
    assert inv2[0] == w[0]
    assert att == 1.0


def test_dynamic_by_hand():
    p = {"rope_type": "dynamic", "factor": 2.0, "max_position_embeddings": 1000}
    default = rope_inv_freq(64, 10000.0)[0]
    for seq_len in (None, 0, 500, 1000):
        np.testing.assert_allclose(rope_inv_freq(64, 10000.0, p, seq_len=seq_len)[0], default, rtol=1e-15)
    base = 10000.0 * math.pow(2.0 * 3000 / 1000 - 1.0, 64 / 62)
    expected = [math.pow(base, -2 * k / 64) for k in range(32)]
    inv, att = rope_inv_freq(64, 10000.0, p, seq_len=3000)
    np.testing.assert_allclose(inv, expected, rtol=1e-14)
    assert att == 1.0


YARN = {"rope_type": "yarn", "factor": 16.0, "original_max_position_embeddings": 4096}


def test_yarn_attention_factor_formulas():
    def af(**kw):
        return rope_inv_freq(128, 10000.0, {**YARN, **kw})[1]
    ln = math.log(16.0)
    assert af() == pytest.approx(0.1 * ln + 1.0, rel=1e-15)
    assert af(mscale=0.707, mscale_all_dim=0.8) == pytest.approx((0.1 * 0.707 * ln + 1) / (0.1 * 0.8 * ln + 1), rel=1e-15)
    assert af(mscale=1.0, mscale_all_dim=1.0) == 1.0
    # a lone mscale (or a zero one) is ignored, as in HF
    assert af(mscale=0.707) == af() == af(mscale=0.0, mscale_all_dim=1.0)
    assert af(attention_factor=0.9) == 0.9
    assert af(factor=1.0) == 1.0 and af(factor=0.5) == 1.0
    # factor None: max_position_embeddings / original_max_position_embeddings
    assert af(factor=None, max_position_embeddings=4 * 4096) == pytest.approx(0.1 * math.log(4) + 1, rel=1e-15)


def test_yarn_frequencies_structure():
    dim, base = 128, 10000.0
    inv, _ = rope_inv_freq(dim, base, YARN)
    default = rope_inv_freq(dim, base)[0]

    def corr(rot):
        return dim * math.log(4096 / (rot * 2 * math.pi)) / (2 * math.log(base))
    low, high = math.floor(corr(32)), math.ceil(corr(1))
    np.testing.assert_array_equal(inv[:low + 1], default[:low + 1])          # extrapolated
    np.testing.assert_allclose(inv[high:], default[high:] / 16.0, rtol=1e-15)  # interpolated
    k = np.arange(low + 1, high)
    ramp = (k - low) / (high - low)
    np.testing.assert_allclose(inv[k], default[k] / 16 * ramp + default[k] * (1 - ramp), rtol=1e-15)
    # truncate absent means True; False and None (HF's `if truncate:`) do not round the range
    untrunc, _ = rope_inv_freq(dim, base, {**YARN, "truncate": False})
    assert not np.array_equal(untrunc, inv)
    np.testing.assert_array_equal(rope_inv_freq(dim, base, {**YARN, "truncate": None})[0], untrunc)
    np.testing.assert_array_equal(rope_inv_freq(dim, base, {**YARN, "truncate": True})[0], inv)


def test_longrope_switch_and_attention_factor():
    n = 32
    long_f, short_f = [2.0 + k for k in range(n)], [1.0 + 0.01 * k for k in range(n)]
    p = {"rope_type": "longrope", "long_factor": long_f, "short_factor": short_f,
         "original_max_position_embeddings": 4096, "max_position_embeddings": 131072}
    default = rope_inv_freq(64, 10000.0)[0]
    for seq_len in (None, 0, 1, 4096):
        np.testing.assert_allclose(rope_inv_freq(64, 10000.0, p, seq_len=seq_len)[0], default / short_f, rtol=1e-15)
    inv, att = rope_inv_freq(64, 10000.0, p, seq_len=4097)
    np.testing.assert_allclose(inv, default / long_f, rtol=1e-15)
    # factor absent: 131072 / 4096 = 32
    assert att == pytest.approx(math.sqrt(1 + math.log(32) / math.log(4096)), rel=1e-15)
    assert rope_inv_freq(64, 10000.0, {**p, "factor": 4.0})[1] == pytest.approx(
        math.sqrt(1 + math.log(4) / math.log(4096)), rel=1e-15)
    assert rope_inv_freq(64, 10000.0, {**p, "factor": 1.0})[1] == 1.0
    assert rope_inv_freq(64, 10000.0, {**p, "attention_factor": 1.5})[1] == 1.5


def test_partial_rotary_factor_and_keys():
    inv, _ = rope_inv_freq(80, 10000.0, {"rope_type": "default", "partial_rotary_factor": 0.4})
    assert inv.shape == (16,)  # int(80 * 0.4) = 32 rotary columns
    np.testing.assert_allclose(inv, [math.pow(10000.0, -2 * k / 32) for k in range(16)], rtol=4e-16)
    # legacy `type`; `rope_type` wins when both are present (HF's standardize_rope_params)
    a = rope_inv_freq(64, scaling={"type": "linear", "factor": 2.0})[0]
    b = rope_inv_freq(64, scaling={"rope_type": "linear", "type": "dynamic", "factor": 2.0})[0]
    np.testing.assert_array_equal(a, b)
    # keys the rope type does not use warn, naming them (HF's validate_rope logs them); the dict is not modified
    p = {"rope_type": "linear", "factor": 2.0, "mrope_section": [16, 24, 24], "whatever": object()}
    before = dict(p)
    with pytest.warns(UserWarning, match="'mrope_section', 'whatever'"):
        np.testing.assert_array_equal(rope_inv_freq(64, scaling=p)[0], a)
    assert p == before
    # rope_theta None means `base`
    np.testing.assert_array_equal(rope_inv_freq(64, 500.0, {"rope_theta": None})[0], rope_inv_freq(64, 500.0)[0])
    # numpy integers and scalars are accepted
    np.testing.assert_array_equal(rope_inv_freq(np.int64(64), np.float32(500.0))[0], rope_inv_freq(64, 500.0)[0])


# ---------------------------------------------------------------------- errors

def _raises(exc, match, *args, **kwargs):
    with pytest.raises(exc, match=match):
        rope_inv_freq(*args, **kwargs)


@pytest.mark.parametrize("dim,exc", [(7, ValueError), (0, ValueError), (-4, ValueError), (64.0, TypeError),
                                     (True, TypeError), ("64", TypeError), (None, TypeError)])
def test_bad_dim(dim, exc):
    _raises(exc, "dim", dim)


@pytest.mark.parametrize("base,exc", [(0.0, ValueError), (-1.0, ValueError), (float("inf"), ValueError),
                                      (float("nan"), ValueError), ("1e4", TypeError), (None, TypeError)])
def test_bad_base(base, exc):
    _raises(exc, "base", 64, base)


@pytest.mark.parametrize("seq_len,exc", [(-1, ValueError), (10.0, TypeError), (True, TypeError)])
def test_bad_seq_len(seq_len, exc):
    _raises(exc, "seq_len", 64, seq_len=seq_len)


def test_bad_scaling_and_rope_type():
    _raises(TypeError, "scaling", 64, scaling=[("rope_type", "linear")])
    for rt in ("mrope", "axial", None, 3):
        _raises(ValueError, "rope_type.*'default', 'linear', 'dynamic', 'yarn', 'longrope', 'llama3', 'proportional'",
                64, scaling={"rope_type": rt})
    _raises(ValueError, r"\['type'\].*'llama3'", 64, scaling={"type": "ntk"})


LR = {"rope_type": "longrope", "long_factor": [2.0] * 32, "short_factor": [1.0] * 32,
      "original_max_position_embeddings": 4096, "factor": 8.0}
L3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
      "original_max_position_embeddings": 8192}
DYN = {"rope_type": "dynamic", "factor": 2.0, "max_position_embeddings": 2048}


def _without(d, key):
    return {k: v for k, v in d.items() if k != key}


@pytest.mark.parametrize("params,key", [
    ({"rope_type": "linear"}, "factor"),
    ({"rope_type": "linear", "factor": None}, "factor"),
    (_without(DYN, "factor"), "factor"),
    (_without(DYN, "max_position_embeddings"), "max_position_embeddings"),
    ({"rope_type": "yarn", "factor": 4.0}, "original_max_position_embeddings"),
    ({"rope_type": "yarn", "original_max_position_embeddings": 4096}, "factor"),
    (_without(LR, "long_factor"), "long_factor"),
    (_without(LR, "short_factor"), "short_factor"),
    (_without(LR, "factor"), "factor"),
    (_without(LR, "original_max_position_embeddings"), "original_max_position_embeddings"),
    (_without(L3, "factor"), "factor"),
    (_without(L3, "low_freq_factor"), "low_freq_factor"),
    (_without(L3, "high_freq_factor"), "high_freq_factor"),
    (_without(L3, "original_max_position_embeddings"), "original_max_position_embeddings"),
])
def test_missing_keys(params, key):
    _raises(ValueError, f"'{key}'.*required", 64, scaling=params)


@pytest.mark.parametrize("params,key,exc", [
    ({"rope_type": "linear", "factor": "2"}, "factor", TypeError),
    ({"rope_type": "linear", "factor": True}, "factor", TypeError),
    ({"rope_type": "linear", "factor": 0.0}, "factor", ValueError),
    ({"rope_type": "linear", "factor": -2.0}, "factor", ValueError),
    ({"rope_type": "linear", "factor": float("nan")}, "factor", ValueError),
    ({"rope_type": "linear", "factor": 2.0, "rope_theta": 0}, "rope_theta", ValueError),
    ({"rope_type": "linear", "factor": 2.0, "rope_theta": "1e4"}, "rope_theta", TypeError),
    ({**DYN, "factor": 0}, "factor", ValueError),
    ({**DYN, "max_position_embeddings": 2048.0}, "max_position_embeddings", TypeError),
    ({**DYN, "max_position_embeddings": 0}, "max_position_embeddings", ValueError),
    ({**YARN, "factor": -1.0}, "factor", ValueError),
    ({**YARN, "attention_factor": 0.0}, "attention_factor", ValueError),
    ({**YARN, "beta_fast": 0}, "beta_fast", ValueError),
    ({**YARN, "beta_slow": -1.0}, "beta_slow", ValueError),
    ({**YARN, "beta_fast": 1.0, "beta_slow": 2.0}, "beta_fast", ValueError),
    ({**YARN, "mscale": -0.5, "mscale_all_dim": 1.0}, "mscale", ValueError),
    ({**YARN, "mscale": 1.0, "mscale_all_dim": "1"}, "mscale_all_dim", TypeError),
    ({**YARN, "truncate": "yes"}, "truncate", TypeError),
    ({**YARN, "truncate": 1}, "truncate", TypeError),
    ({**YARN, "original_max_position_embeddings": 4096.5}, "original_max_position_embeddings", TypeError),
    ({**YARN, "original_max_position_embeddings": -1}, "original_max_position_embeddings", ValueError),
    ({**YARN, "rope_theta": 1.0}, "rope_theta", ValueError),
    ({**LR, "long_factor": [2.0] * 31}, "long_factor", ValueError),
    ({**LR, "short_factor": [[1.0] * 32]}, "short_factor", ValueError),
    ({**LR, "long_factor": [2.0] * 31 + [0.0]}, "long_factor", ValueError),
    ({**LR, "long_factor": [2.0] * 31 + [float("inf")]}, "long_factor", ValueError),
    ({**LR, "short_factor": ["1"] * 32}, "short_factor", TypeError),
    ({**LR, "short_factor": "1" * 32}, "short_factor", TypeError),
    ({**LR, "long_factor": [True] * 32}, "long_factor", TypeError),
    ({**LR, "factor": 0.0}, "factor", ValueError),
    ({**LR, "attention_factor": -1.0}, "attention_factor", ValueError),
    ({**LR, "original_max_position_embeddings": 1}, "original_max_position_embeddings", ValueError),
    ({**L3, "factor": 0}, "factor", ValueError),
    ({**L3, "low_freq_factor": 0.0}, "low_freq_factor", ValueError),
    ({**L3, "high_freq_factor": 1.0}, "high_freq_factor", ValueError),
    ({**L3, "high_freq_factor": "4"}, "high_freq_factor", TypeError),
    ({"rope_type": "default", "partial_rotary_factor": 1.5}, "partial_rotary_factor", ValueError),
    ({"rope_type": "default", "partial_rotary_factor": 0.0}, "partial_rotary_factor", ValueError),
    ({"rope_type": "default", "partial_rotary_factor": 0.3}, "partial_rotary_factor", ValueError),  # 19 columns
    ({"rope_type": "default", "partial_rotary_factor": 0.01}, "partial_rotary_factor", ValueError),  # 0 columns
])
def test_bad_values(params, key, exc):
    _raises(exc, f"'{key}'", 64, scaling=params)


def test_yarn_base_one():
    _raises(ValueError, "base", 64, 1.0, YARN)
    assert rope_inv_freq(64, 1.0)[0].tolist() == [1.0] * 32  # default rope accepts it


def test_dynamic_needs_rotary_width_4():
    _raises(ValueError, "dynamic.*>= 4", 2, scaling=DYN)
    _raises(ValueError, "dynamic.*>= 4", 64, scaling={**DYN, "partial_rotary_factor": 1 / 32})
    assert rope_inv_freq(4, scaling=DYN)[0].shape == (2,)


# ------------------------------------------------------- keys and config objects

@pytest.mark.parametrize("params", [
    {"rope_type": "dynamic", "factor": 2.0, "max_position_embeddings": 1000, "seq_len": 3000},
    {"rope_type": "longrope", **longrope_parameters(32, 1), "max_position_embeddings": 8192, "seq_len": 5000},
    {"seq_len": 10},
])
def test_regression_seq_len_key_refused(params):
    """A seq_len key inside scaling was silently ignored (rope_inv_freq takes it as a keyword)."""
    _raises(ValueError, r"scaling\['seq_len'\] is not a rope parameter.*seq_len=", 64, scaling=params)


@pytest.mark.parametrize("rope_type,key", [("linear", "low_freq_factor"), ("yarn", "long_factor"),
                                           ("default", "factor"), ("llama3", "beta_fast"), ("dynamic", "factr")])
def test_unused_keys_warn(rope_type, key):
    base = {"linear": {"factor": 2.0}, "yarn": {"factor": 2.0, "original_max_position_embeddings": 512},
            "default": {}, "llama3": {k: v for k, v in LLAMA3.items() if k != "rope_type"},
            "dynamic": {"factor": 2.0, "max_position_embeddings": 512}}[rope_type]
    params = {"rope_type": rope_type, **base, key: 1.0}
    with pytest.warns(UserWarning, match=f"rope_type='{rope_type}' does not use.*'{key}'"):
        got = rope_inv_freq(64, scaling=params)[0]
    np.testing.assert_array_equal(got, rope_inv_freq(64, scaling={"rope_type": rope_type, **base})[0])


class _Config:
    """A config as HF keeps it, duck-typed (no transformers needed)."""

    def __init__(self, rope_parameters, **attributes):
        self.rope_parameters = rope_parameters
        self.__dict__.update(attributes)


def test_config_object_gives_head_dim_and_max_positions():
    dyn = _Config({"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0}, hidden_size=512,
                  num_attention_heads=8, max_position_embeddings=1000)
    by_config = rope_inv_freq(None, scaling=dyn, seq_len=3000)[0]
    by_dict = rope_inv_freq(64, scaling={**dyn.rope_parameters, "max_position_embeddings": 1000}, seq_len=3000)[0]
    np.testing.assert_array_equal(by_config, by_dict)
    # head_dim wins over hidden_size // num_attention_heads (as in HF)
    dyn.head_dim = 32
    assert rope_inv_freq(None, scaling=dyn)[0].shape == (16,)
    _raises(ValueError, "disagrees with the config's head width 32", 64, scaling=dyn)
    # Phi-3 keeps original_max_position_embeddings on the config; HF prefers it to the dict's
    lr = longrope_parameters(16, 2, original_max_position_embeddings=999)
    phi3 = _Config(lr, hidden_size=128, num_attention_heads=4, max_position_embeddings=16384,
                   original_max_position_embeddings=4096)
    inv, att = rope_inv_freq(None, scaling=phi3, seq_len=5000)
    assert att == pytest.approx(math.sqrt(1 + math.log(4) / math.log(4096)), rel=1e-15)
    np.testing.assert_allclose(inv, rope_inv_freq(32)[0] / np.array(lr["long_factor"]), rtol=1e-15)
    # rope_theta / partial_rotary_factor kept as attributes (older configs) are moved in, as HF does
    old = _Config({"rope_type": "default"}, head_dim=64, rope_theta=500.0, partial_rotary_factor=0.5)
    np.testing.assert_array_equal(rope_inv_freq(None, scaling=old)[0], rope_inv_freq(32, 500.0)[0])
    # the config's ignore_keys_at_rope_validation are not warned about (HF's rule)
    vl = _Config({"rope_type": "default", "mrope_section": [8, 12, 12]}, head_dim=64,
                 ignore_keys_at_rope_validation={"mrope_section"})
    np.testing.assert_array_equal(rope_inv_freq(None, scaling=vl)[0], rope_inv_freq(64)[0])


def test_config_object_errors():
    _raises(TypeError, "dim", None, scaling={"rope_type": "default"})
    _raises(TypeError, "dim", None, scaling=_Config({"rope_type": "default"}))
    _raises(TypeError, "rope_parameters must be a dict", 64, scaling=_Config([("rope_type", "default")]))
    _raises(TypeError, "scaling must be None, a dict", 64, scaling=object())
    _raises(TypeError, "config.max_position_embeddings", None,
            scaling=_Config({"rope_type": "dynamic", "factor": 2.0}, head_dim=64, max_position_embeddings=1e3))
    nested = {"full_attention": {"rope_type": "default"}, "sliding_attention": {"rope_type": "linear", "factor": 2.0}}
    _raises(ValueError, r"one rope dict per layer type.*config.rope_parameters\['full_attention'\]", 64,
            scaling=nested)
