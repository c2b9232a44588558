"""fastpe.hf.apply_rotary_pos_emb against Hugging Face's own
apply_rotary_pos_emb (Llama's; Phi-3's for cos narrower than the heads), in
values and gradients.

HF computes ``q * cos + rotate_half(q) * sin`` in the tensors' dtype (three
roundings); fastpe rounds each element once. Both agree to
``4 eps (|q| + |rotate_half(q)|)`` elementwise.
"""

import pytest
from optional import conformance_import

torch = conformance_import("torch")
transformers = conformance_import("transformers")

from optional import single_threaded_torch  # noqa: E402,F401 (autouse fixture)
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb as llama_rotary  # noqa: E402
from transformers.models.llama.modeling_llama import rotate_half  # noqa: E402
from transformers.models.phi3.modeling_phi3 import apply_rotary_pos_emb as phi3_rotary  # noqa: E402

import fastpe.hf  # noqa: E402

DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]


def _tables(batch, length, width, dtype, offset=0, scale=1.0):
    k = torch.arange(0, width, 2, dtype=torch.float64)
    positions = torch.arange(length, dtype=torch.float64)[None] + offset + torch.arange(batch)[:, None] * 7
    angles = positions[..., None] * 10000.0 ** (-k / width)
    angles = torch.cat([angles, angles], dim=-1)
    return (scale * angles.cos()).to(dtype), (scale * angles.sin()).to(dtype)


def _tolerance(x, dtype):
    x = x.double()
    return 4 * torch.finfo(dtype).eps * (x.abs() + rotate_half(x).abs()) + torch.finfo(dtype).tiny


def _close(got, expected, x, dtype, what):
    diff = (got.double() - expected.double()).abs()
    tol = _tolerance(x, dtype)
    assert (diff <= tol).all(), f"{what}: off by {(diff - tol).max().item():.3g} beyond the bound"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("unsqueeze_dim", [1, 2])
def test_matches_hf(dtype, unsqueeze_dim):
    gen = torch.Generator().manual_seed(0)
    heads_first = unsqueeze_dim == 1
    shape_q = (2, 4, 9, 16) if heads_first else (2, 9, 4, 16)
    shape_k = (2, 2, 9, 16) if heads_first else (2, 9, 2, 16)
    q = torch.randn(shape_q, generator=gen).to(dtype)
    k = torch.randn(shape_k, generator=gen).to(dtype)
    cos, sin = _tables(2, 9, 16, dtype, offset=300)
    expected = llama_rotary(q, k, cos, sin, unsqueeze_dim=unsqueeze_dim)
    got = fastpe.hf.apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=unsqueeze_dim)
    for g, e, x, name in zip(got, expected, (q, k), "qk"):
        assert g.dtype == dtype and g.shape == x.shape
        _close(g, e, x, dtype, f"{name}, {dtype}, unsqueeze_dim={unsqueeze_dim}")


def test_narrower_tables_rotate_the_first_channels_as_phi3_does():
    gen = torch.Generator().manual_seed(1)
    q, k = torch.randn(2, 4, 6, 32, generator=gen), torch.randn(2, 2, 6, 32, generator=gen)
    cos, sin = _tables(2, 6, 16, torch.float32, offset=40)
    expected = phi3_rotary(q, k, cos, sin)
    got = fastpe.hf.apply_rotary_pos_emb(q, k, cos, sin)
    for g, e, x in zip(got, expected, (q, k)):
        assert torch.equal(g[..., 16:], x[..., 16:])
        _close(g[..., :16], e[..., :16], x[..., :16], torch.float32, "the first 16 channels")


def test_backward_matches_hf_autograd():
    """Gradients to q, k, cos and sin (scaled tables, as yarn's) equal autograd's through HF's function."""
    gen = torch.Generator().manual_seed(2)
    inputs = [torch.randn(2, 4, 5, 8, generator=gen, dtype=torch.float64),
              torch.randn(2, 2, 5, 8, generator=gen, dtype=torch.float64),
              *_tables(2, 5, 8, torch.float64, offset=11, scale=1.2)]
    weights = [torch.randn(2, 4, 5, 8, generator=gen, dtype=torch.float64),
               torch.randn(2, 2, 5, 8, generator=gen, dtype=torch.float64)]

    def gradients(function):
        leaves = [x.clone().requires_grad_() for x in inputs]
        q_embed, k_embed = function(*leaves)
        ((q_embed * weights[0]).sum() + (k_embed * weights[1]).sum()).backward()
        return [leaf.grad for leaf in leaves]

    for ours, theirs, name in zip(gradients(fastpe.hf.apply_rotary_pos_emb), gradients(llama_rotary),
                                  ("q", "k", "cos", "sin")):
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12, msg=f"gradient to {name}")


def test_gradcheck():
    """q and k; cos and sin are checked against HF's autograd above (gradcheck's perturbations would break
    the repeated halves that fastpe.torch.apply_rotary_cos_sin requires of them)."""
    gen = torch.Generator().manual_seed(3)
    q = torch.randn(1, 2, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    k = torch.randn(1, 1, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    cos, sin = _tables(1, 3, 4, torch.float64, offset=5, scale=1.2)
    assert torch.autograd.gradcheck(lambda q, k: fastpe.hf.apply_rotary_pos_emb(q, k, cos, sin), (q, k))


def test_an_unsqueeze_dim_that_moves_the_batch_is_refused_for_stand_ins():
    model_positions = torch.arange(4)[None]
    from fastpe.hf._rotation import RotaryCall

    cos, sin = RotaryCall(model_positions, 8, "half", {}).tables(torch.zeros(()), 8)
    with pytest.raises(ValueError, match="unsqueeze_dim=0 with fastpe.hf's rotation: the batch must stay first"):
        fastpe.hf.apply_rotary_pos_emb(torch.zeros(1, 2, 4, 8), torch.zeros(1, 2, 4, 8), cos, sin, unsqueeze_dim=0)
