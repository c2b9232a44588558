"""What each fastpe.torch operator computes, for both routes (fastpe.torch._tensors).

CPU tensors go to fastpe's NumPy-facing functions as NumPy views of their
memory: those functions check every argument (fastpe.torch checks none
again) and run the kernels. Tensors elsewhere, and CPU tensors while
``fastpe.torch._device.torch_ops_everywhere()`` is on, take fastpe.torch._device,
the same computation in torch operations. The kernels never see memory that
is not the CPU's.

The ``*_into`` functions write ``out`` (which may be the input itself: in
place). The gradients of the learned tables are scatter-adds computed with
torch operations on any device; only the index of each row comes from
fastpe's own rules.
"""

import numpy as np
import torch

from .. import _bias, _formulas, _frontdoor
from .._bias import add_alibi, add_relative_bias
from .._rotary import apply_rotary, apply_rotary_transpose
from .._rotary_given import rotate_by_cos_sin
from .._sinusoid import add_sinusoidal, add_table
from .._sinusoid import make_positions as _make_positions
from .._validation import relative_request
from . import _device
from ._tensors import read_view, view

_dynamo_tracing = torch.compiler.is_dynamo_compiling  # what matters here: Dynamo cannot trace the front doors


# The types the compiled front door takes tensors of (fastpe._frontdoor never imports torch).
_frontdoor.register_torch(torch.Tensor, torch.nn.Parameter, torch.float32, torch.float64, torch.float16,
                          torch.bfloat16, torch.strided, torch.empty_like)


def on_kernels(tensor):
    """The call runs fastpe's kernels (a CPU tensor, the torch-ops path not forced)."""
    return tensor.is_cpu and not _device.forced()


def _offset(offset):
    """The operators' offset (None: the default, 0) as the NumPy-facing functions read it."""
    return 0 if offset is None else read_view(offset)


def _written(name, tensor):
    """The view a NumPy-facing function writes in place."""
    return view(tensor, name)


def _source_and_out(name, out, x):
    """(what the NumPy-facing function reads, its out=): x written in place when out is x."""
    if out is x:
        return _written(name, x), None
    return read_view(x), view(out)


def add_sinusoidal_into(out, x, offset, positions, inv_freq, options):
    if not on_kernels(out):
        return _device.add_sinusoidal_into(out, x, offset, positions, inv_freq, options)
    source, target = _source_and_out("x", out, x)
    add_sinusoidal(source, offset=_offset(offset), positions=read_view(positions), inv_freq=read_view(inv_freq),
                   out=target, **options)


def add_table_into(out, x, table, offset, positions, options):
    if not on_kernels(out):
        return _device.add_table_into(out, x, table, offset, positions, options)
    source, target = _source_and_out("x", out, x)
    add_table(source, read_view(table), offset=_offset(offset), positions=read_view(positions), out=target,
              **options)


def _front_door(arrays, into_new, offset, positions, inv_freq, options):
    """The compiled front door's rotation of CPU tensors (fastpe._frontdoor.rotate_tensors): the arrays
    rotated in place, or new tensors (into_new); None where it does not serve the call (nothing written)."""
    if positions is not None or inv_freq is not None or _device.forced():
        return None
    return _frontdoor.rotate_tensors(arrays, into_new, _offset(offset), options["base"], options["layout"],
                                     options["rotary_dim"], options["scaling"], options["seq_axis"],
                                     options["num_threads"])


def eager_rotation(arrays, into_new, offset, base, layout, rotary_dim, scaling, seq_axis, num_threads):
    """The decode step's way through (positions and inv_freq None): the rotary
    front door on the eager route (fastpe._frontdoor.rotate_tensors_eagerly):
    arrays (a tuple) rotated in place (version counters bumped) or into new
    tensors; None where another way must serve the call (nothing written).
    An inference tensor written outside inference mode is left to the
    general path, which refuses it."""
    if _dynamo_tracing():  # first: all Dynamo traces
        return None
    return _frontdoor.rotate_tensors_eagerly(arrays, into_new, offset, base, layout, rotary_dim, scaling, seq_axis,
                                             num_threads)


def eager_sinusoid(x, into_new, offset, positions, scale, base, layout, num_threads, inv_freq, preset,
                   padding_idx, min_timescale, max_timescale):
    """add_sinusoidal's common call through its front door on the eager route
    (fastpe._frontdoor.add_sinusoidal_tensor_eagerly), as eager_rotation: x
    written in place (version counter bumped) or a new tensor; None where
    another way must serve the call (nothing written)."""
    if _dynamo_tracing():
        return None
    return _frontdoor.add_sinusoidal_tensor_eagerly(x, into_new, offset, positions, scale, base, layout, num_threads,
                                                    inv_freq, preset, padding_idx, min_timescale, max_timescale)


def eager_table(x, table, into_new, offset, positions, scale, num_threads):
    """add_table's common call through its front door on the eager route
    (fastpe._frontdoor.add_table_tensors_eagerly), as eager_sinusoid."""
    if _dynamo_tracing():
        return None
    return _frontdoor.add_table_tensors_eagerly(x, table, into_new, offset, positions, scale, num_threads)


def eager_cos_sin(arrays, into_new, cos, sin, unsqueeze_dim):
    """The rotation by given cos and sin tables through its front door on the eager route
    (fastpe._frontdoor.rotate_tensors_by_cos_sin_eagerly), as eager_rotation."""
    if _dynamo_tracing():
        return None
    return _frontdoor.rotate_tensors_by_cos_sin_eagerly(arrays, into_new, cos, sin, unsqueeze_dim)


def rotary_into(outs, arrays, offset, positions, inv_freq, options, transpose=False):
    """Rotate arrays into outs (outs is arrays: in place); transpose: the backward's rotation."""
    if outs is arrays and not transpose and _front_door(tuple(arrays), False, offset, positions, inv_freq,
                                                        options) is not None:
        return
    if not on_kernels(outs[0]):
        return _device.rotary_into(outs, arrays, offset, positions, inv_freq, options, transpose)
    rotate = apply_rotary_transpose if transpose else apply_rotary
    offset, positions, inv_freq = _offset(offset), read_view(positions), read_view(inv_freq)
    if outs is arrays:
        rotate(*[_written(f"arrays[{i}]", a) for i, a in enumerate(arrays)], offset=offset, positions=positions,
               inv_freq=inv_freq, **options)
    else:
        rotate(*[read_view(a) for a in arrays], out=[view(o) for o in outs], offset=offset, positions=positions,
               inv_freq=inv_freq, **options)


# Below this many elements per array an out-of-place rotation copies its input and rotates the copy in place
# (fastpe's compiled decode path serves in-place calls); above, one pass reads the input and writes the result.
_COPY_THEN_ROTATE_BELOW = 1 << 16
# Tensor dtypes torch.from_numpy gives back from a NumPy copy of their view.
_NUMPY_ALLOCATED = (torch.float32, torch.float64, torch.float16)


def rotated(arrays, offset, positions, inv_freq, options, transpose=False, like_fake=True):
    """New tensors: the arrays rotated. like_fake: with torch.empty_like's strides, as the operator's fake
    implementation says (the operator's own call); else (the eager route, where no graph relies on them)
    small float32/float64 results may come from NumPy copies, which cost less to make."""
    if not transpose:
        made = _front_door(tuple(arrays), True, offset, positions, inv_freq, options)
        if made is not None:
            return made
    if transpose or not on_kernels(arrays[0]) or any(a.numel() >= _COPY_THEN_ROTATE_BELOW for a in arrays):
        outs = [torch.empty_like(a) for a in arrays]
        rotary_into(outs, arrays, offset, positions, inv_freq, options, transpose)
        return outs
    if like_fake or any(a.dtype not in _NUMPY_ALLOCATED for a in arrays):
        outs = [torch.empty_like(a) for a in arrays]
        targets = [view(o) for o in outs]
        for target, a in zip(targets, arrays):
            np.copyto(target, read_view(a))
    else:
        targets = [read_view(a).copy(order="K") for a in arrays]
        outs = [torch.from_numpy(target) for target in targets]
    apply_rotary(*targets, offset=_offset(offset), positions=read_view(positions), inv_freq=read_view(inv_freq),
                 **options)
    return outs


def cos_sin_into(outs, arrays, cos, sin, unsqueeze_dim, transpose=False):
    if not on_kernels(outs[0]):
        return _device.cos_sin_into(outs, arrays, cos, sin, unsqueeze_dim, transpose)
    if outs is arrays:
        rotate_by_cos_sin([_written(f"arrays[{i}]", a) for i, a in enumerate(arrays)], read_view(cos),
                          read_view(sin), unsqueeze_dim, transpose=transpose)
    else:
        rotate_by_cos_sin([read_view(a) for a in arrays], read_view(cos), read_view(sin), unsqueeze_dim,
                          out=[view(o) for o in outs], transpose=transpose)


def alibi_into(out, scores, slopes, offset, key_positions, options):
    if not on_kernels(out):
        return _device.alibi_into(out, scores, slopes, offset, key_positions, options)
    source, target = _source_and_out("scores", out, scores)
    add_alibi(source, slopes=read_view(slopes), offset=_offset(offset), key_positions=read_view(key_positions),
              out=target, **options)


def relative_bias_into(out, scores, bias_table, offset, options):
    if not on_kernels(out):
        return _device.relative_bias_into(out, scores, bias_table, offset, options)
    source, target = _source_and_out("scores", out, scores)
    add_relative_bias(source, read_view(bias_table), offset=_offset(offset), out=target, **options)


def make_positions(token_ids, padding_idx, past_length):
    """fastpe.make_positions of the ids (computed on the CPU), on the ids' device."""
    positions = _make_positions(read_view(token_ids), padding_idx, past_length=_offset(past_length))
    return torch.from_numpy(positions).to(token_ids.device)


# ------------------------------------------------------------------ gradients of the learned tables

def _accumulated(grad, table):
    """grad as the dtype a table's gradient is summed in (the table's, at least float32)."""
    return grad.to(torch.promote_types(table.dtype, torch.float32))


def table_gradient(grad, table, offset, positions):
    """The gradient of add_table's table: grad's rows summed into the rows they were added from."""
    rows, _ = _device.table_rows(np.empty(tuple(grad.shape), np.float32), _device.table_stand_in(table, np.float32),
                                 offset, positions)
    summed = torch.zeros(table.shape, dtype=torch.promote_types(table.dtype, torch.float32), device=grad.device)
    summed.index_add_(0, torch.from_numpy(rows).to(grad.device).reshape(-1),
                      _accumulated(grad, table).reshape(-1, table.shape[1]))
    return summed.to(table.dtype)


def relative_bias_gradient(grad, bias_table, offset, options):
    """The gradient of add_relative_bias's table: grad summed over the (query, key) pairs of each bucket."""
    stand_in = np.empty(grad.shape, dtype=np.float32)
    _, _, _, settings, off, _ = relative_request(stand_in, _device.table_stand_in(bias_table, np.float32),
                                                 options["bidirectional"], options["num_buckets"],
                                                 options["max_distance"], _offset(offset), None, None)
    B, H, Tq, Tk = grad.shape
    if grad.numel() == 0:
        return torch.zeros_like(bias_table)
    # Query i and key j of batch b are at distance distances[start[b] - i + j] (fastpe._bias._distances):
    # sum grad along each diagonal, then the diagonals into their buckets.
    distances, start = _bias._distances(off, Tq, Tk)
    buckets = torch.from_numpy(_formulas.bucket_of(distances, *settings)).to(grad.device)
    diagonal = (torch.arange(Tk, device=grad.device)[None, :] - torch.arange(Tq, device=grad.device)[:, None]
                + (Tq - 1)).reshape(-1)
    n_diagonals = Tq + Tk - 1
    by_diagonal = torch.zeros(B * H, n_diagonals, dtype=torch.promote_types(bias_table.dtype, torch.float32),
                              device=grad.device)
    by_diagonal.index_add_(1, diagonal, _accumulated(grad, bias_table).reshape(B * H, Tq * Tk))
    first = torch.from_numpy(np.ascontiguousarray(start - (Tq - 1))).to(grad.device)
    bucket_of_diagonal = buckets[first[:, None] + torch.arange(n_diagonals, device=grad.device)[None, :]]  # (B, W)
    summed = torch.zeros(H, bias_table.shape[0], dtype=by_diagonal.dtype, device=grad.device)
    summed.index_add_(1, bucket_of_diagonal.reshape(-1),
                      by_diagonal.reshape(B, H, n_diagonals).permute(1, 0, 2).reshape(H, -1))
    return summed.T.contiguous().to(bias_table.dtype)
