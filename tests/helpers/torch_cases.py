"""What the tests of fastpe.torch (tests/torch/) share: dtypes, tolerances,
the routes a call can take, and tensors in awkward memory layouts.

Import it after ``torch_or_skip()`` (it imports torch)."""

import contextlib

import numpy as np
import pytest
import torch

from fastpe.torch._device import torch_ops_everywhere
from fastpe.torch._tensors import always_dispatch

DTYPES = ("float32", "float64", "float16", "bfloat16")
_MANTISSA_BITS = {"float32": 23, "float64": 52, "float16": 10, "bfloat16": 7}

# How a call runs: the eager route (no dispatcher), the registered operator,
# and the torch-ops path of other devices (forced on the CPU).
ROUTES = ("eager", "operator", "torch ops")


@pytest.fixture
def fresh_dynamo():
    """Dynamo's caches emptied before and after a test: test functions share code objects with other
    cases', and Dynamo's caches and automatic-dynamic records would carry over."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


# A module of compile tests: pytestmark = COMPILE_TEST_MARKS, and fresh_dynamo imported.
COMPILE_TEST_MARKS = [
    pytest.mark.usefixtures("fresh_dynamo"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"),
]


@contextlib.contextmanager
def on_route(route):
    if route == "eager":
        yield
    elif route == "operator":
        with always_dispatch():
            yield
    else:
        with torch_ops_everywhere():
            yield


def seeded_randn(*shape, dtype=torch.float32, seed=0, grad=False):
    """Standard normal values drawn in float64 from a seeded generator, rounded to dtype."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype).requires_grad_(grad)


def float64_of(t):
    """A tensor's values as a new float64 NumPy array (exact for every supported dtype; never the tensor's memory)."""
    return t.detach().to(torch.float64, copy=True).cpu().numpy()


def tolerance(dtype, expected, operand=0.0):
    """|fastpe.torch's result - the float64 reference| allowed, elementwise.

    float64: the contract's float64 angles, far below 1e-10 of the magnitudes here.
    float32 and 16-bit: two ulps of the type at the result's (or the operand's)
    magnitude. The kernels round once (half an ulp) plus the float32 table's
    rounding; the torch-ops path of other devices adds one more rounding
    (the float32 contract, docs/torch.rst)."""
    magnitude = 1.0 + np.abs(np.asarray(expected, dtype=np.float64)) + np.abs(operand)
    if dtype == "float64":
        return 1e-10 * magnitude
    ulp = 2.0 ** (np.floor(np.log2(magnitude)) - _MANTISSA_BITS[dtype])
    return 2.0 * ulp + (2.0 ** -_MANTISSA_BITS[dtype]) * np.abs(operand)


LAYOUTS = ("contiguous", "transposed", "sliced", "narrowed", "empty")


def tensor_in_layout(shape, dtype, layout, seed=0):
    """A tensor of `shape` and dtype name `dtype` with random values (std 2) laid out in memory as `layout`:

    contiguous; transposed (the first two axes swapped in memory, a dense
    non-contiguous view); sliced (every other row of the second-to-last
    axis of a larger tensor); narrowed (the first channels of a wider last
    axis, like q in a fused qkv projection); empty (a zero-length first axis)."""
    g = torch.Generator().manual_seed(seed)
    dt = getattr(torch, dtype)

    def values(*s):
        return (2 * torch.randn(*s, generator=g, dtype=torch.float64)).to(dt)

    shape = tuple(shape)
    if layout == "contiguous":
        return values(*shape)
    if layout == "transposed" and len(shape) >= 2:
        return values(shape[1], shape[0], *shape[2:]).transpose(0, 1)
    if layout == "sliced":
        return values(*shape[:-2], 2 * shape[-2], shape[-1])[..., ::2, :]
    if layout == "narrowed":
        return values(*shape[:-1], shape[-1] + 5)[..., : shape[-1]]
    if layout == "empty":
        return values(0, *shape[1:])
    raise ValueError(layout)


class GraphRecorder:
    """A torch.compile backend that keeps every graph Dynamo hands it, and every graph AOTAutograd
    traces from them (what a function Dynamo calls as one node, allow_in_graph, computes), and runs
    them with aot_eager (AOTAutograd's decompositions and backward, no code generation: quick)."""

    def __init__(self):
        self.graphs = []

    def __call__(self, gm, example_inputs):
        from torch._dynamo.backends.debugging import aot_eager, boxed_nop

        def keep(traced, inputs):
            self.graphs.append(traced)
            return boxed_nop(traced, inputs)

        self.graphs.append(gm)
        return aot_eager(gm, example_inputs, fw_compiler=keep, bw_compiler=keep)

    def fastpe_operators(self):
        """The fastpe operators the graphs call."""
        return {str(node.target) for gm in self.graphs for node in gm.graph.nodes
                if node.op == "call_function" and str(node.target).startswith("fastpe.")}
