"""At positions near 2**20 a model patched by fastpe.hf.apply_to, in
float32, is closer to the exact model than the unpatched one.

The exact model is the unpatched model in float64 with a rotary module
written here (float64 angles, plain and linear RoPE per layer type). HF's own
float64 model is not exact: its rotary module forms the angles
``position_ids.float() * inv_freq`` in float32 whatever the model's dtype,
and is as far from the exact model as its float32 model (the last test pins
that). HF's float32 angle is off by up to half a float32 ulp of the angle,
0.03 rad at 2**20 for a frequency near 1, so the unpatched logits are off by
1e-3 to 0.08 there (fewer rotary channels, less), where the patched ones keep
their float32 rounding (~3e-6, as near position 0).
"""

import types

import pytest
from optional import conformance_import

torch = conformance_import("torch")
transformers = conformance_import("transformers")

import hf_models  # noqa: E402
from optional import single_threaded_torch  # noqa: E402,F401 (autouse fixture)

import fastpe.hf  # noqa: E402

# name -> {layer type: (theta, linear factor, rotary width)}: the rope of hf_models.MODELS[name]
ROPES = {
    "llama": {None: (1e4, 1.0, 16)},
    "qwen3": {None: (1e4, 1.0, 16)},
    "gemma3": {"sliding_attention": (1e4, 1.0, 16), "full_attention": (1e6, 8.0, 16)},
    "phi": {None: (1e4, 1.0, 16)},      # the rotary channels alone, 16 of 32
    "gpt_neox": {None: (1e4, 1.0, 4)},  # 4 of 16 channels
}
START = 2**20


def _exact_rotary(module, ropes):
    """module's forward replaced by cos and sin from float64 angles."""
    def forward(self, x, position_ids, layer_type=None):
        theta, factor, width = ropes[layer_type]
        k = torch.arange(0, width, 2, dtype=torch.float64)
        angles = position_ids[..., None].to(torch.float64) * (theta ** (-k / width) / factor)
        angles = torch.cat([angles, angles], dim=-1)
        return angles.cos().to(x.dtype), angles.sin().to(x.dtype)

    module.forward = types.MethodType(forward, module)


def _models(name):
    model = hf_models.build(name)
    exact = hf_models.twin(model).to(torch.float64)
    (rotary,) = [m for m in exact.modules() if type(m).__name__.endswith("RotaryEmbedding")]
    _exact_rotary(rotary, ROPES[name])
    return model, fastpe.hf.apply_to(hf_models.twin(model)), exact


def _logits(model, input_ids, position_ids):
    with torch.no_grad():
        return model(input_ids=input_ids, position_ids=position_ids).logits.double()


def _inputs():
    input_ids = torch.randint(3, hf_models.VOCAB, (2, 8), generator=torch.Generator().manual_seed(5))
    position_ids = torch.stack([torch.arange(8) + START, torch.arange(8) + START - 300])
    return input_ids, position_ids


@pytest.mark.parametrize("name", sorted(ROPES))
def test_patched_float32_is_closer_to_exact_at_long_positions(name):
    model, patched, exact = _models(name)
    input_ids, position_ids = _inputs()
    truth = _logits(exact, input_ids, position_ids)
    theirs = (_logits(model, input_ids, position_ids) - truth).abs().max().item()
    ours = (_logits(patched, input_ids, position_ids) - truth).abs().max().item()
    # at position 0 the patched model is float32 rounding away from the exact one
    near = _logits(patched, input_ids, position_ids - START + 300) - _logits(exact, input_ids,
                                                                                position_ids - START + 300)
    rounding = near.abs().max().item()
    assert theirs > 100 * rounding, f"{name}: HF's float32 angles should show at 2**20 (off by {theirs:.3g})"
    assert ours <= 0.05 * theirs, f"{name}: patched off by {ours:.3g}, unpatched by {theirs:.3g}"
    assert ours <= 4 * rounding, f"{name}: patched off by {ours:.3g} at 2**20, {rounding:.3g} near 0"


def test_hf_float64_model_keeps_float32_angles():
    """Why the exact model has its own rotary: HF's float64 Llama is as far off as its float32 one."""
    model, _, exact = _models("llama")
    input_ids, position_ids = _inputs()
    truth = _logits(exact, input_ids, position_ids)
    float32_error = (_logits(model, input_ids, position_ids) - truth).abs().max().item()
    float64_error = (_logits(hf_models.twin(model).to(torch.float64), input_ids, position_ids) - truth).abs().max()
    assert float64_error.item() > 0.5 * float32_error > 1e-2
