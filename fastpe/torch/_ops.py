"""The operators fastpe.torch registers with torch.library, namespace "fastpe".

Each has a fake implementation (shapes, for torch.compile and torch.export)
and, when functional, an autograd formula; ``torch.library.opcheck`` tests
the three together. The non-tensor arguments arrive as one string
(fastpe.torch._options); offsets, positions and frequencies as tensors, so
that a new value is new data, not a new graph.

Gradients:

* ``add_sinusoidal``: ``scale * grad`` to x;
* ``add_table``: ``scale * grad`` to x, and to the table the scatter-add of
  grad's rows into the rows they read (``table_gradient``);
* ``apply_rotary``: the transpose of the rotation, the same float64 angles
  with the sines negated (``transpose=True``), times the same attention
  factor; the transpose of the transpose is the rotation again, so the
  gradient of the gradient is this operator too;
* ``apply_rotary_cos_sin``: the rotation by (cos, -sin) to the arrays, and
  to cos and sin the derivatives of Hugging Face's
  ``q * cos + rotate_half(q) * sin``, summed over the axes they broadcast along;
* ``add_alibi``: grad to the scores;
* ``add_relative_bias``: grad to the scores, and to the bias table grad
  summed over each bucket's (query, key) pairs (``relative_bias_gradient``).

The mutating twins (``add_sinusoidal_``, ...) have no autograd formula
(torch.library does not take one for a mutating operator): fastpe.torch's
in-place functions compute out of place and copy back when autograd records
the call.
"""

from typing import List, Optional

import torch
from torch import Tensor

from . import _impl
from ._options import decode

_DEFAULTS = "{}"  # the options string of a call with every option at its default


def _op(name, mutates=()):
    return torch.library.custom_op(f"fastpe::{name}", mutates_args=mutates)


def _no_result(*args):
    return None


def _like_first(first, *args):
    return torch.empty_like(first)


def _like_each(arrays, *args):
    return [torch.empty_like(a) for a in arrays]


def _scaled(grad, options):
    scale = decode(options).get("scale")
    return grad if scale is None else grad * scale


# ------------------------------------------------------------------ sinusoid

@_op("add_sinusoidal")
def add_sinusoidal(x: Tensor, offset: Optional[Tensor], positions: Optional[Tensor], inv_freq: Optional[Tensor],
                   options: str) -> Tensor:
    out = torch.empty_like(x)
    _impl.add_sinusoidal_into(out, x, offset, positions, inv_freq, decode(options))
    return out


@_op("add_sinusoidal_", mutates=("x",))
def add_sinusoidal_(x: Tensor, offset: Optional[Tensor], positions: Optional[Tensor], inv_freq: Optional[Tensor],
                    options: str) -> None:
    _impl.add_sinusoidal_into(x, x, offset, positions, inv_freq, decode(options))


def _sinusoid_context(ctx, inputs, output):
    ctx.options = inputs[-1]


def _sinusoid_backward(ctx, grad):
    return _scaled(grad, ctx.options), None, None, None, None


add_sinusoidal.register_fake(_like_first)
add_sinusoidal_.register_fake(_no_result)
add_sinusoidal.register_autograd(_sinusoid_backward, setup_context=_sinusoid_context)


# ------------------------------------------------------------------ learned tables

@_op("add_table")
def add_table(x: Tensor, table: Tensor, offset: Optional[Tensor], positions: Optional[Tensor],
              options: str) -> Tensor:
    out = torch.empty_like(x)
    _impl.add_table_into(out, x, table, offset, positions, decode(options))
    return out


@_op("add_table_", mutates=("x",))
def add_table_(x: Tensor, table: Tensor, offset: Optional[Tensor], positions: Optional[Tensor], options: str) -> None:
    _impl.add_table_into(x, x, table, offset, positions, decode(options))


@_op("table_gradient")
def table_gradient(grad: Tensor, table: Tensor, offset: Optional[Tensor], positions: Optional[Tensor]) -> Tensor:
    return _impl.table_gradient(grad, table, offset, positions)


def _table_context(ctx, inputs, output):
    _, table, offset, positions, ctx.options = inputs
    ctx.save_for_backward(table, offset, positions)


def _table_backward(ctx, grad):
    table, offset, positions = ctx.saved_tensors
    grad_table = table_gradient(grad, table, offset, positions) if ctx.needs_input_grad[1] else None
    return _scaled(grad, ctx.options), grad_table, None, None, None


def _table_gradient_context(ctx, inputs, output):
    grad, _, offset, positions = inputs
    ctx.save_for_backward(grad, offset, positions)


def _table_gradient_backward(ctx, grad_of_table):
    # table_gradient is linear in grad; its transpose gathers the rows back.
    grad, offset, positions = ctx.saved_tensors
    return add_table(torch.zeros_like(grad), grad_of_table, offset, positions, _DEFAULTS), None, None, None


add_table.register_fake(_like_first)
add_table_.register_fake(_no_result)
table_gradient.register_fake(lambda grad, table, offset, positions: torch.empty_like(table))
add_table.register_autograd(_table_backward, setup_context=_table_context)
table_gradient.register_autograd(_table_gradient_backward, setup_context=_table_gradient_context)


# ------------------------------------------------------------------ rotary

@_op("apply_rotary")
def apply_rotary(arrays: List[Tensor], offset: Optional[Tensor], positions: Optional[Tensor],
                 inv_freq: Optional[Tensor], options: str, transpose: bool) -> List[Tensor]:
    outs = [torch.empty_like(a) for a in arrays]
    _impl.rotary_into(outs, arrays, offset, positions, inv_freq, decode(options), transpose)
    return outs


@_op("apply_rotary_", mutates=("arrays",))
def apply_rotary_(arrays: List[Tensor], offset: Optional[Tensor], positions: Optional[Tensor],
                  inv_freq: Optional[Tensor], options: str, transpose: bool) -> None:
    _impl.rotary_into(arrays, arrays, offset, positions, inv_freq, decode(options), transpose)


def _rotary_context(ctx, inputs, output):
    _, offset, positions, inv_freq, ctx.options, ctx.transpose = inputs
    ctx.save_for_backward(offset, positions, inv_freq)


def _rotary_backward(ctx, grads):
    offset, positions, inv_freq = ctx.saved_tensors
    return apply_rotary(list(grads), offset, positions, inv_freq, ctx.options, not ctx.transpose), \
        None, None, None, None, None


apply_rotary.register_fake(_like_each)
apply_rotary_.register_fake(_no_result)
apply_rotary.register_autograd(_rotary_backward, setup_context=_rotary_context)


@_op("apply_rotary_cos_sin")
def apply_rotary_cos_sin(arrays: List[Tensor], cos: Tensor, sin: Tensor, unsqueeze_dim: int,
                         transpose: bool) -> List[Tensor]:
    outs = [torch.empty_like(a) for a in arrays]
    _impl.cos_sin_into(outs, arrays, cos, sin, unsqueeze_dim, transpose)
    return outs


@_op("apply_rotary_cos_sin_", mutates=("arrays",))
def apply_rotary_cos_sin_(arrays: List[Tensor], cos: Tensor, sin: Tensor, unsqueeze_dim: int,
                          transpose: bool) -> None:
    _impl.cos_sin_into(arrays, arrays, cos, sin, unsqueeze_dim, transpose)


def _cos_sin_context(ctx, inputs, output):
    arrays, cos, sin, ctx.unsqueeze_dim, ctx.transpose = inputs
    ctx.table_grads = cos.requires_grad or sin.requires_grad
    ctx.n_arrays = len(arrays)
    ctx.save_for_backward(cos, sin, *(arrays if ctx.table_grads else ()))


def _sum_to_table(products, cos, unsqueeze_dim):
    """The products (each of its array's shape) summed over the axes cos' broadcast along, as cos's shape."""
    dim = unsqueeze_dim if unsqueeze_dim >= 0 else unsqueeze_dim + cos.ndim + 1
    shape = cos.unsqueeze(dim).shape
    return sum(p.sum_to_size(shape) for p in products).squeeze(dim).to(cos.dtype)


def _cos_sin_backward(ctx, grads):
    cos, sin, *arrays = ctx.saved_tensors
    grads = list(grads)
    grad_arrays = apply_rotary_cos_sin(grads, cos, sin, ctx.unsqueeze_dim, not ctx.transpose)
    grad_cos = grad_sin = None
    if ctx.table_grads:
        # d/dcos and d/dsin of a * cos' + sign * rotate_half(a) * sin' (Hugging Face's formula; sign -1 transposed)
        half = cos.shape[-1] // 2
        work = torch.promote_types(cos.dtype, torch.float32)
        grad_cos = _sum_to_table([g.to(work) * a.to(work) for g, a in zip(grads, arrays)], cos, ctx.unsqueeze_dim)
        rotated = [torch.cat((-a[..., half:], a[..., :half]), dim=-1).to(work) for a in arrays]
        grad_sin = _sum_to_table([g.to(work) * r for g, r in zip(grads, rotated)], sin, ctx.unsqueeze_dim)
        if ctx.transpose:
            grad_sin = -grad_sin
    return grad_arrays, grad_cos, grad_sin, None, None


apply_rotary_cos_sin.register_fake(_like_each)
apply_rotary_cos_sin_.register_fake(_no_result)
apply_rotary_cos_sin.register_autograd(_cos_sin_backward, setup_context=_cos_sin_context)


# ------------------------------------------------------------------ attention biases

@_op("add_alibi")
def add_alibi(scores: Tensor, slopes: Optional[Tensor], offset: Optional[Tensor], key_positions: Optional[Tensor],
              options: str) -> Tensor:
    out = torch.empty_like(scores)
    _impl.alibi_into(out, scores, slopes, offset, key_positions, decode(options))
    return out


@_op("add_alibi_", mutates=("scores",))
def add_alibi_(scores: Tensor, slopes: Optional[Tensor], offset: Optional[Tensor], key_positions: Optional[Tensor],
               options: str) -> None:
    _impl.alibi_into(scores, scores, slopes, offset, key_positions, decode(options))


def _alibi_backward(ctx, grad):
    return grad, None, None, None, None


add_alibi.register_fake(_like_first)
add_alibi_.register_fake(_no_result)
add_alibi.register_autograd(_alibi_backward)


@_op("add_relative_bias")
def add_relative_bias(scores: Tensor, bias_table: Tensor, offset: Optional[Tensor], options: str) -> Tensor:
    out = torch.empty_like(scores)
    _impl.relative_bias_into(out, scores, bias_table, offset, decode(options))
    return out


@_op("add_relative_bias_", mutates=("scores",))
def add_relative_bias_(scores: Tensor, bias_table: Tensor, offset: Optional[Tensor], options: str) -> None:
    _impl.relative_bias_into(scores, scores, bias_table, offset, decode(options))


@_op("relative_bias_gradient")
def relative_bias_gradient(grad: Tensor, bias_table: Tensor, offset: Optional[Tensor], options: str) -> Tensor:
    return _impl.relative_bias_gradient(grad, bias_table, offset, decode(options))


def _relative_context(ctx, inputs, output):
    _, bias_table, offset, ctx.options = inputs
    ctx.save_for_backward(bias_table, offset)


def _relative_backward(ctx, grad):
    bias_table, offset = ctx.saved_tensors
    grad_table = relative_bias_gradient(grad, bias_table, offset, ctx.options) if ctx.needs_input_grad[1] else None
    return grad, grad_table, None, None


def _relative_gradient_context(ctx, inputs, output):
    grad, bias_table, offset, ctx.options = inputs
    ctx.save_for_backward(grad, offset)


def _relative_gradient_backward(ctx, grad_of_table):
    # relative_bias_gradient is linear in grad; its transpose adds the table's rows back.
    grad, offset = ctx.saved_tensors
    return add_relative_bias(torch.zeros_like(grad), grad_of_table, offset, ctx.options), None, None, None


add_relative_bias.register_fake(_like_first)
add_relative_bias_.register_fake(_no_result)
relative_bias_gradient.register_fake(lambda grad, bias_table, offset, options: torch.empty_like(bias_table))
add_relative_bias.register_autograd(_relative_backward, setup_context=_relative_context)
relative_bias_gradient.register_autograd(_relative_gradient_backward, setup_context=_relative_gradient_context)


# ------------------------------------------------------------------ padding-aware positions

@_op("make_positions")
def make_positions(token_ids: Tensor, padding_idx: int, past_length: Optional[Tensor]) -> Tensor:
    return _impl.make_positions(token_ids, padding_idx, past_length)


make_positions.register_fake(lambda token_ids, padding_idx, past_length: torch.empty_like(token_ids,
                                                                                          dtype=torch.int64))
