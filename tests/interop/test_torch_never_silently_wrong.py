"""The NumPy-facing functions handed torch tensors are never silently wrong:
their writes bump the version counter (autograd raises as after torch's own
``t.detach().add_()``), inference tensors are written only in inference mode,
tensors that require grad are refused with an error naming fastpe.torch, and
torch.compile breaks its graph at them (or names them under fullgraph=True)
instead of crashing inside Dynamo (tests/packaging/test_torch_extra.py: none
of this imports torch into fastpe)."""

import textwrap

import numpy as np
import pytest
from optional import torch_or_skip
from processes import run_python

torch = torch_or_skip()

import fastpe  # noqa: E402


def test_detach_then_write_fails_at_backward():
    """The pinned regression: the write into b's memory used to leave a.grad off by 2, silently."""
    a = torch.randn(5, 4, requires_grad=True)
    b = a * 1
    c = (b * b).sum()
    fastpe.add_sinusoidal(b.detach())
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        c.backward()
    # exactly what torch's own in-place write does
    b2 = a * 1
    c2 = (b2 * b2).sum()
    b2.detach().add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        c2.backward()


def _writers():
    """(name, call writing the tensor t) for every NumPy-facing function that writes."""
    table = np.zeros((64, 16), np.float32)
    return [
        ("add_sinusoidal", lambda t: fastpe.add_sinusoidal(t)),
        ("add_sinusoidal out=", lambda t: fastpe.add_sinusoidal(np.zeros((4, 16), np.float32), out=t)),
        ("add_table", lambda t: fastpe.add_table(t, table)),
        ("add_sincos_2d", lambda t: fastpe.add_sincos_2d(t, 2, 2)),
        ("add_sinusoidal_nd", lambda t: fastpe.add_sinusoidal_nd(t, (2, 2))),
        ("apply_rotary", lambda t: fastpe.apply_rotary(t, offset=3)),
        ("add_alibi", lambda t: fastpe.add_alibi(t.view(1, 2, 2, 16))),
        ("add_relative_bias", lambda t: fastpe.add_relative_bias(t.view(1, 2, 2, 16), np.zeros((8, 2)),
                                                                 bidirectional=True, num_buckets=8, max_distance=16)),
        ("sinusoidal_table out=", lambda t: fastpe.sinusoidal_table(4, 16, out=t)),
        ("sinusoidal_encode out=", lambda t: fastpe.sinusoidal_encode(np.arange(4), 16, out=t)),
    ]


@pytest.mark.parametrize("case", range(len(_writers())))
def test_every_write_bumps_the_version_counter(case):
    name, write = _writers()[case]
    t = torch.zeros(4, 16)
    version = t._version
    write(t)
    assert t._version > version, f"{name} wrote the tensor without bumping its version counter"


def test_both_rotated_tensors_are_bumped_and_an_unwritten_input_is_not():
    q, k = torch.randn(1, 2, 3, 8), torch.randn(1, 2, 3, 8)
    versions = q._version, k._version
    fastpe.apply_rotary(q, k)
    assert q._version > versions[0] and k._version > versions[1]
    x, out = torch.randn(2, 3, 8), torch.empty(2, 3, 8)
    before = x._version
    fastpe.add_sinusoidal(x, out=out)
    assert x._version == before, "x is only read when out= is given"


def test_inference_tensors_are_written_only_in_inference_mode():
    with torch.inference_mode():
        made_inside = torch.zeros(2, 3, 8)
    before = made_inside.clone()
    with pytest.raises(ValueError, match=r"x is an inference tensor .*outside inference mode"):
        fastpe.add_sinusoidal(made_inside)
    assert torch.equal(made_inside, before), "a refused call wrote the tensor"
    with pytest.raises(ValueError, match="out is an inference tensor"):
        fastpe.add_sinusoidal(np.zeros((2, 3, 8), np.float32), out=made_inside)
    with torch.inference_mode():
        assert fastpe.add_sinusoidal(made_inside) is made_inside
        assert fastpe.apply_rotary(made_inside, offset=1) is made_inside
    assert not torch.equal(made_inside, before)
    # Reading one outside is allowed, as in torch.
    assert fastpe.add_table(torch.zeros(2, 3, 8), made_inside[0]).shape == (2, 3, 8)


def test_requires_grad_names_fastpe_torch_and_never_detach():
    x = torch.zeros(2, 3, 8, requires_grad=True)
    with pytest.raises(ValueError, match="fastpe.torch") as info:
        fastpe.add_sinusoidal(x)
    assert "detach" not in str(info.value)


_COMPILE_SCRIPT = """
import {first}, {second}
import torch._dynamo
import fastpe

def f(x):
    y = x * 2
    fastpe.add_sinusoidal(y, offset=3)
    q = torch.sin(y)
    fastpe.apply_rotary(q, offset=5)
    return q + 1

x = torch.randn(2, 8, 16, generator=torch.Generator().manual_seed(0))
eager = f(x)
got = torch.compile(f)(x)
assert torch.allclose(got, eager, atol=1e-6), "compiled with graph breaks != eager"  # inductor's sin: an ulp
torch._dynamo.reset()  # forget the graphs compiled with breaks above
try:
    torch.compile(f, fullgraph=True)(x)
except torch._dynamo.exc.Unsupported as exc:
    message = str(exc)
    assert "fastpe.torch" in message and "add_sinusoidal" in message, message
    print("refused clearly")
else:
    raise AssertionError("fullgraph=True compiled a call to the NumPy-facing API")
"""


@pytest.mark.slow
@pytest.mark.parametrize("first,second", [("torch", "fastpe"), ("fastpe", "torch")],
                         ids=["torch imported first", "fastpe imported first"])
def test_torch_compile_breaks_the_graph_instead_of_crashing(first, second):
    """In a fresh interpreter for each import order: Dynamo's skip rules are set
    whether its trace rules load before fastpe or after (fastpe._dynamo)."""
    result = run_python(textwrap.dedent(_COMPILE_SCRIPT.format(first=first, second=second)), timeout=600)
    assert result.returncode == 0 and "refused clearly" in result.stdout, result.stderr[-3000:]

