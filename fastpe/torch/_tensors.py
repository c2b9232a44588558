"""Tensors as fastpe's kernels see them, and the choice of route for a call.

Every call of fastpe.torch takes one of two routes to the same code:

* the registered operator (``torch.ops.fastpe.*``, see fastpe.torch._ops):
  what autograd, torch.compile, torch.export, vmap, tensor subclasses and
  dispatch modes see;
* the eager route, which skips the dispatcher (a registered operator costs
  tens of microseconds a call, more than a decode step's whole rotation):
  taken only when nothing can tell the difference, i.e. outside
  torch.compile, with plain tensors, no dispatch or function mode, no
  functorch transform, and no gradient to record.

Both run the operator's implementation (fastpe.torch._impl), so the results
are the same bits. ``always_dispatch()`` (private, for the tests) sends every
call through the operators.
"""

import contextlib

import numpy as np
import torch

from .. import _frontdoor
from .._validation.views import refuse_lazy_tensor
from .._validation.torch_tensors import BFLOAT16_BITS

_PLAIN_TYPES = (torch.Tensor, torch.nn.Parameter)
# dtypes whose values Tensor.item() gives exactly as a Python int or float.
_EXACT_AS_PYTHON = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.float64, torch.float32)
_state = {"always_dispatch": False}


@contextlib.contextmanager
def always_dispatch():
    """Send every call through the registered operators (private: the tests
    compare the two routes)."""
    before = _state["always_dispatch"]
    _state["always_dispatch"] = True
    _frontdoor.close_torch_route(1)
    try:
        yield
    finally:
        _state["always_dispatch"] = before
        _frontdoor.close_torch_route(-1)


def is_tensor(value):
    return isinstance(value, torch.Tensor)


# What the eager routes ask torch, bound once (the route is decided on every call: a decode step's budget),
# and asked in compiled code (fastpe._frontdoor: torch_modes_on, and the front doors' own route).
_is_compiling = torch.compiler.is_compiling
_grad_enabled = torch.is_grad_enabled
_frontdoor.register_torch_route(torch._C._len_torch_dispatch_stack, torch._C._is_torch_function_mode_enabled,
                                torch._C._functorch.peek_interpreter_stack, _grad_enabled,
                                torch.is_inference_mode_enabled, torch._C._increment_version)
_torch_modes_on = _frontdoor.torch_modes_on


def _dispatcher_watched():
    """Something sees calls through the dispatcher only: torch is compiling, a
    dispatch or function mode or a functorch transform is on, or the tests ask
    for the operators (always_dispatch). Compiling first: all a compiler
    traces (it cannot trace the compiled question after it)."""
    return _is_compiling() or _state["always_dispatch"] or _torch_modes_on()


def eager_route(*values):
    """True when the call may skip the dispatcher (see the module docstring).
    values: the call's arguments; those that are not tensors are ignored."""
    if _dispatcher_watched():
        return False
    grad = _grad_enabled()
    for value in values:
        if isinstance(value, torch.Tensor) and (type(value) not in _PLAIN_TYPES or (grad and value.requires_grad)
                                                or value.is_meta):
            return False  # meta tensors: the operators' fake implementations serve them
    return True


def needs_grad(*values):
    """Autograd records this call: grad mode is on and a tensor among values requires grad."""
    return torch.is_grad_enabled() and any(isinstance(v, torch.Tensor) and v.requires_grad for v in values)


def refuse_grad(name, value, why):
    """A tensor argument that has no gradient must not require one: its
    gradient would silently be None."""
    if isinstance(value, torch.Tensor) and value.requires_grad and torch.is_grad_enabled():
        raise ValueError(f"{name} requires grad, but {why}; pass {name}.detach()")


# torch.Tensor by a name of this module: a function that torch.compile traces then reads no `torch` here,
# and Dynamo guards torch's module through one module's globals only (fastpe.torch._graph)
_TENSOR = torch.Tensor


def check_tensor(name, value, function):
    """The tensor a fastpe.torch function works on (NumPy arrays go to the NumPy-facing function)."""
    if not isinstance(value, _TENSOR):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}; fastpe.{function} takes "
                        f"NumPy arrays")
    return value


# The NumPy dtype of a view of a tensor of each float dtype (bfloat16 as BFLOAT16_BITS)
_NUMPY_FLOATS = {torch.float32: np.dtype(np.float32), torch.float64: np.dtype(np.float64),
                 torch.float16: np.dtype(np.float16), torch.bfloat16: BFLOAT16_BITS}


def numpy_dtype(dtype):
    """The NumPy dtype of a view of a tensor of `dtype` (BFLOAT16_BITS for bfloat16); made without a
    tensor for the float dtypes (a tensor made while torch.export traces is no real one)."""
    found = _NUMPY_FLOATS.get(dtype)
    return found if found is not None else torch.empty((), dtype=dtype).numpy().dtype


def view(tensor, name="x"):
    """A NumPy array sharing a CPU tensor's memory, what the kernels read or
    write: bfloat16 as BFLOAT16_BITS, so ml_dtypes is not needed. A tensor
    whose memory does not hold its values (a negative or conjugate bit, a
    ZeroTensor: torch's numpy() refuses them) gets fastpe's error naming it."""
    if tensor.requires_grad:
        tensor = tensor.detach()
    try:
        if tensor.dtype == torch.bfloat16:
            return tensor.view(torch.int16).numpy().view(BFLOAT16_BITS)
        return tensor.numpy()
    except RuntimeError:
        refuse_lazy_tensor(name, tensor)
        raise


def read_view(value):
    """What fastpe's NumPy-facing functions read for an argument: a tensor's
    values as a CPU NumPy array (a view where it can be, a copy from another
    device or of a lazily negated tensor); anything else as it is."""
    if not isinstance(value, torch.Tensor):
        return value
    if value.ndim == 0 and value.dtype in _EXACT_AS_PYTHON:
        return value.item()  # a number: what the front doors read at the least cost
    if not value.is_cpu:
        value = value.detach().cpu()
    if value.is_neg():  # read, so resolved (a copy); float tensors have no conjugate bit
        value = value.resolve_neg()
    return view(value)


def bump_versions(tensors):
    """What torch's own in-place operations do, for writes through NumPy views
    (torch.autograd.graph.increment_version's own call, for a list)."""
    torch._C._increment_version(tensors)


def op_tensor(name, value):
    """An offset, positions or frequencies argument as the registered operators
    take it: a tensor or None. Python numbers become 0-d int64 or float64
    tensors; other array-likes are read by fastpe's own array check (eager
    only: under torch.compile pass tensors or numbers)."""
    if value is None or isinstance(value, torch.Tensor):
        return value
    if isinstance(value, bool):
        return torch.tensor(value)  # refused by the implementation's check, with its message
    if isinstance(value, int):
        if -2**63 <= value < 2**63:
            return torch.tensor(value, dtype=torch.int64)
        value = float(value)  # beyond int64: refused by the position limit, with its message
    if isinstance(value, float):
        return torch.tensor(value, dtype=torch.float64)
    from .._validation import array_of_kind

    return torch.from_numpy(np.array(array_of_kind(name, value, "iuf", "integers or floats")))
