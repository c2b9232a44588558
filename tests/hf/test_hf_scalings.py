"""fastpe.torch's rotary reads scalings with the NumPy API's reader: the
scalings fastpe could only guess at are refused there too, before anything
is written, and the right calls rotate as the real models' rotary modules
do (the tests' tiny Gemma 3 and Phi)."""

import pytest
from optional import conformance_import

torch = conformance_import("torch")
transformers = conformance_import("transformers")

import hf_models  # noqa: E402
from optional import single_threaded_torch  # noqa: E402,F401 (autouse fixture)
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb  # noqa: E402

import fastpe.torch  # noqa: E402

POSITIONS = torch.stack([torch.arange(6) + 500, torch.arange(6)])


def _hf(rotary, q, k, *layer_type):
    cos, sin = rotary(q, POSITIONS, *layer_type)
    return apply_rotary_pos_emb(q, k, cos, sin)


def test_gemma3_per_layer_type():
    model = hf_models.build("gemma3")
    config = model.config
    q, k = torch.randn(2, 4, 6, 16), torch.randn(2, 2, 6, 16)
    before = (q.clone(), k.clone())
    with pytest.raises(ValueError, match="choose a layer type"):
        fastpe.torch.apply_rotary_(q, k, positions=POSITIONS, scaling=config)
    assert torch.equal(q, before[0]) and torch.equal(k, before[1]), "a refused call wrote"
    for layer_type in ("sliding_attention", "full_attention"):
        scaling = dict(config.rope_parameters[layer_type], max_position_embeddings=config.max_position_embeddings)
        got = fastpe.torch.apply_rotary(q, k, positions=POSITIONS, scaling=scaling)
        for g, e in zip(got, _hf(model.model.rotary_emb, q, k, layer_type)):
            torch.testing.assert_close(g, e, rtol=0, atol=2e-5, msg=layer_type)


def test_phi_rotary_channels_alone():
    model = hf_models.build("phi")
    config = model.config
    q, k = torch.randn(2, 2, 6, 32)[..., :16], torch.randn(2, 2, 6, 32)[..., :16]  # Phi's slices: views
    expected = _hf(model.model.rotary_emb, q, k)
    for label, kwargs in (("config", {"scaling": config}),
                          ("dict and rotary_dim", {"scaling": config.rope_parameters, "rotary_dim": 16})):
        got = fastpe.torch.apply_rotary(q, k, positions=POSITIONS, **kwargs)
        for g, e in zip(got, expected):
            torch.testing.assert_close(g, e, rtol=0, atol=2e-5, msg=label)
    with pytest.raises(ValueError, match=r"scaling\['partial_rotary_factor'\]=0.5 in a dict, on arrays of 16 "
                                         r"channels.*rotary_dim=8 \(whole heads\) or rotary_dim=16"):
        fastpe.torch.apply_rotary(q, k, positions=POSITIONS, scaling=config.rope_parameters)
