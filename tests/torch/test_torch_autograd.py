"""fastpe.torch under autograd: gradcheck and gradgradcheck in float64 on every
operator with a gradient (on the kernels and on the torch-ops path), the
in-place twins under autograd, and the refusals that keep a gradient from
being silently None."""

import pytest
from optional import torch_or_skip

torch = torch_or_skip()

import fastpe.torch as ft  # noqa: E402
from torch_cases import on_route  # noqa: E402

ROUTES = ("operator", "torch ops")  # autograd always takes the operator; "torch ops" forces the device path under it


def _randn(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)


def _check(fn, inputs, *, second_order=True):
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7)
    if second_order:
        assert torch.autograd.gradgradcheck(fn, inputs, eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("route", ROUTES)
def test_add_sinusoidal_gradient(route):
    x = _randn(2, 5, 8)
    with on_route(route):
        _check(lambda x: ft.add_sinusoidal(x, scale=1.5, offset=torch.tensor([2, 9])), (x,))
        _check(lambda x: ft.add_sinusoidal(x, preset="fairseq", positions=torch.tensor([3, 1, 4, 1, 5])), (x,))


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("rows", ["offset", "positions"])
def test_add_table_gradient(route, rows):
    x, table = _randn(2, 4, 6, seed=1), _randn(12, 6, seed=2)
    kw = {"offset": torch.tensor([0, 3]), "scale": 0.5} if rows == "offset" else {
        "positions": torch.tensor([[1, 1, 11, 0], [5, 1, 2, 3]])}  # row 1 read three times
    with on_route(route):
        _check(lambda x, table: ft.add_table(x, table, **kw), (x, table))


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("kw", [{"offset": 5},
                                {"positions": torch.tensor([[7, 3, 100], [0, 1, 2]]), "layout": "interleaved"},
                                {"offset": torch.tensor([40, 2]), "rotary_dim": 4,
                                 "scaling": {"rope_type": "yarn", "factor": 4.0,
                                             "original_max_position_embeddings": 8}},
                                {"offset": 30, "scaling": {"rope_type": "dynamic", "factor": 2.0,
                                                           "max_position_embeddings": 16}}],
                         ids=["offset", "positions interleaved", "partial yarn", "dynamic"])
def test_apply_rotary_gradient(route, kw):
    """The backward is the transposed rotation with the same float64 angles (and attention factor)."""
    q, k = _randn(2, 3, 3, 8, seed=3), _randn(2, 1, 3, 8, seed=4)
    with on_route(route):
        _check(lambda q, k: ft.apply_rotary(q, k, **kw), (q, k))
        _check(lambda q: ft.apply_rotary(q, **kw), (q,))


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("unsqueeze_dim", [1, 2])
def test_apply_rotary_cos_sin_gradient(route, unsqueeze_dim):
    """Gradients to q and k, and to cos and sin (tables with repeated halves, as Hugging Face builds them)."""
    shape = (2, 3, 4, 6) if unsqueeze_dim == 1 else (2, 4, 3, 6)
    q, k = _randn(*shape, seed=5), _randn(*shape, seed=6)
    angles = torch.rand(2, 4, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64) * 6

    def run(q, k, half_cos, half_sin):
        cos, sin = torch.cat([half_cos] * 2, dim=-1), torch.cat([half_sin] * 2, dim=-1)
        return ft.apply_rotary_cos_sin(q, k, cos, sin, unsqueeze_dim=unsqueeze_dim)

    with on_route(route):
        _check(run, (q, k, angles.cos().requires_grad_(), angles.sin().requires_grad_()))


@pytest.mark.parametrize("route", ROUTES)
def test_bias_gradients(route):
    scores, table = _randn(2, 3, 4, 5, seed=8), _randn(8, 3, seed=9)
    with on_route(route):
        _check(lambda s: ft.add_alibi(s, offset=torch.tensor([1, 6])), (scores,))
        _check(lambda s, t: ft.add_relative_bias(s, t, bidirectional=True, num_buckets=8, max_distance=20,
                                                 offset=torch.tensor([0, 3])), (scores, table))


def test_table_gradient_is_a_scatter_add():
    """Every row of grad lands in the row it read, repeated rows summed (an independent loop)."""
    x, table = torch.zeros(3, 4, 2, requires_grad=True), torch.zeros(6, 2, requires_grad=True)
    positions = torch.tensor([[5, 5, 0, 1], [2, 5, 3, 3], [0, 0, 0, 4]])
    grad = torch.arange(24, dtype=torch.float32).reshape(3, 4, 2)
    ft.add_table(x, table, positions=positions).backward(grad)
    expected = torch.zeros(6, 2)
    for b in range(3):
        for t in range(4):
            expected[positions[b, t]] += grad[b, t]
    assert torch.equal(table.grad, expected)


def test_relative_bias_gradient_sums_each_bucket():
    scores, table = torch.zeros(2, 2, 3, 4, requires_grad=True), torch.zeros(8, 2, requires_grad=True)
    grad = torch.randn(2, 2, 3, 4, dtype=torch.float32)
    offset = torch.tensor([0, 5])
    ft.add_relative_bias(scores, table, bidirectional=False, num_buckets=8, max_distance=10,
                         offset=offset).backward(grad)
    import fastpe

    expected = torch.zeros(8, 2, dtype=torch.float64)
    for b in range(2):
        for i in range(3):
            for j in range(4):
                bucket = int(fastpe.relative_position_bucket(j - (i + int(offset[b])), bidirectional=False,
                                                             num_buckets=8, max_distance=10))
                expected[bucket] += grad[b, :, i, j].double()
    assert torch.allclose(table.grad.double(), expected, atol=1e-6)


def test_in_place_twins_under_autograd():
    """Recorded by autograd, the twins compute out of place and copy back: gradients flow through them."""
    a = torch.randn(2, 4, 3, 8, dtype=torch.float64, requires_grad=True)
    q = a * 1.0
    ft.apply_rotary_(q, offset=3)
    grad = torch.randn_like(q)
    q.backward(grad)
    b = a.detach().clone().requires_grad_()
    ft.apply_rotary(b, offset=3).backward(grad)
    assert torch.allclose(a.grad, b.grad)
    x = torch.randn(2, 3, 4, requires_grad=True)
    y = x * 2
    assert ft.add_sinusoidal_(y, scale=3.0) is y
    y.sum().backward()
    assert torch.allclose(x.grad, torch.full_like(x, 6.0))


def test_in_place_on_a_leaf_that_requires_grad_is_refused_as_torch_does():
    leaf = torch.randn(2, 3, 4, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        ft.add_sinusoidal_(leaf)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        leaf.add_(1.0)  # the rule fastpe.torch follows


def test_in_place_write_of_a_saved_tensor_fails_at_backward():
    """The version counter: autograd sees fastpe.torch's in-place writes (eager route included)."""
    a = torch.randn(5, 4, requires_grad=True)
    b = a * 1
    c = (b * b).sum()
    with torch.no_grad():
        ft.add_sinusoidal_(b)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        c.backward()


@pytest.mark.parametrize("name,call", [
    ("offset", lambda x, t: ft.add_sinusoidal(x, offset=t)),
    ("positions", lambda x, t: ft.apply_rotary(x, positions=t)),
    ("inv_freq", lambda x, t: ft.add_sinusoidal(x, inv_freq=t[:4])),
    ("slopes", lambda x, t: ft.add_alibi(x[None], slopes=t[:2])),
    ("scale", lambda x, t: ft.add_sinusoidal(x, scale=t[0])),
])
def test_arguments_without_a_gradient_refuse_to_require_one(name, call):
    x = torch.randn(2, 8, 8)
    t = torch.arange(8, dtype=torch.float64).requires_grad_()
    with pytest.raises(ValueError, match=f"{name} requires grad.*no gradient"):
        call(x, t)
