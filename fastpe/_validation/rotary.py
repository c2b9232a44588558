"""The checked arguments of apply_rotary and rotary_cos_sin (checks only).

The frequencies of a call (a scaling read, a rule applied) are
fastpe._rope's; a rotation's request is checked in two steps around them,
in the order its errors are raised: the arrays, axes, offsets or positions
and scalars first (rotary_request), then, once the frequencies give the
rotary width, the width against the arrays, the outputs and how the
targets overlap (complete_rotary_request).
"""

import numpy as np

from .. import _kernels
from .._formulas import offset_positions, rotary_positions_shaped, to_rows
from . import params
from .aliasing import read_apart, same_view, shares_memory
from .arrays import as_float_array, broadcastable_to, check_dtype_argument, check_out, real_array, writable_array
from .requests import table_offset
from .scalars import check_count, check_int, check_layout, check_position_range

# The rotary layouts: the rotate kernel's pair layouts.
ROTARY_LAYOUTS = _kernels.PAIR_LAYOUTS


class RotaryRequest:
    """Checked arguments of apply_rotary (and of a rotation by given tables).
    width: the channel count the arrays share (None if they differ);
    rotary_dim: the caller's (checked) until complete_rotary_request sets
    the frequencies' own; freq, freq_lo, attention_factor: the frequencies'."""

    __slots__ = ("arrays", "outs", "seq_axes", "T", "width", "base", "rotary_dim", "layout", "freq", "freq_lo",
                 "attention_factor", "offset", "positions", "num_threads", "repeated")


def check_rotary_dim(rotary_dim):
    """An even int >= 2: channels are rotated in pairs (params.ROTARY_DIM)."""
    return params.ROTARY_DIM.check(rotary_dim)


def _seq_axis(name, seq_axis, ndim):
    axis = check_int("seq_axis", seq_axis)
    if not -ndim <= axis < ndim or axis % ndim == ndim - 1:
        raise ValueError(f"seq_axis={seq_axis} must name an axis of {name} ({ndim} dims) before its channel axis")
    return axis % ndim


def arrays_to_rotate(arrays, out, declaration):
    """The arrays a rotation reads (written in place when out is None), of one
    dtype and of the declaration's dimensions (params.Arrays), and their names."""
    if not arrays:
        raise TypeError("apply_rotary needs at least one array to rotate")
    if out is not None:
        if isinstance(out, np.ndarray) or len(out) != len(arrays):
            raise ValueError(f"out must be a sequence of {len(arrays)} arrays, one per array to rotate")
    names = [f"arrays[{i}]" for i in range(len(arrays))]
    checked = []
    for i, a in enumerate(arrays):
        a = writable_array(names[i], a, hint="; pass out= to write the result elsewhere") if out is None \
            else as_float_array(names[i], a, like=writable_array(f"out[{i}]", out[i]).dtype)
        checked.append(declaration.check_ndim(names[i], a))
    if len({a.dtype for a in checked}) > 1:
        raise TypeError(f"the arrays to rotate must share one dtype, got {[a.dtype.name for a in checked]}")
    return checked, names


def rotary_request(arrays, offset, positions, base, layout, rotary_dim, seq_axis, out, num_threads):
    """The checks of apply_rotary before its frequencies (see the module docstring)."""
    req = RotaryRequest()
    checked, names = arrays_to_rotate(arrays, out, params.ROTATED_ARRAYS)
    req.arrays = checked
    req.seq_axes = [_seq_axis(names[i], seq_axis, a.ndim) for i, a in enumerate(checked)]
    lengths = {a.shape[ax] for a, ax in zip(checked, req.seq_axes)}
    if len(lengths) > 1:
        raise ValueError(f"the arrays to rotate must agree on the sequence length, got {sorted(lengths)}")
    req.T = lengths.pop()
    req.layout = check_layout(layout, ROTARY_LAYOUTS)
    widths = {a.shape[-1] for a in checked}
    req.width = next(iter(widths)) if len(widths) == 1 else None
    req.rotary_dim = None if rotary_dim is None else check_rotary_dim(rotary_dim)
    req.base = params.BASE.check(base)
    req.num_threads = params.NUM_THREADS.check(num_threads)
    off = params.OFFSET.check(offset)
    B = checked[0].shape[0]
    if positions is not None:
        if (off != 0).any():
            raise ValueError("offset cannot be combined with positions: positions already give every token's position")
        req.positions = real_array("positions", positions, position=True)
        req.offset = None
        for a, ax, name in zip(checked, req.seq_axes, names):
            _positions_for(req.positions, a.shape[: ax + 1], name)
    else:
        if off.ndim > 1 or (off.ndim == 1 and off.shape[0] not in (1, B)):
            raise ValueError(f"offset must be a number or one per sequence, shape ({B},) along the first axis; "
                             f"got shape {off.shape}")
        if off.ndim == 1 and any(a.shape[0] != B or ax == 0 for a, ax in zip(checked, req.seq_axes)):
            raise ValueError("a per-sequence offset needs every array to have the batch on its first axis")
        req.offset, req.positions = off, None
        if off.size and req.T:
            check_position_range("offset + T - 1", float(np.min(off)), float(np.max(off)) + (req.T - 1))
    return req


def complete_rotary_request(req, freq, out):
    """The checks of apply_rotary after its frequencies (a
    fastpe._rope.ScaledFrequencies), whose values the request then holds."""
    narrowest = min(a.shape[-1] for a in req.arrays)
    if freq.rotary_dim > narrowest:
        raise ValueError(f"rotary_dim={freq.rotary_dim} exceeds the channel count of an array ({narrowest})")
    req.rotary_dim = freq.rotary_dim
    req.freq, req.freq_lo, req.attention_factor = freq.freq, freq.freq_lo, freq.attention_factor
    if out is not None:
        req.outs = [check_out(o, a.shape, a.dtype, name=f"out[{i}]") for i, (o, a) in enumerate(zip(out, req.arrays))]
    else:
        req.outs = None
    _check_targets(req, [f"arrays[{i}]" for i in range(len(req.arrays))])
    written = rotation_targets(req)
    req.offset, req.positions = (read_apart(a, written) for a in (req.offset, req.positions))
    return req


def rotation_targets(req):
    """The array each rotation writes: out[i], or the array itself."""
    return req.arrays if req.outs is None else req.outs


def _check_targets(req, names):
    """Refuse targets that partly overlap (no defined result); note the ones
    that repeat an earlier target. The same target twice is defined only
    when it receives the same rotation of the same array (it is then written once)."""
    targets = rotation_targets(req)
    target_names = names if req.outs is None else [f"out[{i}]" for i in range(len(targets))]
    req.repeated = set()
    for j in range(len(targets)):
        for i in range(j):
            a, b = targets[i], targets[j]
            if not (a.size and b.size and np.may_share_memory(a, b)):
                continue  # the common case: bounds apart
            if same_view(a, b):
                if not same_view(req.arrays[i], req.arrays[j]):
                    raise ValueError(f"{target_names[i]} and {target_names[j]} are the same array but receive the "
                                     f"rotations of different arrays ({names[i]} and {names[j]}); pass distinct "
                                     "outputs")
                req.repeated.add(j)
            elif shares_memory(a, b):
                raise ValueError(f"{target_names[i]} and {target_names[j]} overlap in memory without being the same "
                                 "array; the result of writing both would depend on the order of the writes. Pass "
                                 "arrays that do not overlap, or the same array")


def _positions_for(positions, prefix_shape, name):
    """positions aligned to an array's axes up to and including its sequence
    axis (the rule of fastpe._formulas.rotary_positions_shaped), checked to broadcast."""
    return broadcastable_to("positions", rotary_positions_shaped(positions, len(prefix_shape)), prefix_shape,
                            f"the axes up to the sequence axis of {name}", given_shape=positions.shape)


def last_position(req):
    """The largest position of a checked request (-1.0 without any): the
    seq_len of its frequencies is fastpe._formulas.rope_seq_len of it."""
    if req.positions is not None:
        return np.max(req.positions) if req.positions.size else -1.0
    return (float(np.max(req.offset)) if req.offset.size else 0.0) + req.T - 1


def prefix_positions(req, i):
    """Float64 positions over array i's axes up to its sequence axis (size-1
    axes where they broadcast): small, before any fan-out over heads."""
    a, ax = req.arrays[i], req.seq_axes[i]
    if req.positions is not None:
        return _positions_for(req.positions, a.shape[: ax + 1], f"arrays[{i}]")
    return offset_positions(req.offset, req.T, ax)


def row_positions(req, i):
    """Float64 positions of every vector row of array i, shaped like its shape[:-1]."""
    return to_rows(prefix_positions(req, i), req.arrays[i].shape, req.seq_axes[i])


def rotary_table_arguments(n_positions, rotary_dim, offset, base, layout, dtype):
    """Checked arguments of rotary_cos_sin (shared with the reference)."""
    n_positions = check_count("n_positions", n_positions)
    return (n_positions, check_rotary_dim(rotary_dim), table_offset(offset, n_positions), params.BASE.check(base),
            check_layout(layout, ROTARY_LAYOUTS), check_dtype_argument(dtype))
