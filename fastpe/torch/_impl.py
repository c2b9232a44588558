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

from .. import _bias, _formulas
from .._bias import add_alibi, add_relative_bias
from .._rotary import apply_rotary, apply_rotary_transpose
from .._rotary_given import rotate_by_cos_sin
from .._sinusoid import add_sinusoidal, add_table
from .._sinusoid import make_positions as _make_positions
from .._validation import _refuse_lazy_tensor, relative_request
from . import _device
from ._tensors import from_view, read_view, view


def on_kernels(tensor):
    """The call runs fastpe's kernels (a CPU tensor, the torch-ops path not forced)."""
    return tensor.is_cpu and not _device.forced()


def _offset(offset):
    """The operators' offset (None: the default, 0) as the NumPy-facing functions read it."""
    return 0 if offset is None else read_view(offset)


def _written(name, tensor):
    """The view a NumPy-facing function writes in place."""
    _refuse_lazy_tensor(name, tensor)
    return view(tensor)


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


def rotary_into(outs, arrays, offset, positions, inv_freq, options, transpose=False):
    """Rotate arrays into outs (outs is arrays: in place); transpose: the backward's rotation."""
    if not on_kernels(outs[0]):
        return _device.rotary_into(outs, arrays, offset, positions, inv_freq, options, transpose)
    rotate = apply_rotary_transpose if transpose else apply_rotary
    common = dict(offset=_offset(offset), positions=read_view(positions), inv_freq=read_view(inv_freq), **options)
    if outs is arrays:
        rotate(*(_written(f"arrays[{i}]", a) for i, a in enumerate(arrays)), **common)
    else:
        rotate(*(read_view(a) for a in arrays), out=[view(o) for o in outs], **common)


def rotated_copies(arrays, offset, positions, inv_freq, options):
    """New tensors: copies of the CPU arrays, rotated in place (small arrays: fastpe's compiled decode path)."""
    copies = [view(a).copy() for a in arrays]
    apply_rotary(*copies, offset=_offset(offset), positions=read_view(positions), inv_freq=read_view(inv_freq),
                 **options)
    return [from_view(c, like=a) for c, a in zip(copies, arrays)]


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
