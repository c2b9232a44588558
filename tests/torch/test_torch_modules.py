"""fastpe.torch's nn.Modules: what they compute (against fastpe.reference), what
they learn, and that their state_dict holds nothing derivable."""

from types import SimpleNamespace

import numpy as np
import pytest
from optional import torch_or_skip
from util import assert_within

torch = torch_or_skip()

import fastpe.torch as ft  # noqa: E402
from fastpe import reference  # noqa: E402
from torch_cases import float64_of, tolerance  # noqa: E402


def test_sinusoidal_module_with_padding_aware_positions():
    """fairseq: real tokens count from padding_idx + 1 (+ the cache length), pads get nothing added."""
    pe = ft.SinusoidalPositionalEmbedding(16, preset="fairseq", scale=4.0)
    ids = torch.tensor([[9, 8, 7, 1, 1], [1, 1, 5, 6, 7]])
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    got = pe(x, token_ids=ids, offset=torch.tensor([3, 0]))
    positions = reference.make_positions(ids.numpy(), 1, past_length=np.array([3, 0]))
    expected = reference.add_sinusoidal(x.numpy().copy(), positions=positions, preset="fairseq", scale=4.0)
    assert_within(got.numpy(), expected, tolerance("float64", expected), "fairseq module")
    assert torch.equal(got[0, 3:], 4.0 * x[0, 3:]) and torch.equal(got[1, :2], 4.0 * x[1, :2])
    assert list(pe.state_dict()) == []
    assert "preset='fairseq'" in repr(pe)


def test_sinusoidal_module_presets_and_offsets():
    pe = ft.SinusoidalPositionalEmbedding(32, preset="tensor2tensor", max_timescale=5000.0)
    x = torch.zeros(3, 7, 32)
    got = pe(x, offset=torch.tensor([0, 10, 200]))
    expected = reference.add_sinusoidal(np.zeros((3, 7, 32)), offset=np.array([0, 10, 200]), preset="tensor2tensor",
                                        max_timescale=5000.0)
    assert_within(got.numpy(), expected, tolerance("float32", expected), "tensor2tensor module")
    freq = torch.linspace(1.0, 0.01, 16, dtype=torch.float64)
    with_freq = ft.SinusoidalPositionalEmbedding(32, inv_freq=freq, layout="concat").to(torch.float64)
    assert list(with_freq.state_dict()) == [] and with_freq.inv_freq.dtype == torch.float64
    expected = reference.add_sinusoidal(np.zeros((1, 4, 32)), inv_freq=freq.numpy(), layout="concat")
    assert_within(with_freq(torch.zeros(1, 4, 32)).numpy(), expected, tolerance("float32", expected), "inv_freq")


def test_learned_module_learns_its_table():
    pe = ft.LearnedPositionalEmbedding(20, 8, scale=2.0)
    assert list(pe.state_dict()) == ["weight"] and pe.weight.requires_grad
    x = torch.randn(2, 4, 8, requires_grad=True)
    y = pe(x, offset=torch.tensor([0, 16]))
    expected = 2.0 * x.detach() + torch.stack([pe.weight[0:4], pe.weight[16:20]]).detach()
    assert torch.allclose(y, expected, atol=1e-6)
    y.sum().backward()
    counts = torch.zeros(20)
    counts[0:4] += 1
    counts[16:20] += 1
    assert torch.equal(pe.weight.grad, counts[:, None].expand(20, 8))
    assert torch.equal(x.grad, torch.full_like(x, 2.0))
    optimizer = torch.optim.SGD(pe.parameters(), lr=0.1)
    before = pe.weight.detach().clone()
    optimizer.step()
    assert torch.equal(pe.weight[4:16], before[4:16]) and not torch.equal(pe.weight[:4], before[:4])


def test_rotary_module_forms():
    rope = ft.RotaryEmbedding(16, base=500.0)
    q, k = torch.randn(2, 4, 5, 16), torch.randn(2, 1, 5, 16)
    q_rot, k_rot = rope(q, k, offset=torch.tensor([3, 9]))
    expected = reference.apply_rotary(float64_of(q), float64_of(k), offset=np.array([3, 9]), base=500.0)
    for got, want in zip((q_rot, k_rot), expected):
        assert_within(float64_of(got), want, tolerance("float32", want, 4.0), "RotaryEmbedding")
    positions = torch.tensor([[5, 6, 7, 8, 9]])
    assert torch.equal(rope(q, positions=positions), rope(q, input_pos=positions))  # torchtune's name
    assert torch.equal(rope(q, positions=positions), rope(q, offset=5))
    with pytest.raises(ValueError, match="input_pos is torchtune's name for positions"):
        rope(q, positions=positions, input_pos=positions)
    with pytest.raises(ValueError, match="built for dim=16"):
        rope(torch.randn(1, 2, 3, 8))
    assert list(rope.state_dict()) == []
    rope.reset_parameters()


def test_rotary_module_reads_a_config_once():
    """A Hugging Face-like config (Phi: partial rotary) as scaling, the same as the NumPy-facing function."""
    phi = SimpleNamespace(hidden_size=128, num_attention_heads=4, max_position_embeddings=2048,
                          rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                           "partial_rotary_factor": 0.5})
    rope = ft.RotaryEmbedding(scaling=phi)
    q = torch.randn(1, 4, 6, 32, dtype=torch.float64)
    expected = reference.apply_rotary(q.numpy().copy(), offset=10, scaling=phi)
    assert_within(rope(q, offset=10).numpy(), expected, tolerance("float64", expected), "Phi config")
    phi.rope_parameters["rope_theta"] = 1.0  # read once, at construction
    assert_within(rope(q, offset=10).numpy(), expected, tolerance("float64", expected), "config read once")
    with pytest.raises(ValueError, match="config's head width is 32"):
        rope(torch.randn(1, 4, 6, 64))


def test_rotary_module_refuses_a_per_layer_config_at_construction():
    gemma3 = SimpleNamespace(head_dim=16, rope_parameters={
        "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6},
        "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}})
    with pytest.raises(ValueError, match="one rope dict per layer type"):
        ft.RotaryEmbedding(scaling=gemma3)


def test_alibi_module():
    alibi = ft.ALiBi(6)
    scores = torch.randn(2, 6, 3, 8)
    expected = reference.add_alibi(float64_of(scores), offset=np.array([5, 0]))
    assert_within(float64_of(alibi(scores, offset=torch.tensor([5, 0]))), expected,
                  tolerance("float32", expected, float64_of(scores)), "ALiBi")
    assert list(alibi.state_dict()) == []
    with pytest.raises(ValueError, match="built for n_heads=6"):
        alibi(torch.randn(1, 4, 3, 3))
    custom = ft.ALiBi(2, slopes=[0.5, 0.25]).to(torch.float64)
    assert list(custom.state_dict()) == [] and custom.slopes.dtype == torch.float64
    expected = reference.add_alibi(np.zeros((1, 2, 2, 3)), slopes=[0.5, 0.25], offset=1)
    assert np.array_equal(custom(torch.zeros(1, 2, 2, 3), offset=1).numpy(), expected)


def test_t5_module_learns_its_buckets():
    bias = ft.T5RelativeBias(3, bidirectional=True, num_buckets=8, max_distance=16)
    assert list(bias.state_dict()) == ["weight"] and tuple(bias.weight.shape) == (8, 3)
    scores = torch.randn(2, 3, 4, 6)
    out = bias(scores, offset=torch.tensor([0, 2]))
    expected = reference.add_relative_bias(float64_of(scores), float64_of(bias.weight), bidirectional=True,
                                           num_buckets=8, max_distance=16, offset=np.array([0, 2]))
    assert_within(float64_of(out), expected, tolerance("float32", expected, float64_of(scores)), "T5")
    out.sum().backward()
    assert bias.weight.grad.sum().item() == 2 * 3 * 4 * 6  # each (query, key) pair of each head counted once


@pytest.mark.parametrize("module", [lambda: ft.LearnedPositionalEmbedding(10, 4),
                                    lambda: ft.T5RelativeBias(2, bidirectional=False)])
def test_learned_modules_round_trip_their_state(module):
    first, second = module(), module()
    second.load_state_dict(first.state_dict())
    assert torch.equal(first.weight, second.weight)
