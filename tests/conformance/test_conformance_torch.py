"""fastpe.torch against the libraries PyTorch users pick: torchtune's
RotaryPositionalEmbeddings (RotaryEmbedding.like_torchtune) and Hugging Face
transformers' apply_rotary_pos_emb and rotary modules
(apply_rotary_cos_sin), values and gradients.

torchtune's two position-embedding files are loaded on their own, as in
test_conformance_rotary.py (its package __init__ needs a matching torchao).
torchtune forms its angles in float32 (off the float64 ones by about
p * 6e-8 radians at position p), hence a tolerance that grows with p.
"""

import numpy as np
import pytest
from optional import conformance_import, torchtune_file
from rotary_cases import torchtune_tolerance
from util import assert_within

torch = conformance_import("torch")

from optional import single_threaded_torch  # noqa: E402,F401 (autouse fixture)

import fastpe.torch as ft  # noqa: E402


@pytest.mark.parametrize("dim,base", [(64, 10000.0), (128, 500000.0)])
def test_rotary_embedding_like_torchtune(dim, base):
    tt = torchtune_file("modules/position_embeddings.py")
    theirs = tt.RotaryPositionalEmbeddings(dim=dim, max_seq_len=4096, base=base)
    ours = ft.RotaryEmbedding.like_torchtune(dim, max_seq_len=4096, base=base)
    x = torch.randn(2, 40, 4, dim, generator=torch.Generator().manual_seed(dim))
    assert_within(ours(x).numpy(), theirs(x).numpy(), torchtune_tolerance(x.numpy(), np.arange(40)), f"torchtune dim={dim}")
    input_pos = torch.stack([torch.arange(3000, 3040), torch.arange(100, 140)])
    assert_within(ours(x, input_pos=input_pos).numpy(), theirs(x, input_pos=input_pos).numpy(),
                  torchtune_tolerance(x.numpy(), input_pos.numpy().reshape(2, 40)[..., None].max()), "torchtune input_pos")
    assert list(ours.state_dict()) == [] and callable(ours.reset_parameters)


def _hf():
    conformance_import("transformers")
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb
    from transformers import LlamaConfig

    return LlamaConfig, LlamaRotaryEmbedding, apply_rotary_pos_emb


@pytest.mark.parametrize("rope_parameters", [
    {"rope_type": "default", "rope_theta": 10000.0},
    {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64, "rope_theta": 10000.0},
], ids=["default", "yarn"])
def test_apply_rotary_cos_sin_is_hugging_faces_apply_rotary_pos_emb(rope_parameters):
    """HF's rotary module gives cos and sin; fastpe.torch applies them as HF's
    apply_rotary_pos_emb does, in one pass, values and gradients (in float64)."""
    LlamaConfig, LlamaRotaryEmbedding, apply_rotary_pos_emb = _hf()
    config = LlamaConfig(hidden_size=128, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         rope_parameters=rope_parameters)
    rotary = LlamaRotaryEmbedding(config)
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 4, 7, 32, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(2, 2, 7, 32, generator=g, dtype=torch.float64, requires_grad=True)
    position_ids = torch.stack([torch.arange(7) + 100, torch.arange(7)])
    cos, sin = rotary(q, position_ids)
    cos, sin = cos.detach().requires_grad_(), sin.detach().requires_grad_()
    theirs = apply_rotary_pos_emb(q, k, cos, sin)
    ours = ft.apply_rotary_cos_sin(q, k, cos, sin)
    for a, b in zip(ours, theirs):
        assert torch.allclose(a, b, atol=1e-12)
    grads = [torch.randn(t.shape, generator=g, dtype=torch.float64) for t in theirs]
    expected = torch.autograd.grad(theirs, (q, k, cos, sin), grads)
    got = torch.autograd.grad(ours, (q, k, cos, sin), grads)
    for name, a, b in zip(("q", "k", "cos", "sin"), got, expected):
        assert torch.allclose(a, b, atol=1e-10), f"gradient of {name}"


def test_positions_instead_of_cos_sin_match_hugging_face_in_float32():
    """fastpe.torch.apply_rotary from HF's position_ids and config: HF's result
    within float32 rounding of HF's own float32 angles (positions below 256)."""
    LlamaConfig, LlamaRotaryEmbedding, apply_rotary_pos_emb = _hf()
    config = LlamaConfig(hidden_size=256, num_attention_heads=4, max_position_embeddings=512,
                         rope_parameters={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                          "high_freq_factor": 4.0, "original_max_position_embeddings": 64,
                                          "rope_theta": 500000.0})
    g = torch.Generator().manual_seed(20)
    q, k = torch.randn(1, 4, 9, 64, generator=g), torch.randn(1, 4, 9, 64, generator=g)
    position_ids = (torch.arange(9) * 20 + 7)[None]
    cos, sin = LlamaRotaryEmbedding(config)(q, position_ids)
    theirs = apply_rotary_pos_emb(q, k, cos, sin)
    ours = ft.apply_rotary(q, k, positions=position_ids, scaling=config)
    # HF's float32 angle p * inv_freq errs by up to p * 2**-24 radians (p <= 167 here), which moves a
    # rotated value by that much of its row's size; twice that, plus a few roundings. (Over 300 seeds the
    # worst measured was 1.0e-5 of the row's largest value; without a seed an absolute 2e-5 failed once.)
    for a, b, x in zip(ours, theirs, (q, k)):
        bound = x.abs().amax(-1, keepdim=True) * (2 * 167 * 2**-24 + 4 * 2**-24)
        assert ((a - b).abs() <= bound).all()
