"""apply_rotary_cos_sin (Hugging Face's apply_rotary_pos_emb) inside torch.compile:
traced as torch operations in float64 (fastpe.torch._graph.rotated_by_cos_sin)
that the compiler fuses. Compared with Hugging Face's formula evaluated
independently in NumPy float64 (bit for bit in float32, where every product
is exact in float64), with no graph break and no recompile for new tables."""

import numpy as np
import pytest
from optional import torch_or_skip
from util import assert_within

torch = torch_or_skip()

import torch._dynamo.testing  # noqa: E402

import fastpe.torch as ft  # noqa: E402
from torch_cases import (COMPILE_TEST_MARKS, GraphRecorder, float64_of, fresh_dynamo,  # noqa: E402,F401
                         seeded_randn, tolerance)

pytestmark = COMPILE_TEST_MARKS


def _tables(B, T, D, seed, batched=True):
    """cos and sin as Hugging Face's rotary modules build them: each half repeating the other."""
    g = torch.Generator().manual_seed(seed)
    angles = 100 * torch.rand(B, T, D // 2, generator=g, dtype=torch.float64)
    cos, sin = (torch.cat((t, t), dim=-1).float() for t in (angles.cos(), angles.sin()))
    return (cos, sin) if batched else (cos[0], sin[0])


def _hf_formula(a, cos, sin, unsqueeze_dim):
    """q * cos' + rotate_half(q) * sin' in NumPy float64 (Hugging Face's apply_rotary_pos_emb)."""
    a, cos, sin = float64_of(a), np.expand_dims(float64_of(cos), unsqueeze_dim), np.expand_dims(float64_of(sin),
                                                                                                  unsqueeze_dim)
    half = a.shape[-1] // 2
    return a * cos + np.concatenate((-a[..., half:], a[..., :half]), axis=-1) * sin


def _as(dtype, values):
    """float64 values rounded once to a NumPy float type of that name."""
    return values.astype(np.float32 if dtype == "float32" else np.float16)


# (dtype, unsqueeze_dim, k's heads (None: q alone), cos batched): q (B, H, T, D) unless unsqueeze_dim is 2
# ((B, T, H, D)); tables (B, T, D), or (T, D) unsqueezed at 0
CASES = [
    ("float32", 1, 2, True),
    ("float32", 2, 4, True),
    ("float32", 0, None, False),
    ("float64", 1, 2, True),
    ("float16", 2, 2, True),
    ("bfloat16", 0, 2, False),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-dim{c[1]}-k{c[2]}-{i}" for i, c in enumerate(CASES)])
def test_compiled_cos_sin_rotation_is_hugging_faces_formula_with_one_graph(case):
    dtype, unsqueeze_dim, k_heads, batched = case
    B, T, D = 2, 5, 16
    dt = getattr(torch, dtype)

    def shape(heads):
        return (B, T, heads, D) if unsqueeze_dim == 2 else (B, heads, T, D)

    q = seeded_randn(*shape(4), dtype=dt, seed=1)
    k = None if k_heads is None else seeded_randn(*shape(k_heads), dtype=dt, seed=2)
    graphs = GraphRecorder()
    counter = torch._dynamo.testing.CompileCounterWithBackend(graphs)
    compiled = torch.compile(lambda q, k, cos, sin: ft.apply_rotary_cos_sin(q, k, cos, sin,
                                                                           unsqueeze_dim=unsqueeze_dim),
                             backend=counter, fullgraph=True)
    for step in range(3):
        cos, sin = _tables(B, T, D, seed=10 + step, batched=batched)
        got = compiled(q, k, cos, sin)
        got = [got] if k is None else list(got)
        for g, a in zip(got, [q] if k is None else [q, k]):
            expected = _hf_formula(a, cos, sin, unsqueeze_dim)
            assert g.dtype == a.dtype and g.shape == a.shape
            if dtype == "float32":  # exact products, one rounding in float64, one to float32: the kernels' bits
                np.testing.assert_array_equal(float64_of(g), _as(dtype, expected), err_msg=f"{case}, step {step}")
            else:
                assert_within(float64_of(g), expected, tolerance(dtype, expected, float64_of(a)), f"{case} {step}")
    assert graphs.fastpe_operators() == set(), "traced as torch operations, not the opaque operator"
    assert counter.frame_count == 1, "new tables are data of one graph"


def test_compiled_with_inductor_gives_the_eager_bits():
    """The decode step as a model compiles it (inductor): float32 results equal to the eager kernels'."""
    q, k = seeded_randn(1, 8, 1, 32, seed=3), seeded_randn(1, 2, 1, 32, seed=4)
    counter = torch._dynamo.testing.CompileCounterWithBackend("inductor")
    compiled = torch.compile(lambda q, k, cos, sin: ft.apply_rotary_cos_sin(q, k, cos, sin), backend=counter,
                             fullgraph=True)
    for step in range(3):
        cos, sin = _tables(1, 1, 32, seed=20 + step)
        for g, w in zip(compiled(q, k, cos, sin), ft.apply_rotary_cos_sin(q, k, cos, sin)):
            assert torch.equal(g, w), f"step {step}"
    assert counter.frame_count == 1


def test_compiled_gradients_match_eager():
    """Gradients to q, k, cos and sin through the compiled rotation: autograd's of the formula, as
    the registered operator's backward gives them eagerly."""
    q, k = seeded_randn(2, 4, 3, 8, grad=True, seed=5), seeded_randn(2, 2, 3, 8, grad=True, seed=6)
    cos, sin = (t.requires_grad_() for t in _tables(2, 3, 8, seed=7))
    weights = seeded_randn(2, 4, 3, 8, seed=8), seeded_randn(2, 2, 3, 8, seed=9)

    def loss(q, k, cos, sin):
        rq, rk = ft.apply_rotary_cos_sin(q, k, cos, sin)
        return (rq * weights[0]).sum() + (rk * weights[1]).sum()

    inputs = (q, k, cos, sin)
    eager = tuple(t.detach().clone().requires_grad_() for t in inputs)
    torch.compile(loss, backend="aot_eager", fullgraph=True)(*inputs).backward()
    loss(*eager).backward()
    for name, a, b in zip(("q", "k", "cos", "sin"), inputs, eager):
        assert torch.allclose(a.grad, b.grad, atol=1e-5), name


def test_compiled_cos_sin_rotation_passes_gradcheck():
    """float64 gradients to q and k through the traced form (cos and sin are held fixed: gradcheck's
    perturbations would make their halves differ, which the graph refuses)."""
    q, k = seeded_randn(1, 2, 3, 8, dtype=torch.float64, grad=True), seeded_randn(1, 1, 3, 8, dtype=torch.float64,
                                                                                 grad=True, seed=1)
    cos, sin = (t.double() for t in _tables(1, 3, 8, seed=13))
    compiled = torch.compile(lambda q, k: ft.apply_rotary_cos_sin(q, k, cos, sin), backend="aot_eager",
                             fullgraph=True)
    assert torch.autograd.gradcheck(compiled, (q, k))


def test_compiled_tables_whose_halves_differ_are_refused_when_the_graph_runs():
    q = seeded_randn(1, 2, 3, 8, seed=11)
    cos, sin = _tables(1, 3, 8, seed=12)
    compiled = torch.compile(lambda q, cos, sin: ft.apply_rotary_cos_sin(q, None, cos, sin), fullgraph=True)
    compiled(q, cos, sin)
    uneven = cos.clone()
    uneven[0, 1, 6] += 0.5
    with pytest.raises(RuntimeError, match="cos must repeat its first half in its second"):
        compiled(q, uneven, sin)
    with pytest.raises(ValueError, match="cos must repeat its first half in its second"):
        ft.apply_rotary_cos_sin(q, None, uneven, sin)


def test_symbolic_shapes_and_refused_calls_take_the_operator():
    """dynamic=True (symbolic sizes): the registered operator, with the same results; a call fastpe
    refuses raises fastpe's error when the graph runs."""
    graphs = GraphRecorder()
    compiled = torch.compile(lambda q, cos, sin: ft.apply_rotary_cos_sin(q, None, cos, sin), backend=graphs,
                             fullgraph=True, dynamic=True)
    for T in (3, 5):
        q = seeded_randn(1, 2, T, 8, seed=T)
        cos, sin = _tables(1, T, 8, seed=T + 1)
        np.testing.assert_array_equal(float64_of(compiled(q, cos, sin)),
                                      _as("float32", _hf_formula(q, cos, sin, 1)))
    assert "fastpe.apply_rotary_cos_sin.default" in graphs.fastpe_operators()
    torch._dynamo.reset()
    static = torch.compile(lambda q, cos, sin: ft.apply_rotary_cos_sin(q, None, cos, sin), fullgraph=True)
    q, (cos, sin) = seeded_randn(1, 2, 3, 8), _tables(1, 3, 6, seed=1)  # 6 channels of tables for 8 of q
    with pytest.raises(Exception, match="do not broadcast to arrays"):
        static(q, cos, sin)
