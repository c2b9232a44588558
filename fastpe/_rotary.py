"""Rotary position embeddings (RoPE), applied in place.

The distinct positions of a call are collected once; their cosines and sines
come from the sinusoid kernel in float64 (one table for all the arrays being
rotated, attention factor folded in; fastpe._tables.cos_sin_rows); the rotate
kernel then rotates the channel pairs of every vector row of each array,
visiting the rows by blocks of positions across every head (_position_block)
so that a block's cos/sin rows stay in cache.

The route goes one way: apply_rotary first offers its arguments, unchanged,
to its compiled front door (fastpe._frontdoor.apply_rotary), which serves the
common decode call or returns None; the general path then checks the
arguments (fastpe._validation.rotary), takes the scaled frequencies from
fastpe._frontdoor.rotary_frequencies (the cache over fastpe._rope, which
reads the scaling once) and calls the kernels.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union, overload

import numpy as np
import numpy.typing as npt

from . import _frontdoor, _kernels, _rope, _runtime
from ._formulas import DEFAULT_BASE, new_array, to_rows
from ._tables import cos_sin_rows
from ._typing import ArrayT, Int, OptArrayLike, OptInt, OptReal, Real, RotaryLayout, Scaling, Table
from ._validation import caller_results, same_view, shares_memory
from ._validation.arrays import written_views
from ._validation.rotary import (
    complete_rotary_request,
    last_position,
    prefix_positions,
    rotary_request,
    rotary_table_arguments,
    rotation_targets,
)


def rope_inv_freq(dim: OptInt, base: Real = DEFAULT_BASE, scaling: Scaling = None, *,
                  seq_len: OptInt = None) -> tuple[npt.NDArray[np.float64], float]:
    """RoPE inverse frequencies and attention factor, as HF transformers 5.x computes them.

    The rules of ``ROPE_INIT_FUNCTIONS`` with their parameter names, computed
    in float64 (HF computes the frequencies in float32).

    Parameters
    ----------
    dim : int or None
        Head dimension (positive, even); with a ``partial_rotary_factor`` key
        the rotary width is ``int(dim * partial_rotary_factor)``. None takes
        it from a config given as `scaling` (``head_dim``, else
        ``hidden_size // num_attention_heads``).
    base : float, optional
        RoPE theta (default 10000); a ``rope_theta`` key of `scaling`
        overrides it.
    scaling : dict or config, optional
        None (plain RoPE), a dict like ``config.rope_parameters``, or the
        Hugging Face config itself (anything with ``rope_parameters``, or a
        transformers 4.x config with ``rope_scaling`` and ``rope_theta``;
        see `apply_rotary`). Its
        ``rope_type`` (or legacy ``type``) is one of ``default``, ``linear``
        (``factor``), ``dynamic`` (``factor``, ``max_position_embeddings``),
        ``yarn`` (``factor``, ``beta_fast``, ``beta_slow``, ``mscale``,
        ``mscale_all_dim``, ``attention_factor``, ``truncate``,
        ``original_max_position_embeddings``), ``longrope``
        (``long_factor``, ``short_factor``,
        ``original_max_position_embeddings``, ``factor`` or
        ``max_position_embeddings``) or ``llama3`` (``factor``,
        ``low_freq_factor``, ``high_freq_factor``,
        ``original_max_position_embeddings``), ``proportional``. Keys a type
        does not use are ignored with a UserWarning naming them, as HF's
        validation does; a ``seq_len`` key is a ValueError (it is an
        argument). The dict is never modified.
    seq_len : int, optional
        The current sequence length (``dynamic``, ``longrope``); ignored by
        the other types.

    Returns
    -------
    inv_freq : ndarray of float64
        ``rotary_dim // 2`` frequencies.
    attention_factor : float
        The factor that multiplies cos and sin (yarn, longrope; else 1).

    Raises
    ------
    TypeError
        A `scaling` that is not a mapping, non-numeric keys.
    ValueError
        An unknown ``rope_type``, a missing or out-of-range key (each is
        named), an odd rotary width.

    See Also
    --------
    apply_rotary : takes the same `scaling`.

    Notes
    -----
    The module ``fastpe._rope.scalings`` lists HF's quirks that fastpe keeps
    (a lone ``mscale`` is ignored by yarn, ``truncate=None`` means False,
    longrope switches to the long factors only above
    ``original_max_position_embeddings``) and where it is stricter than HF.

    Examples
    --------
    >>> import numpy as np
    >>> import fastpe
    >>> inv_freq, factor = fastpe.rope_inv_freq(128, 500000.0)
    >>> inv_freq.shape, factor
    ((64,), 1.0)
    >>> linear, _ = fastpe.rope_inv_freq(128, 500000.0, {"rope_type": "linear", "factor": 8.0})
    >>> bool(np.allclose(linear, inv_freq / 8))
    True
    >>> _, yarn_factor = fastpe.rope_inv_freq(64, 10000.0, {"rope_type": "yarn", "factor": 4.0,
    ...                                                    "original_max_position_embeddings": 4096})
    >>> round(yarn_factor, 6)                # 0.1 * ln(4) + 1
    1.138629

    A config as it is (here Phi's shape, duck-typed: transformers is not
    needed) gives the head width and the partial rotary factor:

    >>> from types import SimpleNamespace
    >>> phi = SimpleNamespace(hidden_size=256, num_attention_heads=4, max_position_embeddings=2048,
    ...                       rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
    ...                                        "partial_rotary_factor": 0.5})
    >>> inv_freq, attention_factor = fastpe.rope_inv_freq(None, scaling=phi)   # head_dim 64, 32 rotary channels
    >>> inv_freq.shape, attention_factor
    ((16,), 1.0)
    """
    return _rope.rope_frequencies(dim, base, scaling, seq_len)


def _cached(key, build):
    """A read-only, flattened intp array kept in the bounded cache."""
    def make():
        arr = np.ascontiguousarray(build(), dtype=np.intp).ravel()
        arr.flags.writeable = False
        return arr

    return _frontdoor.cached(key, make)


# The rotate kernel visits the rows by blocks of positions: every row (all
# heads, all batch entries) of positions 0 .. B-1, then of B .. 2B-1, and so
# on. A block's cos/sin rows (B x n_pairs x 2 float64) then stay in the
# core's L2 while every head uses them, where C order would stream the whole
# table again from L3 for every head; a block is still long enough that each
# head's rows in it are one long run of memory for the prefetchers. B is set
# by the bytes of a block's table rows: 512 KiB timed best on (1, 32, 4096, D)
# q and k for D = 64, 128 and 256 (B = 1024, 512 and 256;
# docs/performance.rst). Inside a block the heads (the rows of the axes
# before the sequence axis) go in groups of _HEAD_GROUP, position by position
# within a group, so each cos/sin row is read from L2 once per group and from
# L1 for the group's other heads. The order changes no bit: each row's result
# is its own.
_TABLE_BLOCK_BYTES = 512 * 1024
_HEAD_GROUP = 2


def _position_block(n_pairs):
    """Positions per block of the rotate kernel's row order (0: C order; tests compare the two)."""
    return max(1, _TABLE_BLOCK_BYTES // (16 * n_pairs))


def _grouped_block_order(rows):
    """rows (heads, blocks, positions, after) in visit order, one row of the
    result per block: the heads in groups of _HEAD_GROUP (the last group the
    remainder), position by position within a group."""
    heads, n_blocks = rows.shape[:2]
    whole = heads - heads % _HEAD_GROUP
    grouped = rows[:whole].reshape(whole // _HEAD_GROUP, _HEAD_GROUP, *rows.shape[1:]).transpose(2, 0, 3, 1, 4)
    rest = rows[whole:].transpose(1, 2, 0, 3)
    return np.concatenate([grouped.reshape(n_blocks, -1), rest.reshape(n_blocks, -1)], axis=1)


def _visit_order(shape, seq_axis, block):
    """The C-order numbers of the vector rows of an array of `shape` (sequence
    axis seq_axis), in the order the rotate kernel visits them with blocks of
    `block` positions; None where that is C order itself (block 0, one head,
    or at most one position)."""
    before, n_positions = math.prod(shape[:seq_axis]), shape[seq_axis]
    if not block or before == 1 or n_positions <= 1:
        return None

    def build():
        after = math.prod(shape[seq_axis + 1:-1])
        rows = np.arange(before * n_positions * after, dtype=np.intp).reshape(before, n_positions, after)
        n_full = n_positions - n_positions % block
        parts = []
        if n_full:
            parts.append(_grouped_block_order(rows[:, :n_full].reshape(before, n_full // block, block, after)).ravel())
        if n_full < n_positions:
            parts.append(_grouped_block_order(rows[:, n_full:, None].transpose(0, 2, 1, 3)).ravel())
        return np.concatenate(parts)

    return _cached(_frontdoor.rotary_order_key(shape[:-1], seq_axis, block), build)


def _in_visit_order(kind, a, seq_axis, block, rows_in_c_order):
    """rows_in_c_order() (one value per vector row of a, C order) in the rotate
    kernel's visit order, kept in the cache under (kind, a's shape, strides,
    seq_axis, block)."""
    order = _visit_order(a.shape, seq_axis, block)
    key = _frontdoor.rotary_rows_key(kind, a.shape[:-1], a.strides[:-1], seq_axis, None if order is None else block)
    return _cached(key, lambda: rows_in_c_order() if order is None else rows_in_c_order()[order])


def _row_offsets(a, seq_axis, block):
    """Byte offsets of the vector rows of a, in the rotate kernel's visit order."""
    return _in_visit_order("offsets", a, seq_axis, block, lambda: _kernels.row_offsets(a, a.ndim - 1))


def _position_rows(a, seq_axis, block):
    """The sequence index of each vector row of a, in the rotate kernel's visit order."""
    return _in_visit_order("sequence-index", a, seq_axis, block, lambda: _kernels.sequence_index(a.shape, seq_axis))


# One array gives that array back (or out[0]), several give a tuple.
@overload
def apply_rotary(array: ArrayT, /, *, offset: npt.ArrayLike = ..., positions: OptArrayLike = ...,
                 base: OptReal = ..., layout: RotaryLayout = ..., rotary_dim: OptInt = ...,
                 inv_freq: OptArrayLike = ..., scaling: Scaling = ..., seq_axis: Int = ...,
                 out: Optional[Sequence[ArrayT]] = ..., num_threads: OptInt = ...) -> ArrayT: ...
@overload
def apply_rotary(first: ArrayT, second: ArrayT, /, *arrays: ArrayT, offset: npt.ArrayLike = ...,
                 positions: OptArrayLike = ..., base: OptReal = ..., layout: RotaryLayout = ...,
                 rotary_dim: OptInt = ..., inv_freq: OptArrayLike = ..., scaling: Scaling = ...,
                 seq_axis: Int = ..., out: Optional[Sequence[ArrayT]] = ...,
                 num_threads: OptInt = ...) -> tuple[ArrayT, ...]: ...
def apply_rotary(*arrays: ArrayT, offset: npt.ArrayLike = 0, positions: OptArrayLike = None,
                 base: OptReal = DEFAULT_BASE, layout: RotaryLayout = "half", rotary_dim: OptInt = None,
                 inv_freq: OptArrayLike = None, scaling: Scaling = None, seq_axis: Int = -2,
                 out: Optional[Sequence[ArrayT]] = None,
                 num_threads: OptInt = None) -> Union[ArrayT, tuple[ArrayT, ...]]:
    """Rotary position embedding (RoPE): rotate each array (e.g. q and k) in place.

    Each channel pair ``(a, b)`` of a token at position ``p`` becomes
    ``(a cos - b sin, b cos + a sin)`` with angles ``p * w_k``,
    ``w_k = base ** (-2k / rotary_dim)``. The distinct positions of the call
    get one float64 cos/sin table, shared by all the arrays; each row is
    rotated in float64 and rounded once.

    Parameters
    ----------
    *arrays : array
        One or more float arrays (or tensors) of one dtype, e.g. ``q`` of
        shape ``(B, H, T, D)`` and ``k`` of shape ``(B, Hk, T, D)``: the head
        counts may differ (grouped-query attention), the sequence length may
        not. Written in place unless `out` is given.
    offset : int, float or array_like, optional
        Position of the first token: one number, or one per sequence (shape
        ``(B,)``, the batch on the first axis).
    positions : array_like, optional
        Explicit positions: ``(T,)``, ``(B, T)`` (HF's ``position_ids``, the
        batch on the first axis for any `seq_axis`), or anything
        broadcastable to the axes up to and including the sequence axis.
        Replaces `offset`.
    base : float, optional
        RoPE theta (default 10000); a ``rope_theta`` key of `scaling` wins.
    layout : {"half", "interleaved"}, optional
        ``"half"`` (default) pairs channel ``i`` with ``i + rotary_dim / 2``
        (GPT-NeoX, HF Llama's ``rotate_half``); ``"interleaved"`` pairs
        ``2i`` with ``2i + 1`` (GPT-J, Meta's complex form).
    rotary_dim : int, optional
        Rotate only the first `rotary_dim` channels (even; default the whole
        width); the frequencies then use `rotary_dim` as denominator.
    inv_freq : array_like, optional
        The ``rotary_dim // 2`` frequencies themselves.
    scaling : dict or config, optional
        A Hugging Face model's config as it is (anything with
        ``rope_parameters``, or a transformers 4.x config with
        ``rope_scaling`` and ``rope_theta`` attributes; transformers is not
        needed), or its ``rope_parameters`` (or legacy ``rope_scaling``)
        dict: ``linear``,
        ``dynamic``, ``yarn``, ``longrope``, ``llama3``, ``proportional``
        (see `rope_inv_freq`). A config also gives what HF reads from it
        besides the dict: ``max_position_embeddings`` (``dynamic``,
        ``longrope``), ``original_max_position_embeddings`` (Phi-3 keeps it
        there) and the head width (``head_dim``, else
        ``hidden_size // num_attention_heads``). With the dict alone, add
        ``max_position_embeddings`` to it where the type needs it.
        ``partial_rotary_factor`` applies to the head width, as in HF. The
        arrays may hold whole heads, or the rotary channels alone (a model
        that slices them off before rotating, as Phi does; all of them
        rotate). A config tells the two apart by its head width; with a
        dict whose factor narrows the arrays' width, pass `rotary_dim`:
        ``int(width * factor)`` for whole heads, the arrays' width for the
        rotary channels alone (without it the call is refused). A
        ``rope_parameters`` with one dict per layer type (Gemma 3) is
        refused: pass one layer type's dict.
    seq_axis : int, optional
        The sequence axis (default -2); ``-3`` for ``(B, T, H, D)`` arrays
        (flash-attn, ggml). It must lie before the channel axis.
    out : sequence of array, optional
        One array per input, each of its input's shape and dtype.
    num_threads : int, optional
        OpenMP threads for this call; None uses OpenMP's default.

    Returns
    -------
    rotated : array or tuple of array
        The array (or ``out[0]``) for one input; a tuple for several. The
        caller's own objects.

    Raises
    ------
    TypeError
        No arrays, arrays of several dtypes, non-float dtypes, a non-integer
        `rotary_dim` or `seq_axis`.
    ValueError
        Arrays with fewer than 2 dimensions or different sequence lengths, an
        odd or too large `rotary_dim`, `offset` combined with `positions`,
        `inv_freq` combined with `scaling`, a bad `scaling` key, arguments
        that do not broadcast, read-only memory.

    See Also
    --------
    rotary_cos_sin : the cos and sin tables, HF style.
    rope_inv_freq : the frequencies of a scaling.
    fastpe.reference.apply_rotary : the NumPy definition.

    Notes
    -----
    An odd `rotary_dim` is refused: HF rounds it up, so port such a model with
    an explicit even `rotary_dim` and `inv_freq`. fastpe is stateless:
    ``dynamic`` and ``longrope`` use the call's own length (its largest
    position + 1) where HF keeps the largest it has seen.

    Examples
    --------
    >>> import numpy as np
    >>> import fastpe
    >>> rng = np.random.default_rng(0)
    >>> q = rng.standard_normal((1, 4, 16, 8)).astype(np.float32)
    >>> k = rng.standard_normal((1, 2, 16, 8)).astype(np.float32)   # fewer key heads
    >>> q0, k0 = q.copy(), k.copy()
    >>> q2, k2 = fastpe.apply_rotary(q, k, offset=5)
    >>> q2 is q and k2 is k
    True

    Rotation keeps each pair's length, and the rotated dot product depends
    only on the distance between the positions:

    >>> bool(np.allclose(np.linalg.norm(q, axis=-1), np.linalg.norm(q0, axis=-1)))
    True
    >>> def rotated(position):
    ...     return fastpe.apply_rotary(np.ones((1, 8)), offset=position)
    >>> near = (rotated(3) * rotated(10)).sum()
    >>> far = (rotated(100) * rotated(107)).sum()
    >>> bool(np.isclose(near, far))
    True

    With a Hugging Face scaling, passed as the model's config has it
    (``linear`` divides the positions by its factor):

    >>> scaling = {"rope_type": "linear", "factor": 4.0}
    >>> x = np.ones((1, 8, 8))
    >>> y = fastpe.apply_rotary(x.copy(), positions=4 * np.arange(8), scaling=scaling)
    >>> bool(np.allclose(y, fastpe.apply_rotary(x.copy(), positions=np.arange(8))))
    True

    Hugging Face configs as they are (built here with SimpleNamespace, so
    the examples need no download; the tests compare them with
    transformers' own classes):

    >>> from types import SimpleNamespace as Config

    Phi (``PhiConfig(hidden_size=256, num_attention_heads=4, partial_rotary_factor=0.5)``):
    the first 32 of each head's 64 channels rotate.

    >>> phi = Config(hidden_size=256, num_attention_heads=4, max_position_embeddings=2048,
    ...              rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5})
    >>> q = rng.standard_normal((1, 4, 8, 64)).astype(np.float32)
    >>> k = q.copy()
    >>> q_rot, k_rot = fastpe.apply_rotary(q.copy(), k, scaling=phi)
    >>> bool(np.array_equal(q_rot[..., 32:], q[..., 32:]))
    True
    >>> same = fastpe.apply_rotary(q.copy(), scaling=phi.rope_parameters, rotary_dim=32)   # the dict
    >>> bool(np.array_equal(same, q_rot))
    True

    Phi's attention slices the 32 rotary channels off and rotates them
    alone; all of them rotate. The config says so by its head width, the
    dict by ``rotary_dim`` (the dict alone could mean either, and is refused):

    >>> alone = fastpe.apply_rotary(q[..., :32].copy(), scaling=phi)
    >>> bool(np.array_equal(alone, q_rot[..., :32]))
    True
    >>> alone = fastpe.apply_rotary(q[..., :32].copy(), scaling=phi.rope_parameters, rotary_dim=32)
    >>> bool(np.array_equal(alone, q_rot[..., :32]))
    True

    Llama 3.1 (``rope_type="llama3"``), positions far into a long context:

    >>> llama3 = Config(hidden_size=4096, num_attention_heads=32, head_dim=128, max_position_embeddings=131072,
    ...                 rope_parameters={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
    ...                                  "high_freq_factor": 4.0, "original_max_position_embeddings": 8192,
    ...                                  "rope_theta": 500000.0})
    >>> q = rng.standard_normal((2, 32, 16, 128)).astype(np.float32)
    >>> position_ids = np.stack([np.arange(16) + 9000, np.arange(16)])
    >>> rotated = fastpe.apply_rotary(q.copy(), positions=position_ids, scaling=llama3)
    >>> bool(np.allclose(np.linalg.norm(rotated, axis=-1), np.linalg.norm(q, axis=-1), rtol=1e-5))
    True

    Qwen2 with YaRN (``rope_scaling={"type": "yarn", "factor": 4.0,
    "original_max_position_embeddings": 32768}``): cos and sin carry the
    attention factor ``0.1 ln(4) + 1``.

    >>> qwen2 = Config(hidden_size=3584, num_attention_heads=28, max_position_embeddings=131072,
    ...                rope_parameters={"type": "yarn", "rope_type": "yarn", "factor": 4.0,
    ...                                 "original_max_position_embeddings": 32768, "rope_theta": 1000000.0})
    >>> q = rng.standard_normal((1, 28, 4, 128)).astype(np.float32)
    >>> rotated = fastpe.apply_rotary(q.copy(), offset=40000, scaling=qwen2)
    >>> ratio = np.linalg.norm(rotated, axis=-1) / np.linalg.norm(q, axis=-1)
    >>> bool(np.allclose(ratio, 0.1 * np.log(4.0) + 1, rtol=1e-5))
    True

    Phi-3 with LongRoPE: the long factors apply once a position passes
    ``original_max_position_embeddings`` (an attribute of Phi-3's config).

    >>> phi3 = Config(hidden_size=3072, num_attention_heads=32, max_position_embeddings=131072,
    ...               original_max_position_embeddings=4096,
    ...               rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0,
    ...                                "long_factor": [1.0 + 0.5 * i for i in range(48)],
    ...                                "short_factor": [1.0] * 48})
    >>> q = rng.standard_normal((1, 32, 4, 96)).astype(np.float32)
    >>> short = fastpe.apply_rotary(q.copy(), offset=100, scaling=phi3)
    >>> long = fastpe.apply_rotary(q.copy(), offset=5000, scaling=phi3)
    >>> inv_freq, attention_factor = fastpe.rope_inv_freq(None, scaling=phi3, seq_len=5004)
    >>> round(attention_factor, 6)          # sqrt(1 + ln(131072 / 4096) / ln(4096))
    1.190238
    >>> params = {**phi3.rope_parameters, "max_position_embeddings": 131072,
    ...           "original_max_position_embeddings": 4096}
    >>> bool(np.array_equal(fastpe.apply_rotary(q.copy(), offset=5000, scaling=params), long))
    True
    """
    done = _frontdoor.apply_rotary(arrays, offset, positions, base, layout, rotary_dim, inv_freq, scaling, seq_axis,
                                   out, num_threads)
    if done is not None:
        return done
    views = written_views(arrays) if out is None else None  # tensors: their views may take the front door
    if views is not None and _frontdoor.apply_rotary(views, offset, positions, base, layout, rotary_dim, inv_freq,
                                                     scaling, seq_axis, None, num_threads) is not None:
        return caller_results(arrays, None)
    return _rotate(arrays, offset, positions, base, layout, rotary_dim, inv_freq, scaling, seq_axis, out,
                   num_threads, inverse=False)


def apply_rotary_transpose(*arrays, offset=0, positions=None, base=DEFAULT_BASE, layout="half", rotary_dim=None,
                           inv_freq=None, scaling=None, seq_axis=-2, out=None, num_threads=None):
    """The transpose of apply_rotary's linear map, with the same arguments:
    each pair rotated by minus the same float64 angle, times the same
    attention factor (the inverse rotation when that factor is 1).
    fastpe.torch's backward."""
    return _rotate(arrays, offset, positions, base, layout, rotary_dim, inv_freq, scaling, seq_axis, out,
                   num_threads, inverse=True)


def rotation_request(arrays, offset, positions, base, layout, rotary_dim, inv_freq, scaling, seq_axis, out,
                     num_threads):
    """apply_rotary's checked arguments (fastpe._validation.rotary) with the
    call's frequencies, which come through the cache (the scaling read once)."""
    req = rotary_request(arrays, offset, positions, base, layout, rotary_dim, seq_axis, out, num_threads)
    freq = _frontdoor.rotary_frequencies(req.width, req.rotary_dim, req.base, scaling, inv_freq, last_position(req))
    return complete_rotary_request(req, freq, out)


def _rotate(arrays, offset, positions, base, layout, rotary_dim, inv_freq, scaling, seq_axis, out, num_threads,
            inverse):
    """apply_rotary's general path; inverse negates the sines (apply_rotary_transpose)."""
    req = rotation_request(arrays, offset, positions, base, layout, rotary_dim, inv_freq, scaling, seq_axis, out,
                           num_threads)
    results = req.outs if req.outs is not None else req.arrays
    if all(a.size == 0 for a in req.arrays):
        return caller_results(arrays, out)
    scalar_offset = req.positions is None and req.offset.ndim == 0
    if scalar_offset:
        # Positions offset + t: the table rows are t itself, no search needed.
        distinct = float(req.offset) + np.arange(req.T, dtype=np.float64)
    else:
        positions_by_array = [prefix_positions(req, i) for i in range(len(req.arrays))]
        distinct = np.unique(np.concatenate([p.ravel() for p in positions_by_array]))
    cos_t, sin_t = cos_sin_rows(distinct, _frontdoor.exact_plan(req.freq, req.freq_lo), req.attention_factor,
                                req.num_threads)
    if inverse:
        np.negative(sin_t, out=sin_t)  # a new table (the kernel wants cos and sin with one row stride)
    rotation = (cos_t, sin_t, req.layout, req.rotary_dim // 2)
    n_threads = _runtime.resolve_threads(req.num_threads, sum(a.size for a in req.arrays))
    sources = _rotation_sources(req)
    block = _position_block(req.rotary_dim // 2)
    for i, src in enumerate(sources):
        if src is None:
            continue
        a, dst, seq_axis = req.arrays[i], results[i], req.seq_axes[i]
        if same_view(src, dst):
            src = None  # rotated in place
        elif req.rotary_dim < a.shape[-1]:
            np.copyto(dst[..., req.rotary_dim:], src[..., req.rotary_dim:])  # untouched channels
        # The table row of each position (None: row t for positions offset + t).
        table_rows = None if scalar_offset else np.searchsorted(distinct, positions_by_array[i]).astype(np.intp)
        # Chunks of a misaligned target span whole sequences (axes before seq_axis).
        _runtime.through_aligned(
            dst, src, lambda d, s, rows: _rotate_rows(d, s, rows, seq_axis, block, rotation, n_threads), (table_rows,),
            seq_axis)
    return caller_results(arrays, out)


def _rotate_rows(dst, src, table_rows, seq_axis, block, rotation, n_threads):
    """Rotate dst's vector rows (read from src; in place when src is None) by
    the rotate kernel. table_rows: the cos/sin table row of each position over
    dst's axes up to seq_axis (None: row t for the position at index t)."""
    dst_rows = _row_offsets(dst, seq_axis, block)
    src_rows = None if src is None else _row_offsets(src, seq_axis, block)
    if table_rows is None:
        index = _position_rows(dst, seq_axis, block)
    else:
        index = to_rows(table_rows, dst.shape, seq_axis).ravel()
        order = _visit_order(dst.shape, seq_axis, block)
        if order is not None:
            index = index[order]
    _kernels.rotate_vector_rows(dst, dst_rows, index, *rotation, src=src, src_rows=src_rows, n_threads=n_threads)


def _rotation_sources(req):
    """What each rotation reads, taken before anything is written: the array
    itself, or a copy where it overlaps a target other than itself. None for
    a rotation with nothing to do (empty, or repeating an earlier one)."""
    targets = rotation_targets(req)
    written = [t for i, t in enumerate(targets) if t.size and i not in req.repeated]
    sources = []
    for j, a in enumerate(req.arrays):
        if a.size == 0 or j in req.repeated:
            sources.append(None)
        elif req.outs is None:
            sources.append(a)  # in place: the other targets are apart from it (_check_targets)
        else:
            own = targets[j]
            overlaps = any(shares_memory(a, t) for t in written if not (t is own and same_view(a, own)))
            sources.append(a.copy() if overlaps else a)
    return sources


def rotary_cos_sin(n_positions: Int, rotary_dim: Int, *, offset: Real = 0, base: Real = DEFAULT_BASE,
                   scaling: Scaling = None, layout: RotaryLayout = "half",
                   dtype: npt.DTypeLike = np.float32) -> tuple[Table, Table]:
    """The RoPE cos and sin tables, as Hugging Face's rotary embedding returns them.

    Row ``t`` holds ``cos(p * w_k)`` and ``sin(p * w_k)`` for position
    ``p = offset + t``, each frequency repeated for both channels of its
    pair, times the scaling's attention factor.

    Parameters
    ----------
    n_positions : int
        Number of rows.
    rotary_dim : int
        Columns: the rotary width (even, >= 2).
    offset : float, optional
        Position of the first row (default 0).
    base : float, optional
        RoPE theta (default 10000).
    scaling : dict, optional
        A HF ``rope_parameters`` dict, as in `apply_rotary`.
    layout : {"half", "interleaved"}, optional
        ``"half"`` repeats the frequencies in both halves (HF's
        ``cat(freqs, freqs)``), ``"interleaved"`` in adjacent columns.
    dtype : dtype, optional
        Result dtype (default float32).

    Returns
    -------
    cos, sin : ndarray
        Two ``(n_positions, rotary_dim)`` arrays.

    Raises
    ------
    TypeError, ValueError
        Non-integer or negative counts, an odd `rotary_dim`, an unknown
        `layout`, a bad `scaling`.

    See Also
    --------
    apply_rotary : applies the rotation without building these tables.
    fastpe.reference.rotary_cos_sin : the NumPy definition.

    Examples
    --------
    >>> import numpy as np
    >>> import fastpe
    >>> cos, sin = fastpe.rotary_cos_sin(4096, 128)
    >>> cos.shape, sin.shape
    ((4096, 128), (4096, 128))
    >>> cos, sin = fastpe.rotary_cos_sin(3, 4, dtype=np.float64)    # w = [1, 0.01]
    >>> bool(np.allclose(sin[2], np.sin([2, 0.02, 2, 0.02])))
    True

    Applying them as HF's ``apply_rotary_pos_emb`` does gives `apply_rotary`'s result:

    >>> x = np.random.default_rng(0).standard_normal((3, 4))
    >>> rotate_half = np.concatenate([-x[:, 2:], x[:, :2]], axis=1)
    >>> bool(np.allclose(x * cos + rotate_half * sin, fastpe.apply_rotary(x.copy())))
    True
    """
    n_positions, rotary_dim, offset, base, layout, dtype = rotary_table_arguments(
        n_positions, rotary_dim, offset, base, layout, dtype)
    tables = tuple(new_array((n_positions, rotary_dim), dtype, f"the {name} table of rotary_cos_sin")
                   for name in ("cos", "sin"))
    freq = _frontdoor.rotary_frequencies(None, rotary_dim, base, scaling, None, offset + n_positions - 1)
    half = rotary_dim // 2
    positions = offset + np.arange(n_positions, dtype=np.float64)
    for table, values in zip(tables, cos_sin_rows(positions, _frontdoor.exact_plan(freq.freq, freq.freq_lo),
                                                  freq.attention_factor)):
        # "half" repeats the frequencies in both halves, "interleaved" in adjacent columns.
        first, second = (table[:, :half], table[:, half:]) if layout == "half" else (table[:, 0::2], table[:, 1::2])
        first[...] = values
        second[...] = values
    return tables
