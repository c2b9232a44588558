"""The eager peers: what a user writes without fastpe, in NumPy and in torch.

The encoding is computed once, outside the timed region, by
fastpe.reference in the case's dtype (as the PyTorch tutorial's
``register_buffer`` does); a call adds the rows it needs in place,
``x += table[o:o+T]`` or ``x.add_(table[o:o+T])``, at the same offset as
fastpe's call. Rotary's peer is Hugging Face's ``q * cos + rotate_half(q) *
sin`` with cos and sin cached for every position. Each peer works on the
case's own arrays (torch through tensors sharing their memory) and gets the
same call index, so the same positions, as fastpe.

A builder is ``build(op, st, dtype, options, lib, threads) -> call(i)``; it raises
PeerUnavailable when its library cannot compute the case (a dtype it has no
arithmetic for). A call returns None when it works in place on
``st.target``, else the arrays it computed.
"""

import importlib

import numpy as np

from fastpe import reference

from .cases import CACHED_ADD, HF_MODEL, ROTARY_FAMILY, ROTARY_TRAINING, call_offset, max_offset, rows_needed

__all__ = ["PeerUnavailable", "cos_sin_cache", "numpy_adds", "offset_position_ids", "tensor"]


class PeerUnavailable(Exception):
    """A peer that cannot compute this case here; the message says why (the report shows it)."""


def tensor(torch, a):
    """A tensor sharing a's memory (bfloat16 through its 16-bit pattern: torch
    does not know ml_dtypes)."""
    if a.dtype.name == "bfloat16":
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def numpy_adds(dtype):
    """Whether NumPy can add arrays of `dtype` (ml_dtypes' bfloat16 registers the ufunc)."""
    try:
        np.add(np.zeros(1, dtype), np.zeros(1, dtype))
    except TypeError:
        return False
    return True


def table_rows(st, op, options, convert):
    """rows(i): the table rows call i reads, table[o:o+T] at the call's offset o
    (op.peer_rows "slice") or table[positions] (a gather, "positions")."""
    if op.peer_rows == "positions":
        index = convert(st.positions)
        return lambda i: index
    n = st.target.shape[-2]

    def rows(i):
        o = call_offset(i, options)
        return slice(o, o + n)

    return rows


def _numpy_cached_add(op, st, dtype, options, np_module, threads):
    if not numpy_adds(dtype):
        raise PeerUnavailable(f"numpy has no {dtype.name} arithmetic")
    table = op.peer_table(st, dtype, options)
    x = st.target
    rows = table_rows(st, op, options, lambda a: a)

    def numpy_add(i):
        np.add(x, table[rows(i)], out=x)  # x += table[rows]

    return numpy_add


def _torch_cached_add(op, st, dtype, options, torch, threads):
    table = op.peer_table(st, dtype, options)
    xt, tt = tensor(torch, st.target), tensor(torch, table)
    rows = table_rows(st, op, options, torch.from_numpy)

    def torch_add(i):
        xt.add_(tt[rows(i)])

    return torch_add


def cos_sin_cache(st, dtype, options):
    """HF's cached cos and sin, (rows, D) in the "half" layout with duplicated
    halves, for every position a call of the case reads; the scaled
    frequencies and yarn's attention factor folded in, as HF does."""
    dim = st.target.shape[-1]
    return reference.rotary_cos_sin(rows_needed(st, options), dim, scaling=options.get("scaling"), layout="half",
                                    dtype=dtype)


def offset_position_ids(st, options, convert=lambda a: a):
    """position_ids (1, T) of every offset, made once (a model makes them per
    step; not what is measured here)."""
    t = st.target.shape[-2]
    positions = convert(np.arange(rows_needed(st, options)))
    return [positions[None, o:o + t] for o in range(max_offset(options) + 1)]


def hf_formula(rotate_half):
    """Hugging Face's ``apply_rotary_pos_emb`` on cached cos/sin: gather the rows
    of position_ids, then ``q * cos + rotate_half(q) * sin``, and the same for
    k. Like HF, the results are new arrays; q and k are left as they are."""

    def apply(q, k, cos, sin, position_ids):
        c, s = cos[position_ids][:, None], sin[position_ids][:, None]
        return q * c + rotate_half(q) * s, k * c + rotate_half(k) * s

    return apply


def hf_rotary(q, k, cos, sin, ids, apply, options):
    """call(i): `apply` (hf_formula, or its compiled form) at call i's position_ids."""

    def call(i):
        return apply(q, k, cos, sin, ids[call_offset(i, options)])

    return call


def _rotate_half_numpy(a):
    h = a.shape[-1] // 2
    return np.concatenate((-a[..., h:], a[..., :h]), axis=-1)


def rotate_half_torch(torch):
    def rotate_half(a):
        h = a.shape[-1] // 2
        return torch.cat((-a[..., h:], a[..., :h]), dim=-1)

    return rotate_half


def _numpy_rotary(op, st, dtype, options, np_module, threads):
    if dtype.name == "bfloat16":
        # ml_dtypes' loops take seconds a prefill call: the bfloat16 cases compare with torch's
        raise PeerUnavailable("numpy has no native bfloat16 arithmetic (ml_dtypes' loops convert each element)")
    cos, sin = cos_sin_cache(st, dtype, options)
    return hf_rotary(st.target[0], st.target[1], cos, sin, offset_position_ids(st, options),
                     hf_formula(_rotate_half_numpy), options)


def _torch_rotary(op, st, dtype, options, torch, threads):
    cos, sin = cos_sin_cache(st, dtype, options)
    return hf_rotary(tensor(torch, st.target[0]), tensor(torch, st.target[1]), tensor(torch, cos),
                     tensor(torch, sin), offset_position_ids(st, options, torch.from_numpy),
                     hf_formula(rotate_half_torch(torch)), options)


def _torch_rotary_training(op, st, dtype, options, torch, threads):
    """HF's formula with autograd: the gradients of q and k (the case's leaf
    tensors) for the case's output gradients, through the cached cos/sin rows."""
    cos, sin = cos_sin_cache(st, dtype, options)
    q, k = st.leaves
    ids = offset_position_ids(st, options, torch.from_numpy)
    forward = hf_rotary(q, k, tensor(torch, cos), tensor(torch, sin), ids, hf_formula(rotate_half_torch(torch)), options)

    def hf_training(i):
        return torch.autograd.grad(forward(i), (q, k), st.grad_out)

    return hf_training


NUMPY_BUILDERS = {CACHED_ADD: _numpy_cached_add, ROTARY_FAMILY: _numpy_rotary}
def _torch_hf_model(*args):
    """The same Hugging Face model unpatched (fastpe.bench.hf_model)."""
    return importlib.import_module(__package__ + ".hf_model").torch_peer(*args)


TORCH_BUILDERS = {CACHED_ADD: _torch_cached_add, ROTARY_FAMILY: _torch_rotary, ROTARY_TRAINING: _torch_rotary_training,
                  HF_MODEL: _torch_hf_model}
