"""apply_rotary against torchtune's RotaryPositionalEmbeddings and
Llama3ScaledRoPE, where torchtune is installed (skipped otherwise), and
against Hugging Face transformers' rotary embeddings and apply_rotary_pos_emb.

torchtune's package __init__ needs a torchao release that matches it; its two
position-embedding source files need only torch, so they are loaded on their
own from the installed package (nothing copied, nothing stubbed).

torchtune rotates interleaved pairs (2i, 2i+1) of x shaped (b, s, n_h, h_d):
fastpe's layout="interleaved", seq_axis=-3. It computes the angles in
float32 (theta and positions as float32, their product rounded), so it is
off the float64 angles by about p * 6e-8 radians at position p; the
tolerance grows with position accordingly: 2e-6 + 1.5e-7 * p * |x|.
"""

import numpy as np
import pytest
from util import assert_within, rng_for

import fastpe

from hf_rotary import hf_rotate  # noqa: E402
from optional import conformance_import, torchtune_file  # noqa: E402
from rotary_cases import torchtune_tolerance  # noqa: E402

torch = conformance_import("torch")

from optional import single_threaded_torch  # noqa: E402,F401 (autouse fixture)


@pytest.mark.parametrize("dim,base", [(64, 10000.0), (128, 500000.0), (32, 10000.0)])
def test_rotary_positional_embeddings(dim, base):
    tt = torchtune_file("modules/position_embeddings.py")
    rope = tt.RotaryPositionalEmbeddings(dim=dim, max_seq_len=4096, base=base)
    rng = rng_for("torchtune-rope", dim)
    x = rng.standard_normal((2, 50, 4, dim)).astype(np.float32)
    expected = rope(torch.from_numpy(x)).numpy()
    got = fastpe.apply_rotary(x.copy(), base=base, layout="interleaved", seq_axis=-3)
    assert_within(got, expected, torchtune_tolerance(x, np.arange(50)), f"RotaryPositionalEmbeddings dim={dim}")
    # explicit positions (torchtune's input_pos), far into the sequence
    input_pos = np.stack([np.arange(3000, 3050), np.arange(100, 150)])
    expected = rope(torch.from_numpy(x), input_pos=torch.from_numpy(input_pos)).numpy()
    got = fastpe.apply_rotary(x.copy(), positions=input_pos, base=base, layout="interleaved", seq_axis=-3)
    tol = 2e-6 + 1.5e-7 * input_pos[:, :, None, None] * (1.0 + np.abs(x))
    assert_within(got, expected, tol, f"RotaryPositionalEmbeddings input_pos dim={dim}")


def test_llama3_scaled_rope():
    tt = torchtune_file("models/llama3_1/_position_embeddings.py")
    dim = 128
    rope = tt.Llama3ScaledRoPE(dim=dim, max_seq_len=4096, base=500000.0, scale_factor=8, low_freq_factor=1,
                               high_freq_factor=4, old_context_len=8192)
    scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 8192, "rope_theta": 500000.0}
    rng = rng_for("torchtune-llama3")
    x = rng.standard_normal((1, 64, 2, dim)).astype(np.float32)
    input_pos = np.arange(2000, 2064)[None, :]
    expected = rope(torch.from_numpy(x), input_pos=torch.from_numpy(input_pos)).numpy()
    got = fastpe.apply_rotary(x.copy(), positions=input_pos, scaling=scaling, layout="interleaved", seq_axis=-3)
    assert_within(got, expected, torchtune_tolerance(x, input_pos[0]), "Llama3ScaledRoPE")


# ------------------------------------------------ Hugging Face configs as they are
#
# apply_rotary(..., scaling=config.rope_parameters) and scaling=config against
# the model's own rotary embedding module (cos, sin from its forward, applied
# with HF's apply_rotary_pos_emb to the first rotary channels, the rest passed
# through, as Phi's and GPT-NeoX's attention do). HF forms the frequencies and
# the angles in float32: the tolerance grows with the position.

def _longrope_factors(n, seed):
    rng = np.random.default_rng(seed)
    return {"long_factor": [float(v) for v in 1.0 + 20 * rng.random(n)],
            "short_factor": [float(v) for v in 1.0 + 0.3 * rng.random(n)]}


def _rope_type_configs():
    """(id, config, rotary module class, positions) for every rope type of ROPE_INIT_FUNCTIONS, with and
    without partial_rotary_factor, built through the model classes as a user would."""
    transformers = conformance_import("transformers")
    from transformers.models.phi.modeling_phi import PhiRotaryEmbedding

    head_dim, heads = 64, 4
    cases = []
    for prf in (1.0, 0.5):  # PhiConfig's own default is 0.5
        rotary = int(head_dim * prf)
        extra = {"partial_rotary_factor": prf}
        types = {
            "default": {"rope_type": "default"},
            "linear": {"rope_type": "linear", "factor": 4.0},
            "dynamic": {"rope_type": "dynamic", "factor": 4.0},
            "yarn": {"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 64},
            "longrope": {"rope_type": "longrope", "original_max_position_embeddings": 64,
                         **_longrope_factors(rotary // 2, rotary)},
            "llama3": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                       "original_max_position_embeddings": 64},
            "proportional": {"rope_type": "proportional", "factor": 2.0, "rope_theta": 10000.0},
        }
        assert set(types) - {"default"} == set(transformers.modeling_rope_utils.ROPE_INIT_FUNCTIONS)
        for name, params in types.items():
            cfg = transformers.PhiConfig(hidden_size=head_dim * heads, num_attention_heads=heads,
                                         max_position_embeddings=256, rope_parameters=dict(params), **extra)
            for label, positions in (("short", np.stack([np.arange(40), np.arange(40) + 7])),
                                     ("long", np.stack([np.arange(40) + 300, np.arange(40) + 20]))):
                cases.append((f"{name}-prf{prf}-{label}", cfg, PhiRotaryEmbedding, positions))
    return cases


def _model_configs():
    """A Phi, a Llama-3 (llama3), a Qwen2 (yarn) and a Phi-3 (longrope) config, built as their users build them."""
    transformers = conformance_import("transformers")
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
    from transformers.models.phi.modeling_phi import PhiRotaryEmbedding
    from transformers.models.phi3.modeling_phi3 import Phi3RotaryEmbedding
    from transformers.models.qwen2.modeling_qwen2 import Qwen2RotaryEmbedding

    far = np.stack([np.arange(32) + 9000, np.arange(32) + 5])
    return [
        ("phi", transformers.PhiConfig(hidden_size=256, num_attention_heads=4, partial_rotary_factor=0.5),
         PhiRotaryEmbedding, far),
        ("llama3", transformers.LlamaConfig(
            hidden_size=512, num_attention_heads=4, max_position_embeddings=131072,
            rope_parameters={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 8192, "rope_theta": 500000.0}),
         LlamaRotaryEmbedding, far),
        ("qwen2-yarn", transformers.Qwen2Config(
            hidden_size=512, num_attention_heads=4, max_position_embeddings=131072,
            rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}),
         Qwen2RotaryEmbedding, far),
        ("phi3-longrope", transformers.Phi3Config(
            hidden_size=256, num_attention_heads=4, max_position_embeddings=131072,
            original_max_position_embeddings=4096,
            rope_scaling={"type": "longrope", **_longrope_factors(32, 3)}),
         Phi3RotaryEmbedding, far),
        ("phi3-longrope-short", transformers.Phi3Config(
            hidden_size=256, num_attention_heads=4, max_position_embeddings=131072,
            original_max_position_embeddings=4096, partial_rotary_factor=0.5,
            rope_scaling={"type": "longrope", **_longrope_factors(16, 4)}),
         Phi3RotaryEmbedding, np.stack([np.arange(32) + 1000, np.arange(32)])),
    ]


def _check_config_case(label, cfg, rotary_class, positions):
    import copy
    import logging

    logging.getLogger("transformers").setLevel(logging.ERROR)  # HF logs its own advice on some configs
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    rng = rng_for("hf-config", label)
    q = rng.standard_normal((2, 3, positions.shape[1], head_dim)).astype(np.float32)
    before = copy.deepcopy(cfg.rope_parameters)
    expected, r = hf_rotate(rotary_class(cfg), q, positions)
    # HF's float32 angle p * w carries about five roundings of 2**-24 (exponent, pow, factor, reciprocal,
    # product), each relative to p * w with w <= 1
    tol = 2e-6 + 3e-7 * positions[:, None, :, None] * (1.0 + np.abs(q))
    by_config = fastpe.apply_rotary(q.copy(), positions=positions, scaling=cfg)
    assert_within(by_config, expected, tol, f"{label}: scaling=config")
    # the rotary channels alone, as Phi's attention slices them off before rotating: all of them rotate
    alone = fastpe.apply_rotary(q[..., :r].copy(), positions=positions, scaling=cfg)
    assert_within(alone, expected[..., :r], tol[..., :r], f"{label}: scaling=config, the rotary channels alone")
    if cfg.rope_parameters.get("rope_type") != "proportional" and label != "phi3-longrope":
        # the dict as it is, plus max_position_embeddings (HF reads it from the config) where the type needs it;
        # a partial factor then needs rotary_dim, saying whether the arrays are whole heads or the rotary channels
        params = dict(cfg.rope_parameters)
        if params.get("rope_type") in ("dynamic", "longrope"):
            params["max_position_embeddings"] = cfg.max_position_embeddings
        narrowed = {"rotary_dim": r} if r != head_dim else {}
        by_dict = fastpe.apply_rotary(q.copy(), positions=positions, scaling=params, **narrowed)
        assert_within(by_dict, expected, tol, f"{label}: scaling=config.rope_parameters")
        ref = fastpe.reference.apply_rotary(q.copy(), positions=positions, scaling=params, **narrowed)
        assert_within(by_dict, ref, 4e-7 * (1.0 + np.abs(q)), f"{label}: fastpe vs reference")
        alone = fastpe.apply_rotary(q[..., :r].copy(), positions=positions, scaling=params, rotary_dim=r)
        assert_within(alone, expected[..., :r], tol[..., :r], f"{label}: the dict, the rotary channels alone")
    # the rotary tables HF's module returns, for one sequence of consecutive positions
    start = int(positions[0, 0])
    cos, sin = rotary_class(cfg)(torch.from_numpy(q[:1]), torch.arange(start, start + 32)[None])
    ours_cos, ours_sin = fastpe.rotary_cos_sin(32, r, offset=start, scaling=cfg)
    tol_t = 2e-6 + 3e-7 * (start + 32)
    assert_within(ours_cos, cos[0].numpy(), tol_t, f"{label}: rotary_cos_sin cos")
    assert_within(ours_sin, sin[0].numpy(), tol_t, f"{label}: rotary_cos_sin sin")
    assert cfg.rope_parameters == before, "fastpe modified the config's rope_parameters"


@pytest.mark.parametrize("index", range(28))
def test_every_rope_type_config_as_is(index):
    cases = _rope_type_configs()
    assert len(cases) == 28
    _check_config_case(*cases[index])


@pytest.mark.parametrize("name", ["phi", "llama3", "qwen2-yarn", "phi3-longrope", "phi3-longrope-short"])
def test_model_configs_as_is(name):
    case = dict((c[0], c) for c in _model_configs())[name]
    _check_config_case(*case)


def test_regression_phi_partial_rotary_factor_applied_once():
    """PhiConfig(partial_rotary_factor=0.5): apply_rotary(q64, scaling=cfg.rope_parameters) asked for
    rotary_dim=32, then (given 32) for 16: the factor was applied twice. An explicit rotary_dim=32
    rotates 32 channels; the dict alone is now refused (see the next test)."""
    transformers = conformance_import("transformers")
    cfg = transformers.PhiConfig(hidden_size=256, num_attention_heads=4, partial_rotary_factor=0.5)
    q = rng_for("phi-regression").standard_normal((1, 4, 6, 64)).astype(np.float32)
    pos = np.arange(6)[None] + 11
    got = fastpe.apply_rotary(q.copy(), positions=pos, scaling=cfg.rope_parameters, rotary_dim=32)
    np.testing.assert_array_equal(got[..., 32:], q[..., 32:])
    plain = fastpe.reference.apply_rotary(q[..., :32].copy(), positions=pos)  # default RoPE over 32 channels
    assert_within(got[..., :32], plain, 4e-7 * (1.0 + np.abs(q[..., :32])), "Phi's 32 rotary channels")
    assert_within(fastpe.apply_rotary(q.copy(), positions=pos, scaling=cfg), got, 0.0, "the config agrees")
    with pytest.raises(ValueError, match=r"rotary_dim=16 disagrees with scaling.*pass rotary_dim=32 or rotary_dim=64"):
        fastpe.apply_rotary(q.copy(), positions=pos, scaling=cfg.rope_parameters, rotary_dim=16)


def test_regression_phi_rotary_channels_alone_factor_applied_twice():
    """Phi's attention slices each head's rotary channels off and rotates them alone. Given those
    32-channel arrays, scaling=cfg.rope_parameters rotated int(32 * 0.5) = 16 of them (the factor
    applied twice: the model's logits were off by 8.7), scaling=cfg was refused, and rotary_dim=32
    too. Now the dict alone is refused, naming the key and both rotary_dim values, and the config,
    or the dict with rotary_dim=32, rotate all 32 channels as HF does."""
    transformers = conformance_import("transformers")
    from transformers.models.phi.modeling_phi import PhiRotaryEmbedding

    cfg = transformers.PhiConfig(hidden_size=256, num_attention_heads=4, partial_rotary_factor=0.5)
    pos = np.stack([np.arange(6) + 11, np.arange(6)])
    q = rng_for("phi-alone").standard_normal((2, 4, 6, 64)).astype(np.float32)
    expected, r = hf_rotate(PhiRotaryEmbedding(cfg), q, pos)
    assert r == 32
    tol = 2e-6 + 3e-7 * pos[:, None, :, None] * (1.0 + np.abs(q[..., :r]))
    for label, kwargs in (("config", {"scaling": cfg}), ("dict + rotary_dim", {"scaling": cfg.rope_parameters,
                                                                               "rotary_dim": r})):
        got = fastpe.apply_rotary(q[..., :r].copy(), positions=pos, **kwargs)
        assert_within(got, expected[..., :r], tol, f"the rotary channels alone, {label}")
    sliced = q[..., :r].copy()
    with pytest.raises(ValueError, match=r"scaling\['partial_rotary_factor'\].*rotary_dim=16 \(whole heads\) or "
                                         r"rotary_dim=32 \(the arrays hold the rotary channels alone\)"):
        fastpe.apply_rotary(sliced, positions=pos, scaling=cfg.rope_parameters)
    np.testing.assert_array_equal(sliced, q[..., :r], err_msg="a refused call wrote")
    with pytest.raises(ValueError, match="the arrays have 48 channels but the config's head width is 64"):
        fastpe.apply_rotary(q[..., :48].copy(), positions=pos, scaling=cfg)


def test_regression_gemma3_config_read_as_plain_rope():
    """A Gemma3TextConfig given as scaling= was read as plain RoPE with theta 1e4 for every layer (the
    only sign: a warning about ignored keys; the model's logits were off by 0.76). It is now refused,
    naming its layer types; each layer type's dict, with max_position_embeddings, rotates as HF's rotary
    module does for the layers of that type."""
    transformers = conformance_import("transformers")
    from transformers.models.gemma3.modeling_gemma3 import Gemma3RotaryEmbedding
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    cfg = transformers.Gemma3TextConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        head_dim=16, vocab_size=128, layer_types=["sliding_attention", "full_attention"],
        rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                         "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0}})
    q = rng_for("gemma3-regression").standard_normal((2, 4, 6, 16)).astype(np.float32)
    pos = np.stack([np.arange(6) + 900, np.arange(6)])
    sliced = q.copy()
    with pytest.raises(ValueError, match=r"\('sliding_attention', 'full_attention'\).*choose a layer type"):
        fastpe.apply_rotary(sliced, positions=pos, scaling=cfg)
    np.testing.assert_array_equal(sliced, q)
    rotary = Gemma3RotaryEmbedding(cfg)
    tol = 2e-6 + 3e-7 * pos[:, None, :, None] * (1.0 + np.abs(q))
    for layer_type in ("sliding_attention", "full_attention"):
        cos, sin = rotary(torch.from_numpy(q), torch.from_numpy(pos), layer_type)
        expected = apply_rotary_pos_emb(torch.from_numpy(q), torch.from_numpy(q), cos, sin)[0].numpy()
        scaling = dict(cfg.rope_parameters[layer_type], max_position_embeddings=cfg.max_position_embeddings)
        got = fastpe.apply_rotary(q.copy(), positions=pos, scaling=scaling)
        assert_within(got, expected, tol, layer_type)


def test_docstring_configs_are_the_real_transformers_configs():
    """apply_rotary's doctest builds its Phi, Llama-3, Qwen2 (yarn) and Phi-3 (longrope) configs as
    SimpleNamespaces (no transformers needed): the real classes built with the same arguments give
    the same rotation bit for bit, and that rotation is HF's."""
    import doctest

    transformers = conformance_import("transformers")
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
    from transformers.models.phi.modeling_phi import PhiRotaryEmbedding
    from transformers.models.phi3.modeling_phi3 import Phi3RotaryEmbedding
    from transformers.models.qwen2.modeling_qwen2 import Qwen2RotaryEmbedding

    from fastpe import _rotary

    (example,) = doctest.DocTestFinder().find(_rotary.apply_rotary, "apply_rotary", globs={})
    runner = doctest.DocTestRunner()
    runner.run(example, clear_globs=False)
    assert runner.summarize(verbose=False).failed == 0
    duck = example.globs
    llama3 = duck["llama3"].rope_parameters
    qwen2 = duck["qwen2"].rope_parameters
    phi3 = duck["phi3"].rope_parameters
    real = {
        "phi": (transformers.PhiConfig(hidden_size=256, num_attention_heads=4, partial_rotary_factor=0.5),
                PhiRotaryEmbedding),
        "llama3": (transformers.LlamaConfig(hidden_size=4096, num_attention_heads=32, head_dim=128,
                                            max_position_embeddings=131072, rope_parameters=dict(llama3)),
                   LlamaRotaryEmbedding),
        "qwen2": (transformers.Qwen2Config(hidden_size=3584, num_attention_heads=28, max_position_embeddings=131072,
                                           rope_theta=qwen2["rope_theta"],
                                           rope_scaling={"type": "yarn", "factor": qwen2["factor"],
                                                         "original_max_position_embeddings": 32768}),
                  Qwen2RotaryEmbedding),
        "phi3": (transformers.Phi3Config(hidden_size=3072, num_attention_heads=32, max_position_embeddings=131072,
                                         original_max_position_embeddings=4096,
                                         rope_scaling={"type": "longrope", "long_factor": phi3["long_factor"],
                                                       "short_factor": phi3["short_factor"]}),
                 Phi3RotaryEmbedding),
    }
    for name, (cfg, rotary_class) in real.items():
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        positions = np.stack([np.arange(8) + 5000, np.arange(8)])
        q = rng_for("doc-config", name).standard_normal((2, 2, 8, head_dim)).astype(np.float32)
        by_duck = fastpe.apply_rotary(q.copy(), positions=positions, scaling=duck[name])
        by_real = fastpe.apply_rotary(q.copy(), positions=positions, scaling=cfg)
        np.testing.assert_array_equal(by_duck, by_real, err_msg=name)
        _check_config_case(f"doc-{name}", cfg, rotary_class, positions)


def test_hugging_face_apply_rotary_pos_emb():
    torch = conformance_import("torch")
    llama = conformance_import("transformers.models.llama.modeling_llama")
    torch.set_num_threads(1)
    rng = rng_for("rotary-hf")
    q = rng.standard_normal((2, 4, 20, 32))
    k = rng.standard_normal((2, 2, 20, 32))
    position_ids = np.stack([np.arange(20), np.arange(20) + 5])
    inv_freq = 10000.0 ** (-np.arange(16) * 2 / 32)
    angles = position_ids[..., None] * inv_freq
    emb = np.concatenate([angles, angles], axis=-1)
    cos, sin = torch.from_numpy(np.cos(emb)), torch.from_numpy(np.sin(emb))
    hq, hk = llama.apply_rotary_pos_emb(torch.from_numpy(q), torch.from_numpy(k), cos, sin)
    gq, gk = fastpe.apply_rotary(q.copy(), k.copy(), positions=position_ids)
    assert_within(gq, hq.numpy(), 1e-11, "HF q")
    assert_within(gk, hk.numpy(), 1e-11, "HF k")
