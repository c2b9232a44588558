"""The rotations fastpe.hf puts into Hugging Face models.

* `apply_rotary_pos_emb`: HF's function of that name (rotation by given cos
  and sin), one fused pass of fastpe.torch.apply_rotary_cos_sin.
* `RotaryCall`: what the rotary module of a model patched by
  fastpe.hf.apply_to returns in place of cos and sin. It carries the
  positions and the model's scaling, and the attention layers' rotation
  (apply_rotary_pos_emb, or the dispatcher apply_to installs in the model's
  modeling module) rotates from the positions, with float64 angles. Its cos
  and sin are tensors of HF's shapes filled with NaN (one element, expanded):
  any code that reads them as numbers gets NaN, never a plausible wrong
  result.
"""

from __future__ import annotations

import math

import torch

from ..torch import apply_rotary, apply_rotary_cos_sin

_CARRIED = "_fastpe_rotary_call"  # the attribute of the NaN cos and sin that names their RotaryCall


class RotaryCall:
    """A rotation from positions: fastpe.torch.apply_rotary's arguments
    besides the arrays (frequencies: ``scaling=`` or ``inv_freq=``)."""

    __slots__ = ("positions", "rotary_dim", "layout", "frequencies", "where")

    def __init__(self, positions, rotary_dim, layout, frequencies):
        self.positions = positions
        self.rotary_dim = rotary_dim
        self.layout = layout
        self.frequencies = frequencies
        self.where = _where(positions)

    def tables(self, like, width):
        """NaN stand-ins for cos and sin, (B, T, width) like HF's (B from the
        positions), of like's dtype and device, each naming this call."""
        nan = torch.full((), math.nan, dtype=like.dtype, device=like.device)
        shape = (self.positions.shape[0], self.positions.shape[-1], width)
        cos, sin = nan.expand(shape), nan.expand(shape)
        setattr(cos, _CARRIED, self)
        setattr(sin, _CARRIED, self)
        return cos, sin

    def rotate(self, q, k, seq_axis):
        """q and k (k may be None) rotated out of place."""
        return apply_rotary(q, k, rotary_dim=self.rotary_dim, layout=self.layout, seq_axis=seq_axis, **self.where,
                            **self.frequencies)


def _where(position_ids):
    """fastpe.torch.apply_rotary's offset= for one run of consecutive positions
    that the whole batch shares (a prefill without padding, a decode step of
    one sequence: fastpe's fast path; the same angles), else positions=.
    Looked at once per forward, on the CPU only (elsewhere it would wait
    for the device), and not while a graph is traced (the positions are data of the graph there)."""
    if torch.compiler.is_compiling():
        return {"positions": position_ids}
    if position_ids.device.type == "cpu" and position_ids.ndim == 2 and position_ids.shape[0] == 1 \
            and position_ids.shape[1] and not position_ids.is_floating_point():
        first = int(position_ids[0, 0])
        length = position_ids.shape[1]
        if length == 1 or torch.equal(position_ids[0], torch.arange(first, first + length,
                                                                   dtype=position_ids.dtype)):
            return {"offset": first}
    return {"positions": position_ids}


def carried(first, second):
    """The RotaryCall that a pair of stand-in tables name, or None (real tables)."""
    call = getattr(first, _CARRIED, None)
    if call is None or getattr(second, _CARRIED, None) is not call:
        return None
    return call


def seq_axis_of(unsqueeze_dim, table_ndim):
    """The sequence axis of q and k from HF's unsqueeze_dim: cos (B, T, D)
    unsqueezed at 1 pairs with (B, H, T, D), at 2 with (B, T, H, D). Counted
    from the end, as fastpe's fast path recognises it (-2 is its default)."""
    axis = unsqueeze_dim + table_ndim + 1 if unsqueeze_dim < 0 else unsqueeze_dim
    if table_ndim != 3 or axis not in (1, 2):
        raise ValueError(f"unsqueeze_dim={unsqueeze_dim} with fastpe.hf's rotation: the batch must stay first, "
                         f"so pass 1 for q, k of shape (B, H, T, D) or 2 for (B, T, H, D)")
    return -2 if axis == 1 else -3


def apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1):
    """Hugging Face's ``apply_rotary_pos_emb``: q and k rotated by cos and sin, in one fused pass.

    ``q * cos + rotate_half(q) * sin`` (and the same for k), computed by
    `fastpe.torch.apply_rotary_cos_sin`: one pass over each tensor, each
    element rounded once, with a backward (the rotation by ``(cos, -sin)``).

    Parameters
    ----------
    q, k : Tensor
        Queries and keys, ``(B, H, T, D)`` (``unsqueeze_dim=1``) or
        ``(B, T, H, D)`` (``unsqueeze_dim=2``); the head counts may differ.
    cos, sin : Tensor
        ``(B, T, R)`` as a HF rotary module returns them (the frequencies
        repeated in both halves). ``R < D`` rotates the first ``R`` channels
        and passes the rest through, as Phi-3's and GPT-NeoX's own
        ``apply_rotary_pos_emb`` do.
    unsqueeze_dim : int, optional
        HF's: the axis of q and k that cos and sin lack.

    Returns
    -------
    q_embed, k_embed : Tensor
        New tensors.

    Notes
    -----
    cos and sin made by a model patched with `apply_to` carry their
    positions: q and k are then rotated from those positions with float64
    angles (the patched model's own path).

    Examples
    --------
    >>> import torch
    >>> import fastpe.hf
    >>> q, k = torch.randn(2, 4, 6, 16), torch.randn(2, 2, 6, 16)
    >>> angles = torch.arange(6.0)[:, None] * 10000.0 ** (-torch.arange(0.0, 16, 2) / 16)
    >>> cos, sin = torch.cat([angles, angles], -1).cos()[None], torch.cat([angles, angles], -1).sin()[None]
    >>> q_embed, k_embed = fastpe.hf.apply_rotary_pos_emb(q, k, cos, sin)
    >>> rotate_half = torch.cat([-q[..., 8:], q[..., :8]], -1)
    >>> bool(torch.allclose(q_embed, q * cos[:, None] + rotate_half * sin[:, None], atol=1e-6))
    True
    """
    call = carried(cos, sin)
    if call is not None:
        return call.rotate(q, k, seq_axis_of(unsqueeze_dim, cos.ndim))
    width = cos.shape[-1]
    if width < q.shape[-1]:  # Phi-3's and GPT-NeoX's form: the first channels rotate, the rest pass through
        q_rot, k_rot = apply_rotary_cos_sin(q[..., :width], k[..., :width], cos, sin, unsqueeze_dim=unsqueeze_dim)
        return torch.cat([q_rot, q[..., width:]], dim=-1), torch.cat([k_rot, k[..., width:]], dim=-1)
    return apply_rotary_cos_sin(q, k, cos, sin, unsqueeze_dim=unsqueeze_dim)


def dispatcher(original, signature):
    """The function apply_to puts in a modeling module in place of its
    ``apply_rotary_pos_emb`` (original): calls with a patched model's
    stand-in tables rotate from their positions; every other call goes to
    original unchanged, so unpatched models of that family compute what they
    did. signature: "qk" (HF's ``(q, k, cos, sin, unsqueeze_dim=1)``) or
    "gptj" (GPT-J's ``(tensor, sin, cos)``, interleaved, (B, T, H, D))."""
    if signature == "gptj":
        def apply_rotary_pos_emb(tensor, sin, cos):
            call = carried(sin, cos)
            if call is None:
                return original(tensor, sin, cos)
            return call.rotate(tensor, None, -3)
    else:
        def apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1):
            call = carried(cos, sin)
            if call is None:
                return original(q, k, cos, sin, unsqueeze_dim)
            return call.rotate(q, k, seq_axis_of(unsqueeze_dim, cos.ndim))
    apply_rotary_pos_emb.__wrapped__ = original
    apply_rotary_pos_emb.__doc__ = (f"fastpe.hf's dispatcher: a patched model's rotation from positions, else "
                                    f"{getattr(original, '__qualname__', type(original).__name__)} unchanged.")
    return apply_rotary_pos_emb


def is_dispatcher(function):
    return getattr(function, "__code__", None) in _DISPATCHER_CODES


_DISPATCHER_CODES = {dispatcher(None, kind).__code__ for kind in ("qk", "gptj")}
