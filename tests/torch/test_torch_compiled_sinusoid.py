"""add_sinusoidal inside torch.compile: short calls (decode steps, a few tokens: at most 8192 sine/cosine
pairs) are traced as torch operations (fastpe.torch._graph.sinusoid_added) from the digit rows the traced
rotation uses, which the compiler fuses with the operations around it; longer ones, presets, positions and
inv_freq call the registered operator. Compared with the NumPy reference within the float32 contract (the
traced rows are within a few float64 roundings of the exact ones, then rounded once), with no graph break and
one compilation for every offset tensor."""

import pytest
from optional import torch_or_skip
from util import assert_within

torch = torch_or_skip()

import torch._dynamo.testing  # noqa: E402

import fastpe.torch as ft  # noqa: E402
from fastpe import reference  # noqa: E402
from torch_cases import (COMPILE_TEST_MARKS, GraphRecorder, float64_of, fresh_dynamo,  # noqa: E402,F401
                         seeded_randn, tolerance)

pytestmark = COMPILE_TEST_MARKS


def _compiled(fn, backend="inductor"):
    counter = torch._dynamo.testing.CompileCounterWithBackend(backend)
    return torch.compile(fn, backend=counter, fullgraph=True), counter


CASES = {
    "default": dict(),
    "scale": dict(scale=2.0),
    "concat odd width": dict(layout="concat"),
    "interleaved odd width, base": dict(layout="interleaved", base=500.0),
}
WIDTH = {"default": 24, "scale": 24, "concat odd width": 7, "interleaved odd width, base": 9}


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_traced_add_is_within_the_contract(case, dtype):
    kw = CASES[case]
    x = seeded_randn(3, 2, WIDTH[case], dtype=getattr(torch, dtype), seed=1)
    compiled, counter = _compiled(lambda x, offset: ft.add_sinusoidal(x, offset=offset, **kw))
    for offset in (torch.tensor(0), torch.tensor(4095), torch.tensor([7, 100000, 2**40]), 123456789):
        got = compiled(x, offset)
        what = f"{case} {dtype} offset {offset}"
        # the kernels' result: within the contract of exact values at every position (tests/accuracy)
        eager = float64_of(ft.add_sinusoidal(x, offset=offset, **kw))
        assert_within(float64_of(got), eager, 2 * tolerance(dtype, eager, 2 * float64_of(x)), f"{what}: eager")
        if isinstance(offset, torch.Tensor) and int(offset.max()) < 2**20:
            # the reference's float64 angles p * w are exact enough only at small positions
            want = reference.add_sinusoidal(float64_of(x), offset=offset.numpy().reshape(-1)
                                            if offset.ndim else offset.numpy(), **kw)
            assert_within(float64_of(got), want, tolerance(dtype, want, 2 * float64_of(x)), f"{what}: reference")
    # one graph for each kind of offset (0-d tensors, a tensor per sequence, an int): none for new values
    assert counter.frame_count == 3


def test_one_graph_serves_every_offset_tensor():
    x = seeded_randn(2, 1, 16, seed=2)
    compiled, counter = _compiled(lambda x, offset: ft.add_sinusoidal(x, offset=offset) * 0.5)
    for offset in range(0, 5000, 997):
        assert torch.allclose(compiled(x, torch.tensor(offset)), ft.add_sinusoidal(x, offset=offset) * 0.5,
                              atol=1e-6)
    assert counter.frame_count == 1


def test_short_calls_are_traced_and_the_rest_takes_the_operator():
    decode, few, many, narrow = (seeded_randn(*shape) for shape in ((4, 1, 768), (1, 16, 768), (1, 64, 768),
                                                                     (1, 1, 64)))
    calls = {
        "decode step": (lambda o: ft.add_sinusoidal(decode, offset=o), True),
        "a few tokens": (lambda o: ft.add_sinusoidal(few, offset=o), True),
        "more pairs than the bound": (lambda o: ft.add_sinusoidal(many, offset=o), False),
        "a preset": (lambda o: ft.add_sinusoidal(narrow, offset=o, preset="fairseq"), False),
        "positions": (lambda o: ft.add_sinusoidal(narrow, positions=o[None, None]), False),
        "a float offset": (lambda o: ft.add_sinusoidal(narrow, offset=o.double()), False),
    }
    for name, (fn, traced) in calls.items():
        torch._dynamo.reset()
        recorder = GraphRecorder()
        got = torch.compile(fn, backend=recorder, fullgraph=True)(torch.tensor(5))
        assert torch.allclose(got, fn(torch.tensor(5)), atol=1e-5), name
        took_operator = "fastpe.add_sinusoidal.default" in recorder.fastpe_operators()
        assert took_operator != traced, f"{name}: {recorder.fastpe_operators()}"


def test_positions_beyond_the_limit_raise_fastpes_error_when_the_graph_runs():
    x = seeded_randn(1, 2, 8, seed=3)
    compiled, _ = _compiled(lambda x, offset: ft.add_sinusoidal(x, offset=offset))
    compiled(x, torch.tensor(0))
    with pytest.raises(RuntimeError, match=r"offset \+ T - 1 must lie in"):
        compiled(x, torch.tensor(2**53 - 1))
    with pytest.raises(ValueError, match=r"offset \+ T - 1 must lie in"):
        ft.add_sinusoidal(x, offset=torch.tensor(2**53 - 1))


def test_gradients_through_the_traced_add():
    """float64 gradcheck of the compiled form (the gradient to x is scale times grad), equal to eager's."""
    x = seeded_randn(2, 3, 6, dtype=torch.float64, seed=4).requires_grad_()
    offset = torch.tensor([1, 70])
    compiled, _ = _compiled(lambda x: ft.add_sinusoidal(x, offset=offset, scale=3.0), backend="aot_eager")
    assert torch.autograd.gradcheck(compiled, (x,))
    (compiled(x) * x.detach()).sum().backward()
    assert torch.equal(x.grad, 3.0 * x.detach())
