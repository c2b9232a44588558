"""Lazy apply_rotary.

Each block is rotated by the eager call at the positions the whole call gives
its tokens (formed as the eager call forms them, then cut like the block), so
its rows are the eager rows. Two things of a call reach beyond a block:

* the `dynamic` and `longrope` scalings take their frequencies from the
  call's largest position; a block of such a call is rotated with one extra
  token at that position (dropped afterwards), so that its call sees it too;
* with arrays of several widths, the frequencies are those of a call without
  one common width; a block is then rotated with an empty array of another
  width beside it.

A pair of channels (i, i + rotary_dim/2 in the "half" layout) lies in one
block only if the channel axis is; a caller's chunks of it are merged for the
rotation and cut again in the result.
"""

import dask.array as da
import numpy as np

from .. import _rotary
from .._formulas import DEFAULT_BASE, offset_positions, rotary_positions_shaped
from .._validation import check_int, real_array
from .._rope import scaled_frequencies
from .._validation.rotary import check_rotary_dim
from ._common import aligned, as_dask, meta, replaced_offset, stand_in


def _check(arrays, offset, positions, seq_axis, kwargs):
    """The eager checks of the whole call, on stand-ins of the true shapes:
    each array as read-only zeros of its shape (no memory), to be written into
    `out=` arrays of no size. apply_rotary checks `out` after every other
    argument, so a call that passes them all is refused for those outs, ours."""
    stand_ins = [np.broadcast_to(np.zeros((), a.dtype), a.shape) for a in arrays]
    try:
        _rotary.apply_rotary(*stand_ins, offset=replaced_offset(offset, positions is not None),
                             positions=stand_in("positions", positions),
                             seq_axis=seq_axis, out=[np.empty(0) for _ in arrays], **kwargs)
    except ValueError as exc:
        if not str(exc).startswith("out[0] must have shape"):
            raise


def _float64(name, value):
    """Positions or offsets as the eager call reads them: float64 (exact for every accepted value)."""
    if isinstance(value, da.Array):
        return value.astype(np.float64)
    return real_array(name, value, position=True)


def _largest_position(offset, positions, T):
    """The call's largest position as apply_rotary forms it for the dynamic and
    longrope scalings (a 0-d Dask array when it depends on Dask values)."""
    if positions is not None:
        return positions.max()
    return (offset.max() + T) - 1


def _rotate_block(a, positions, largest, *, seq_axis, other_width, kwargs):
    a = np.asarray(a)
    if a.size == 0:
        return np.empty(a.shape, a.dtype)
    positions = np.asarray(positions)
    if largest is not None:
        # One more token at the call's largest position, rotated in place in a
        # private copy; the block's rows are the first T.
        T = a.shape[seq_axis]
        at = (slice(None),) * seq_axis
        extended = np.empty(a.shape[:seq_axis] + (T + 1,) + a.shape[seq_axis + 1:], a.dtype)
        extended[at + (slice(0, T),)] = a
        extended[at + (slice(T, T + 1),)] = 0
        prefix = a.shape[:seq_axis + 1]
        positions = np.concatenate([np.broadcast_to(positions, prefix),
                                    np.full(prefix[:-1] + (1,), float(largest))], axis=seq_axis)
        beside = [] if other_width is None else [np.empty(positions.shape + (0, other_width), a.dtype)]
        _rotary.apply_rotary(extended, *beside, positions=positions, seq_axis=seq_axis, **kwargs)
        return extended[at + (slice(0, T),)]
    out = np.empty(a.shape, a.dtype)
    beside = [] if other_width is None else [np.empty(positions.shape + (0, other_width), a.dtype)]
    outs = [out] + [np.empty_like(b) for b in beside]
    _rotary.apply_rotary(a, *beside, positions=positions, seq_axis=seq_axis, out=outs, **kwargs)
    return out


def apply_rotary(*arrays, offset=0, positions=None, base=DEFAULT_BASE, layout="half", rotary_dim=None, inv_freq=None,
                 scaling=None, seq_axis=-2, num_threads=None):
    """Lazy `fastpe.apply_rotary`: the rotated arrays as new Dask arrays.

    Parameters
    ----------
    *arrays : dask.array.Array or array_like
        One or more arrays of one dtype, e.g. ``q`` ``(B, H, T, D)`` and
        ``k`` ``(B, Hk, T, D)``. Any axis may be chunked: the batch, the
        heads and the sequence freely; chunks of the channel axis are merged
        for the rotation (a channel pair must be in one block) and the result
        is cut into them again.
    offset : int, float or array_like, optional
        One number, or one per sequence (NumPy or Dask, shape ``(B,)``).
    positions : array_like, optional
        Explicit positions (NumPy or Dask), as in `fastpe.apply_rotary`;
        replaces `offset`.
    base, layout, rotary_dim, inv_freq, scaling, seq_axis, num_threads
        As in `fastpe.apply_rotary`.

    Returns
    -------
    rotated : dask.array.Array or tuple of dask.array.Array
        One per input, each with its input's shape, dtype and chunks.

    Raises
    ------
    TypeError, ValueError
        As `fastpe.apply_rotary`, when the graph is built.

    Notes
    -----
    Every block is the eager call's on the whole arrays, bit for bit, with
    every scaling: ``dynamic`` and ``longrope`` use the call's largest
    position + 1 as the eager call does (with Dask offsets or positions that
    maximum is one more reduction in the graph).

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> import fastpe, fastpe.dask
    >>> rng = np.random.default_rng(0)
    >>> q = rng.standard_normal((2, 8, 256, 64)).astype(np.float32)
    >>> k = rng.standard_normal((2, 2, 256, 64)).astype(np.float32)          # grouped-query keys
    >>> scaling = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64}
    >>> lazy_q, lazy_k = fastpe.dask.apply_rotary(da.from_array(q, chunks=(1, 4, 64, 64)),
    ...                                           da.from_array(k, chunks=(1, 2, 100, 64)),
    ...                                           offset=np.array([0, 17]), scaling=scaling)
    >>> eager_q, eager_k = fastpe.apply_rotary(q.copy(), k.copy(), offset=np.array([0, 17]), scaling=scaling)
    >>> bool(np.array_equal(lazy_q.compute(), eager_q) and np.array_equal(lazy_k.compute(), eager_k))
    True
    """
    darrs = [as_dask(f"arrays[{i}]", a) for i, a in enumerate(arrays)]
    kwargs = {"base": base, "layout": layout, "rotary_dim": rotary_dim, "inv_freq": inv_freq, "scaling": scaling,
              "num_threads": num_threads}
    _check(darrs, offset, positions, seq_axis, kwargs)
    if all(a.size == 0 for a in darrs):
        return darrs[0] if len(darrs) == 1 else tuple(darrs)  # nothing to rotate, as in the eager call
    seq_axis = check_int("seq_axis", seq_axis)  # checked: a plain int from here on
    T = darrs[0].shape[seq_axis]
    widths = sorted({a.shape[-1] for a in darrs})
    positions64 = None if positions is None else _float64("positions", positions)
    offset64 = _float64("offset", offset) if positions is None else None
    largest = None
    if scaling is not None and inv_freq is None:
        freq = scaled_frequencies(widths[0] if len(widths) == 1 else None,
                                  None if rotary_dim is None else check_rotary_dim(rotary_dim),
                                  DEFAULT_BASE if base is None else base, scaling, None, None)
        if freq.seq_dependence is not None:
            largest = _largest_position(offset64, positions64, T)
    rotated = []
    for a in darrs:
        ax = seq_axis % a.ndim
        if positions is not None:
            prefix_positions = rotary_positions_shaped(positions64, ax + 1)
        else:
            prefix_positions = offset_positions(offset64, T, ax)
        other = [w for w in widths if w != a.shape[-1]]
        rotated.append(a if a.size == 0 else _rotated(a, ax, prefix_positions, largest, other[0] if other else None,
                                                        kwargs))
    return rotated[0] if len(rotated) == 1 else tuple(rotated)


def _rotated(a, ax, prefix_positions, largest, other_width, kwargs):
    """a rotated block by block: positions over its axes up to the sequence
    axis (ax) cut like it, the channel axis in one chunk for the rotation."""
    whole = a.rechunk({a.ndim - 1: -1})  # a channel pair must lie in one block
    positions = aligned(prefix_positions, whole.shape[:ax + 1], whole.chunks[:ax + 1])
    ind = tuple(range(a.ndim))
    largest_args = (largest, ()) if isinstance(largest, da.Array) else (largest, None)
    result = da.blockwise(
        _rotate_block, ind, whole, ind, positions, ind[:ax + 1], *largest_args,
        seq_axis=ax, other_width=other_width, kwargs=kwargs,
        dtype=a.dtype, meta=meta(a.ndim, a.dtype), token="fastpe-apply-rotary",
    )
    return result.rechunk(a.chunks)
