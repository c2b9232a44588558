"""apply_rotary inside torch.compile and torch.export: a rotation by integer
positions is traced as torch operations (fastpe.torch._graph) that the
compiler fuses, from fastpe's float64 cos/sin rows; the rest takes the
registered operator. Compared with fastpe.reference and exact values
(mpmath), with no graph break and no recompile for new positions."""

import numpy as np
import pytest
from optional import torch_or_skip
from util import assert_within

torch = torch_or_skip()

import torch._dynamo.testing  # noqa: E402

import exact  # noqa: E402
import fastpe.torch as ft  # noqa: E402
from fastpe import reference  # noqa: E402
from torch_cases import (COMPILE_TEST_MARKS, GraphRecorder, float64_of, fresh_dynamo,  # noqa: E402,F401
                         seeded_randn, tolerance)

# Inductor's own imports warn so (torch 2.13); pytest turns warnings into errors.
pytestmark = COMPILE_TEST_MARKS

LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 64, "rope_theta": 500000.0}
YARN = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32, "rope_theta": 10000.0}
DYNAMIC = {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0, "max_position_embeddings": 4}


def _compile(fn, backend=None, **kwargs):
    graphs = GraphRecorder()
    counter = torch._dynamo.testing.CompileCounterWithBackend(backend or graphs)
    return torch.compile(fn, backend=counter, fullgraph=True, **kwargs), counter, graphs


def _reference(arrays, **kwargs):
    rotated = reference.apply_rotary(*[float64_of(a) for a in arrays], **kwargs)
    return [rotated] if len(arrays) == 1 else list(rotated)


def _assert_contract(got, arrays, expected, msg):
    for g, a, e in zip(got, arrays, expected):
        magnitude = np.abs(float64_of(a)).max(axis=-1, keepdims=True)
        dtype = str(a.dtype).removeprefix("torch.")
        assert g.dtype == a.dtype and g.shape == a.shape, msg
        assert_within(float64_of(g), e, tolerance(dtype, e, magnitude), msg)


# (dtype, layout, scaling, rotary_dim, how positions are given, seq_axis)
CASES = [
    ("float32", "half", None, None, "int", -2),
    ("float32", "interleaved", None, None, "tensor", -2),
    ("float32", "half", LLAMA3, None, "per-sequence", -2),
    ("float32", "half", YARN, None, "positions", -2),  # an attention factor
    ("float32", "half", None, 10, "positions", -3),  # (B, T, H, D), partial rotation
    ("float32", "interleaved", YARN, 6, "per-sequence", -3),
    ("float64", "half", LLAMA3, None, "positions", -2),
    ("float64", "interleaved", None, 8, "tensor", -3),
    ("float16", "half", YARN, None, "tensor", -2),
    ("bfloat16", "interleaved", LLAMA3, None, "positions", -2),
    ("bfloat16", "half", None, 12, "per-sequence", -2),
]


def _where(kind, step, B, T):
    """The call's positions as apply_rotary's keywords, and as fastpe.reference's."""
    start = 37 * step + 3
    if kind == "int":
        return {"offset": start}, {"offset": start}
    if kind == "tensor":
        return {"offset": torch.tensor(start)}, {"offset": start}
    if kind == "per-sequence":
        offsets = np.array([start, 1000 * step + 11])[:B]
        return {"offset": torch.from_numpy(offsets)}, {"offset": offsets}
    positions = (np.arange(B * T).reshape(B, T) * (step + 2) + start) % 5000
    return {"positions": torch.from_numpy(positions)}, {"positions": positions}


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[1]}-{c[4]}-axis{c[5]}-{i}" for i, c in enumerate(CASES)])
def test_compiled_rotation_keeps_the_contract_with_one_graph(case):
    dtype, layout, scaling, rotary_dim, kind, seq_axis = case
    B, T = 2, 5
    shape_q, shape_k = ((B, 4, T, 16), (B, 2, T, 16)) if seq_axis == -2 else ((B, T, 4, 16), (B, T, 2, 16))
    q, k = seeded_randn(*shape_q, dtype=getattr(torch, dtype), seed=1), seeded_randn(*shape_k, dtype=getattr(torch, dtype),
                                                                        seed=2)
    options = dict(layout=layout, scaling=scaling, rotary_dim=rotary_dim, seq_axis=seq_axis)
    compiled, counter, graphs = _compile(lambda q, k, where: ft.apply_rotary(q, k, **where, **options))
    for step in range(3):
        where, where_ref = _where(kind, step, B, T)
        got = compiled(q, k, where)
        _assert_contract(got, [q, k], _reference([q, k], **where_ref, **options), f"{case}, step {step}")
    assert graphs.fastpe_operators() == set(), "traced as torch operations, not the opaque operator"
    assert counter.frame_count == (2 if kind == "int" else 1), "tensors: one graph (an int: Dynamo's own rule)"


@pytest.mark.parametrize("sign", [1, -1])
def test_compiled_rotation_is_exact_to_the_largest_positions(sign):
    """float64 tensors: within the float64 contract (1e-9) of the exact cos/sin (mpmath), up to 2**53 - 1."""
    D = 32
    unit = torch.cat([torch.ones(1, 1, 1, D // 2), torch.zeros(1, 1, 1, D // 2)], dim=-1).double()  # (1, 0) pairs
    compiled, counter, _ = _compile(lambda q, offset: ft.apply_rotary(q, offset=offset, base=500000.0))
    positions = [0, 255, 256, 2**31 + 5, 2**40 + 3, 2**48 - 1, 2**48, 2**52 + 17, 2**53 - 1]
    cos, sin = exact.cos_sin([sign * p for p in positions], exact.vaswani(D, 500000.0, D // 2))
    for i, p in enumerate(positions):
        got = compiled(unit, torch.tensor(sign * p))[0, 0, 0].numpy()
        assert_within(got, np.concatenate([cos[i], sin[i]]), 1e-9, f"position {sign * p}")
    assert counter.frame_count == 1


def test_no_recompile_for_new_positions_with_inductor():
    """The decode step as a model compiles it (inductor, static shapes): new offsets and position ids
    are data of one graph."""
    q, k = seeded_randn(1, 8, 1, 32, seed=3), seeded_randn(1, 2, 1, 32, seed=4)
    counter = torch._dynamo.testing.CompileCounterWithBackend("inductor")

    def step(q, k, offset, position_ids):
        q1, k1 = ft.apply_rotary(q, k, offset=offset, scaling=LLAMA3)
        q2, k2 = ft.apply_rotary(q, k, positions=position_ids, scaling=LLAMA3)
        return q1 * 0.5 + q2, k1 - k2

    compiled = torch.compile(step, backend=counter, fullgraph=True, dynamic=False)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for p in (0, 7, 4095, 70000, 2**20 + 1):
            got = compiled(q, k, torch.tensor(p), torch.tensor([[p + 3]]))
            r1 = _reference([q, k], offset=p, scaling=LLAMA3)
            r2 = _reference([q, k], offset=p + 3, scaling=LLAMA3)
            want = [0.5 * r1[0] + r2[0], r1[1] - r2[1]]
            _assert_contract(got, [q, k], want, f"position {p}")
    assert counter.frame_count == 1


def test_a_symbolic_int_offset_is_traced_too():
    """A Python int offset that Dynamo made a symbol (its second value) is data of the traced rotation."""
    q = seeded_randn(1, 4, 3, 16, seed=5)
    compiled, counter, graphs = _compile(lambda q, offset: ft.apply_rotary(q, offset=offset))
    for p in (3, 17, 400, 2**20):
        _assert_contract([compiled(q, p)], [q], _reference([q], offset=p), f"offset {p}")
    assert counter.frame_count == 2 and graphs.fastpe_operators() == set()


def test_compiled_gradients_are_the_transposed_rotation():
    """d/dq sum(w * rot_p(q)) = rot_-p(w) (a rotation's transpose is its inverse), from the reference."""
    q = seeded_randn(2, 3, 4, 16, seed=6, grad=True)
    w = seeded_randn(2, 3, 4, 16, seed=7)
    positions = torch.tensor([[5, 9, 2**20, 3], [0, 1, 2, 70000]])
    compiled, _, graphs = _compile(lambda q, pos: (ft.apply_rotary(q, positions=pos, scaling=LLAMA3) * w).sum())
    compiled(q, positions).backward()
    expected = reference.apply_rotary(float64_of(w), positions=-positions.numpy(), scaling=LLAMA3)
    assert_within(float64_of(q.grad), expected, tolerance("float32", expected, 4.0), "the gradient to q")
    assert graphs.fastpe_operators() == set()


def test_compiled_rotation_passes_gradcheck():
    q = seeded_randn(1, 2, 3, 8, dtype=torch.float64, seed=8, grad=True)
    k = seeded_randn(1, 1, 3, 8, dtype=torch.float64, seed=9, grad=True)
    offset = torch.tensor([2**30 + 1])
    compiled, counter, graphs = _compile(lambda q, k: ft.apply_rotary(q, k, offset=offset, scaling=YARN,
                                                                       layout="interleaved"))
    assert torch.autograd.gradcheck(compiled, (q, k))
    assert graphs.fastpe_operators() == set()


def test_compiled_in_place_rotation_of_one_tensor():
    cache = seeded_randn(1, 2, 6, 16, seed=10)
    expected = reference.apply_rotary(float64_of(cache), offset=40)

    def rotate_cache(c, offset):
        c = c.clone()
        out = ft.apply_rotary_(c, offset=offset)
        return out, out is c

    compiled, _, graphs = _compile(rotate_cache)
    got, same = compiled(cache, torch.tensor(40))
    assert same
    _assert_contract([got], [cache], [expected], "in place")
    assert graphs.fastpe_operators() == set()


def test_two_tensors_in_place_keep_the_operator():
    """The operator checks whether q and k overlap when the graph runs (a trace cannot)."""
    q, k = seeded_randn(1, 2, 3, 8, seed=11), seeded_randn(1, 2, 3, 8, seed=12)
    compiled, _, graphs = _compile(lambda q, k: ft.apply_rotary_(q.clone(), k.clone(), offset=5))
    _assert_contract(compiled(q, k), [q, k], _reference([q, k], offset=5), "q and k in place")
    assert graphs.fastpe_operators() == {"fastpe.apply_rotary_.default"}


@pytest.mark.parametrize("call", ["dynamic scaling", "inv_freq", "float positions", "symbolic sequence length"])
def test_what_cannot_be_traced_takes_the_operator(call):
    q = seeded_randn(1, 2, 5, 16, seed=13)
    inv_freq = torch.from_numpy(fastpe_inv_freq := 1.0 / 10000.0 ** (np.arange(8) / 8))
    calls = {
        "dynamic scaling": (lambda q: ft.apply_rotary(q, offset=torch.tensor(3), scaling=DYNAMIC),
                            dict(offset=3, scaling=DYNAMIC)),
        "inv_freq": (lambda q: ft.apply_rotary(q, offset=torch.tensor(3), inv_freq=inv_freq),
                     dict(offset=3, inv_freq=fastpe_inv_freq)),
        "float positions": (lambda q: ft.apply_rotary(q, positions=torch.arange(5.0) + 0.5),
                            dict(positions=np.arange(5.0) + 0.5)),
        "symbolic sequence length": (lambda q: ft.apply_rotary(q, offset=torch.tensor(3)), dict(offset=3)),
    }
    fn, reference_kwargs = calls[call]
    compiled, _, graphs = _compile(fn, dynamic=call == "symbolic sequence length")
    _assert_contract([compiled(q)], [q], _reference([q], **reference_kwargs), call)
    assert graphs.fastpe_operators() == {"fastpe.apply_rotary.default"}


def test_a_compiled_position_beyond_the_limit_raises_fastpes_message():
    compiled, _, _ = _compile(lambda q, offset: ft.apply_rotary(q, offset=offset))
    q = seeded_randn(1, 1, 2, 8)
    compiled(q, torch.tensor(2**53 - 2))  # positions 2**53 - 2 and 2**53 - 1: accepted
    with pytest.raises(RuntimeError, match="2\\*\\*53"):
        compiled(q, torch.tensor(2**53 - 1))


def test_a_call_fastpe_refuses_is_refused_under_compile():
    compiled, _, _ = _compile(lambda q: ft.apply_rotary(q, offset=torch.tensor(1), rotary_dim=3))
    with pytest.raises(Exception, match="rotary_dim must be even and >= 2") as error:
        compiled(seeded_randn(1, 1, 2, 8))
    assert isinstance(error.value, ValueError) or isinstance(error.value.__cause__, ValueError)


class _RotaryLayer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rope = ft.RotaryEmbedding(16, scaling=YARN)

    def forward(self, q, k, position_ids):
        return self.rope(q, k, positions=position_ids)


def test_export_traces_the_rotation_as_torch_operations():
    """The exported program rotates in aten operations (no fastpe operator to load where it runs)."""
    q, k = seeded_randn(2, 4, 3, 16, seed=14), seeded_randn(2, 2, 3, 16, seed=15)
    program = torch.export.export(_RotaryLayer(), (q, k, torch.tensor([[0, 1, 2], [7, 8, 9]])))
    called = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert not any(name.startswith("fastpe.") for name in called)
    for start in (0, 5000, 2**20):
        positions = np.arange(6).reshape(2, 3) + start
        got = program.module()(q, k, torch.from_numpy(positions))
        _assert_contract(got, [q, k], _reference([q, k], positions=positions, scaling=YARN), f"start {start}")
