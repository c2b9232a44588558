"""Checks of the rotation by given cos and sin tables (Hugging Face's apply_rotary_pos_emb).

``arrays[i] * cos' + rotate_half(arrays[i]) * sin'``, where ``cos'`` is
`cos` with a new axis at `unsqueeze_dim` (torch's ``unsqueeze``), broadcast
to the array. fastpe applies it as a rotation of channel pairs
``(k, k + D/2)``, which is what the formula computes when each table repeats
its first half in its second (``cat(freqs, freqs)``, as every Hugging Face
rotary module builds them); tables that do not are refused rather than
rotated by half of their columns.
"""

import numpy as np

from . import params
from .arrays import check_out, real_array
from .rotary import RotaryRequest, _check_targets, arrays_to_rotate
from .scalars import check_int


def _unsqueezed(name, table, unsqueeze_dim):
    """table with a new axis at unsqueeze_dim, as torch.unsqueeze places it."""
    if not -table.ndim - 1 <= unsqueeze_dim <= table.ndim:
        raise ValueError(f"unsqueeze_dim={unsqueeze_dim} is not a place for a new axis of {name}, which has "
                         f"{table.ndim} dimensions")
    return np.expand_dims(table, unsqueeze_dim)


def repeat_halves_message(name, half):
    """The refusal of a table whose halves differ."""
    return (f"{name} must repeat its first half in its second (cat(freqs, freqs), as Hugging Face's rotary modules "
            f"build it): the rotation pairs channel k with k + {half}")


def cos_sin_request(arrays, cos, sin, unsqueeze_dim, out):
    """(request with arrays, outs and repeated as in rotary_request; cos and
    sin as float64 arrays with the new axis inserted, broadcastable to every array)."""
    req = RotaryRequest()
    checked, names = arrays_to_rotate(arrays, out, params.GIVEN_COS_SIN_ARRAYS)
    req.arrays = checked
    unsqueeze_dim = check_int("unsqueeze_dim", unsqueeze_dim)
    cos, sin = real_array("cos", cos), real_array("sin", sin)
    if cos.shape != sin.shape:
        raise ValueError(f"cos and sin must have one shape, got {cos.shape} and {sin.shape}")
    if cos.ndim < 1 or cos.shape[-1] % 2:
        raise ValueError(f"cos and sin must have an even last axis (channel pairs), got shape {cos.shape}")
    cos_u, sin_u = _unsqueezed("cos", cos, unsqueeze_dim), _unsqueezed("sin", sin, unsqueeze_dim)
    for a, name in zip(checked, names):
        try:
            fits = np.broadcast_shapes(cos_u.shape, a.shape) == a.shape
        except ValueError:
            fits = False
        if not fits or cos_u.shape[-1] != a.shape[-1]:
            raise ValueError(f"cos and sin of shape {cos.shape}, unsqueezed at {unsqueeze_dim} to {cos_u.shape}, "
                             f"do not broadcast to {name} of shape {a.shape} (channel axis included)")
    half = cos.shape[-1] // 2
    for table, name in ((cos, "cos"), (sin, "sin")):
        if not np.array_equal(table[..., :half], table[..., half:]):
            raise ValueError(repeat_halves_message(name, half))
    req.outs = None if out is None else [check_out(o, a.shape, a.dtype, name=f"out[{i}]")
                                         for i, (o, a) in enumerate(zip(out, checked))]
    _check_targets(req, names)
    return req, cos_u, sin_u
