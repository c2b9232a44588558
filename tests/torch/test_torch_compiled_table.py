"""add_table inside torch.compile: traced as torch operations (fastpe.torch._graph.table_added), which the
compiler fuses with the operations around it, for float32 and float64 x and tables with an offset (a tensor,
one per sequence or one for all, or a Python int) and no scale. Compared bit for bit with the kernels' eager
result and with the NumPy reference's sum, with no graph break and one compilation for every offset tensor;
what it does not trace (16-bit x, a scale, positions) calls the registered operator."""

import numpy as np
import pytest
from optional import torch_or_skip
from util import assert_same_bits

torch = torch_or_skip()

import torch._dynamo.testing  # noqa: E402

import fastpe.torch as ft  # noqa: E402
from fastpe import reference  # noqa: E402
from torch_cases import COMPILE_TEST_MARKS, GraphRecorder, float64_of, fresh_dynamo, seeded_randn  # noqa: E402,F401

pytestmark = COMPILE_TEST_MARKS


def _compiled(fn, backend="inductor"):
    counter = torch._dynamo.testing.CompileCounterWithBackend(backend)
    return torch.compile(fn, backend=counter, fullgraph=True), counter


def _step(x, table, offset):
    return ft.add_table(x, table, offset=offset) * 0.5


DTYPES = [(torch.float32, torch.float32), (torch.float64, torch.float64), (torch.float32, torch.float64),
          (torch.float64, torch.float32)]


@pytest.mark.parametrize("x_dtype, table_dtype", DTYPES, ids=str)
def test_the_traced_sum_is_the_kernels(x_dtype, table_dtype):
    """inductor's code gives the eager call's bits (the kernels'), for 0-d and per-sequence offsets, and
    the NumPy reference's sum rounded once to x's dtype; one compilation serves every offset."""
    table = seeded_randn(70, 24, dtype=table_dtype, seed=1)
    x = seeded_randn(3, 5, 24, dtype=x_dtype, seed=2)
    compiled, counter = _compiled(_step)
    for offset in (torch.tensor(0), torch.tensor(65), torch.tensor(17)):
        got = compiled(x, table, offset)
        with torch.no_grad():
            want = _step(x, table, offset)
        assert torch.equal(got, want), f"offset {offset}"
        exact = reference.add_table(float64_of(x), float64_of(table), offset=int(offset))
        rounded = torch.from_numpy(exact).to(x_dtype) * 0.5
        assert torch.equal(got, rounded), f"offset {offset}: not the exact sum rounded once"
    assert counter.frame_count == 1
    compiled, counter = _compiled(_step)
    for offset in (torch.tensor([0, 40, 65]), torch.tensor([3, 2, 1])):
        assert torch.equal(compiled(x, table, offset), _step(x, table, offset))
    assert counter.frame_count == 1


def test_it_is_traced_and_the_rest_takes_the_operator():
    table = seeded_randn(40, 8, dtype=torch.float32, seed=3)
    x = seeded_randn(2, 3, 8, dtype=torch.float32, seed=4)
    calls = {
        "traced": lambda x, o: ft.add_table(x, table, offset=o),
        "python int": lambda x, o: ft.add_table(x, table, offset=5),
        "float16": lambda x, o: ft.add_table(x.half(), table, offset=o).float(),
        "scale": lambda x, o: ft.add_table(x, table, offset=o, scale=2.0),
        "positions": lambda x, o: ft.add_table(x, table, positions=o + torch.arange(3)),
    }
    for name, fn in calls.items():
        torch._dynamo.reset()
        recorder = GraphRecorder()
        got = torch.compile(fn, backend=recorder, fullgraph=True)(x, torch.tensor(4))
        assert torch.equal(got, fn(x, torch.tensor(4))), name
        traced = "fastpe.add_table.default" not in recorder.fastpe_operators()
        assert traced == (name in ("traced", "python int")), f"{name}: {recorder.fastpe_operators()}"


@pytest.mark.parametrize("offset", [torch.tensor(38), torch.tensor(-1), torch.tensor([0, 38])], ids=str)
def test_rows_beyond_the_table_raise_fastpes_error_when_the_graph_runs(offset):
    table, x = seeded_randn(40, 8, dtype=torch.float32, seed=5), seeded_randn(2, 3, 8, dtype=torch.float32, seed=6)
    compiled, _ = _compiled(_step)
    compiled(x, table, torch.zeros_like(offset))
    with pytest.raises(RuntimeError, match=r"positions offset \+ t \(t < 3\) must lie in \[0, 40\)"):
        compiled(x, table, offset)
    with pytest.raises(IndexError, match=r"positions offset \+ t \(t < 3\) must lie in \[0, 40\)"):
        _step(x, table, offset)


def test_gradients_through_the_traced_sum():
    """float64 gradcheck of the compiled form, to x and to the table (the scatter-add of the rows read),
    and the same gradients as the eager operator's."""
    table = seeded_randn(12, 6, dtype=torch.float64, seed=7).requires_grad_()
    x = seeded_randn(2, 3, 6, dtype=torch.float64, seed=8).requires_grad_()
    offset = torch.tensor([1, 7])
    compiled, _ = _compiled(lambda x, table: ft.add_table(x, table, offset=offset), backend="aot_eager")
    assert torch.autograd.gradcheck(compiled, (x, table))
    weights = seeded_randn(2, 3, 6, dtype=torch.float64, seed=9)
    (compiled(x, table) * weights).sum().backward()
    grads = x.grad.clone(), table.grad.clone()
    x.grad = table.grad = None
    (ft.add_table(x, table, offset=offset) * weights).sum().backward()
    assert torch.equal(grads[0], x.grad)
    assert_same_bits(grads[1].numpy(), table.grad.numpy(), "table gradient")
    expected = np.zeros((12, 6))
    for b, o in enumerate(offset.tolist()):
        expected[o:o + 3] += weights[b].numpy()
    assert np.allclose(table.grad.numpy(), expected, rtol=0, atol=1e-15)
