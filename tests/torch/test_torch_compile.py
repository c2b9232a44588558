"""fastpe.torch's operators under torch.library.opcheck, torch.compile (inductor,
fullgraph=True: no graph break) and torch.export: the compiled results match
eager, and a new offset or new positions reuse the compiled graph."""

import pytest
from optional import torch_or_skip

torch = torch_or_skip()

import torch._dynamo.testing  # noqa: E402

import fastpe.torch as ft  # noqa: E402
from fastpe.torch._options import encode  # noqa: E402

# Inductor's own imports warn so (torch 2.13); pytest turns warnings into errors.
# torch 2.14's opcheck reads .grad of the non-leaf copies it makes itself and warns so.
pytestmark = [pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf:UserWarning")]

SCALING = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
           "original_max_position_embeddings": 64, "rope_theta": 500000.0}


def _randn(*shape, grad=False, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype).requires_grad_(grad)


def _opcheck_cases():
    ops = torch.ops.fastpe
    x, table, scores = _randn(2, 5, 8, grad=True), _randn(12, 8, grad=True), _randn(2, 3, 4, 6, grad=True)
    q, k = _randn(2, 3, 5, 8, grad=True), _randn(2, 1, 5, 8, grad=True)
    cos, sin = (t[None].requires_grad_() for t in ft.rotary_cos_sin(5, 8))
    bias_table = _randn(8, 3, grad=True)
    off, pos = torch.tensor([1, 4]), torch.tensor([[0, 3, 1, 9, 2], [4, 4, 4, 4, 4]])
    sin_opts = encode(scale=2.0, base=None, layout=None, preset=None, padding_idx=None, min_timescale=None,
                      max_timescale=None, num_threads=None)
    rot_opts = encode(base=None, layout="half", rotary_dim=None, scaling=SCALING, seq_axis=-2, num_threads=None)
    t5_opts = encode(bidirectional=True, num_buckets=8, max_distance=20, num_threads=None)
    alibi_opts = encode(max_bias=8.0, num_threads=None)

    def detached(*tensors):
        return [t.detach().clone() for t in tensors]

    return [
        (ops.add_sinusoidal, (x, off, None, None, sin_opts)),
        (ops.add_sinusoidal_, (*detached(x), None, pos, None, sin_opts)),
        (ops.add_table, (x, table, None, pos, encode(scale=None, num_threads=None))),
        (ops.add_table_, (*detached(x, table), off, None, encode(scale=0.5, num_threads=None))),
        (ops.table_gradient, (x, table, off, None)),
        (ops.apply_rotary, ([q, k], off, None, None, rot_opts, False)),
        (ops.apply_rotary, ([q], None, pos, None, rot_opts, True)),
        (ops.apply_rotary_, (detached(q, k), off, None, None, rot_opts, False)),
        (ops.apply_rotary_cos_sin, ([q, k], cos, sin, 1, False)),
        (ops.apply_rotary_cos_sin_, (detached(q, k), *detached(cos, sin), 1, True)),
        (ops.add_alibi, (scores, None, off, None, alibi_opts)),
        (ops.add_alibi_, (*detached(scores), None, None, torch.arange(6.0)[None], alibi_opts)),
        (ops.add_relative_bias, (scores, bias_table, off, t5_opts)),
        (ops.add_relative_bias_, (*detached(scores, bias_table), off, t5_opts)),
        (ops.relative_bias_gradient, (scores, bias_table, off, t5_opts)),
        (ops.make_positions, (torch.tensor([[1, 5, 6]]), 1, torch.tensor(2))),
    ]


@pytest.mark.parametrize("case", range(len(_opcheck_cases())))
def test_opcheck(case):
    op, args = _opcheck_cases()[case]
    torch.library.opcheck(op, args)


def test_every_operator_is_opchecked():
    registered = {name for name in dir(torch.ops.fastpe) if isinstance(getattr(torch.ops.fastpe, name),
                                                                        torch._ops.OpOverloadPacket)}
    checked = {op._qualified_op_name.split("::")[1] for op, _ in _opcheck_cases()}
    assert registered == checked


def _compiled(fn):
    counter = torch._dynamo.testing.CompileCounterWithBackend("inductor")
    return torch.compile(fn, backend=counter, fullgraph=True), counter


def test_compiled_encodings_match_eager_and_reuse_the_graph():
    """One graph serves every offset and every set of positions given as tensors."""
    table, bias_table = _randn(64, 16, seed=1), _randn(16, 4, seed=2)

    def layer(x, q, k, scores, offset, positions):
        h = ft.add_sinusoidal(x, offset=offset, scale=4.0)
        h = ft.add_table(h, table, positions=positions)
        q, k = ft.apply_rotary(q, k, positions=positions, scaling=SCALING)
        s = ft.add_alibi(scores, offset=offset)
        s = ft.add_relative_bias(s, bias_table, bidirectional=False, num_buckets=16, max_distance=50, offset=offset)
        return h * 2, q + 1, k, s

    compiled, counter = _compiled(layer)
    x, q, k, scores = _randn(2, 6, 16, seed=3), _randn(2, 4, 6, 16, seed=4), _randn(2, 2, 6, 16, seed=5), _randn(
        2, 4, 6, 9, seed=6)
    for step in range(4):
        offset = torch.tensor([step * 7, 40 - step])
        positions = torch.arange(12).reshape(2, 6) * (step + 1) % 64
        got, want = compiled(x, q, k, scores, offset, positions), layer(x, q, k, scores, offset, positions)
        for g, w in zip(got, want):
            assert torch.allclose(g, w, atol=1e-5), f"step {step}"
    assert counter.frame_count == 1, f"{counter.frame_count} compilations for new offsets and positions"


def test_a_python_int_offset_recompiles_once_then_never():
    """Dynamo's own rule for an int argument: static at first, dynamic after one recompile
    (none with dynamic=True)."""
    q = _randn(1, 4, 1, 16)
    compiled, counter = _compiled(lambda q, offset: ft.apply_rotary(q, offset=offset) * 2)
    for offset in (3, 17, 400, 4000, 9):
        assert torch.allclose(compiled(q, offset), ft.apply_rotary(q, offset=offset) * 2, atol=1e-6)
    assert counter.frame_count <= 2
    counter = torch._dynamo.testing.CompileCounterWithBackend("inductor")
    dynamic = torch.compile(lambda q, offset: ft.apply_rotary(q, offset=offset) * 2, backend=counter,
                            fullgraph=True, dynamic=True)
    for offset in (3, 17, 400):
        assert torch.allclose(dynamic(q, offset), ft.apply_rotary(q, offset=offset) * 2, atol=1e-6)
    assert counter.frame_count == 1, "dynamic=True: the int is a symbol from the start"


def test_compiled_in_place_twins():
    def step(q, k, cos, sin, offset):
        q, k = q.clone(), k.clone()
        ft.apply_rotary_(q, k, offset=offset)
        ft.apply_rotary_cos_sin_(q, k, cos, sin)
        return q, k

    compiled, counter = _compiled(step)
    q, k = _randn(1, 4, 3, 8), _randn(1, 2, 3, 8)
    cos, sin = (t[None] for t in ft.rotary_cos_sin(3, 8, offset=20))
    for offset in (0, 11):
        for g, w in zip(compiled(q, k, cos, sin, torch.tensor(offset)), step(q, k, cos, sin, torch.tensor(offset))):
            assert torch.allclose(g, w, atol=1e-6)
    assert counter.frame_count == 1


def test_compiled_training_step_matches_eager():
    """Forward and backward through the compiled operators: the same gradients as eager."""
    def loss(x, q, table, offset):
        h = ft.add_table(ft.add_sinusoidal(x, offset=offset), table, offset=offset)
        r = ft.apply_rotary(q, offset=offset, layout="interleaved")
        return (h * h).sum() + (r * torch.arange(8.0)).sum()

    compiled, _ = _compiled(loss)
    inputs = (_randn(2, 3, 8, grad=True, seed=7), _randn(2, 2, 3, 8, grad=True, seed=8),
              _randn(16, 8, grad=True, seed=9))
    eager = tuple(t.detach().clone().requires_grad_() for t in inputs)
    offset = torch.tensor([2, 5])
    compiled(*inputs, offset).backward()
    loss(*eager, offset).backward()
    for a, b in zip(inputs, eager):
        assert torch.allclose(a.grad, b.grad, atol=1e-5)


class _Attention(torch.nn.Module):
    """A tiny attention layer that uses fastpe.torch's modules (what torch.export is given)."""

    def __init__(self):
        super().__init__()
        self.pe = ft.SinusoidalPositionalEmbedding(32, scale=2.0)
        self.qkv = torch.nn.Linear(32, 96)
        self.rope = ft.RotaryEmbedding(8, scaling=SCALING)
        self.bias = ft.T5RelativeBias(4, bidirectional=False, num_buckets=16, max_distance=64)

    def forward(self, x, offset):
        h = self.pe(x, offset=offset)
        q, k, v = self.qkv(h).unflatten(-1, (3, 4, 8)).permute(2, 0, 3, 1, 4)
        q, k = self.rope(q, k, offset=offset)
        scores = self.bias(q @ k.transpose(-1, -2), offset=offset)
        return (scores.softmax(-1) @ v).transpose(1, 2).flatten(2)


def test_export_of_a_module_using_fastpe():
    model = _Attention().eval()
    x = _randn(2, 5, 32, seed=10)
    exported = torch.export.export(model, (x, torch.tensor(3)))
    called = {node.target for node in exported.graph.nodes if node.op == "call_function"}
    # The rotation is traced as torch operations (fastpe.torch._graph); the others call their operators
    assert {torch.ops.fastpe.add_sinusoidal.default, torch.ops.fastpe.add_relative_bias.default} <= called
    assert torch.ops.fastpe.apply_rotary.default not in called
    for offset in (3, 100):
        assert torch.allclose(exported.module()(x, torch.tensor(offset)), model(x, torch.tensor(offset)),
                              atol=1e-5)


def test_compiled_module_with_a_config():
    """A Hugging Face-like config as scaling, read once by the module; one graph for every position."""
    from types import SimpleNamespace

    config = SimpleNamespace(hidden_size=64, num_attention_heads=4, max_position_embeddings=2048,
                             rope_parameters={"rope_type": "yarn", "factor": 4.0, "rope_theta": 10000.0,
                                              "original_max_position_embeddings": 512})
    rope = ft.RotaryEmbedding(scaling=config)
    compiled, counter = _compiled(lambda q, k, pos: rope(q, k, positions=pos))
    q, k = _randn(1, 4, 3, 16), _randn(1, 2, 3, 16)
    for start in (0, 1000, 1999):
        pos = torch.arange(start, start + 3)[None]
        for g, w in zip(compiled(q, k, pos), rope(q, k, positions=pos)):
            assert torch.allclose(g, w, atol=1e-6)
    assert counter.frame_count == 1
