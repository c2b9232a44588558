"""Lazy add_alibi and add_relative_bias, with scores chunked along any of
(batch, heads, queries, keys).

A block of queries [i0, i1) and keys [j0, j1) holds the relative distances
j - (i + offset) of the whole call with j = j0 + j', i = i0 + i': the eager
call on the block with the offset offset + i0 - j0. Distances are exact
integers and each bias is a function of its distance and head alone, so the
block gets the bits of the whole call.
"""

import dask.array as da
import numpy as np

from .. import _bias, _formulas
from .._validation import DEFAULT_MAX_BIAS, check_bias_table, check_key_positions, check_offset, check_slopes
from ._common import aligned, as_dask, emptied, first, indices, meta, new_like, replaced_offset, stand_in


def _scores_stand_in(scores, with_queries):
    """A zero-size stand-in of scores for the eager checks: no queries. The
    offset checks read the query count only through Tq + Tk (the largest
    distance), so with_queries moves the queries onto the keys axis."""
    if scores.ndim != 4:
        return emptied(scores.shape, scores.dtype, -1)  # refused for its dimensions
    B, H, Tq, Tk = scores.shape
    return np.empty((B, H, 0, Tk + Tq if with_queries else Tk), scores.dtype)


def _block_offset(offset, rows, cols):
    """The offset of a block's own queries against its own keys."""
    return np.asarray(offset).astype(np.int64) + (first(rows) - first(cols))


def _alibi_block(scores, slopes, offset, key_positions, rows, cols, *, num_threads):
    scores, out = new_like(scores)
    if key_positions is None:
        _bias.add_alibi(scores, slopes=slopes, offset=_block_offset(offset, rows, cols), out=out,
                        num_threads=num_threads)
    else:
        _bias.add_alibi(scores, slopes=slopes, key_positions=key_positions, out=out, num_threads=num_threads)
    return out


def _batch_offset(offset, scores):
    """One offset per batch entry, chunked like the batch axis."""
    if not isinstance(offset, da.Array):
        offset = check_offset(offset, scores.shape)
    return aligned(offset, scores.shape[:1], scores.chunks[:1])


def _blockwise(block, scores, args, token, **kwargs):
    ind = (0, 1, 2, 3)
    return da.blockwise(
        block, ind, scores, ind, *args, indices(scores.chunks[2]), (2,), indices(scores.chunks[3]), (3,),
        **kwargs, dtype=scores.dtype, meta=meta(4, scores.dtype), token=token,
    )


def add_alibi(scores, *, slopes=None, max_bias=DEFAULT_MAX_BIAS, offset=0, key_positions=None, num_threads=None):
    """Lazy `fastpe.add_alibi`: scores plus ALiBi's biases, as a new Dask array.

    Parameters
    ----------
    scores : dask.array.Array or array_like
        ``(B, H, Tq, Tk)``; any axis may be chunked.
    slopes : array_like, optional
        ``(H,)`` slopes (NumPy or Dask); default ``alibi_slopes(H, max_bias)``.
    max_bias : float, optional
        As in `fastpe.add_alibi`.
    offset : int or array_like of int, optional
        Position of the first query: one number, or one per batch entry
        (NumPy or Dask).
    key_positions : array_like, optional
        BLOOM's key positions (NumPy or Dask), broadcastable to ``(B, Tk)``.
    num_threads : int, optional
        As in `fastpe.add_alibi`.

    Returns
    -------
    result : dask.array.Array
        Same shape, dtype and chunks as `scores`.

    Raises
    ------
    TypeError, ValueError
        As `fastpe.add_alibi`, when the graph is built.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> import fastpe, fastpe.dask
    >>> scores = da.zeros((2, 8, 256, 256), chunks=(1, 4, 64, 128), dtype=np.float32)
    >>> biased = fastpe.dask.add_alibi(scores, offset=np.array([0, 100]))
    >>> block = biased[1, :, 60:70, 120:140].compute()              # across chunk boundaries
    >>> eager = fastpe.add_alibi(np.zeros((2, 8, 256, 256), np.float32), offset=np.array([0, 100]))
    >>> bool(np.array_equal(block, eager[1, :, 60:70, 120:140]))
    True
    """
    s = as_dask("scores", scores)
    replaced = key_positions is not None
    _bias.add_alibi(_scores_stand_in(s, not replaced), slopes=stand_in("slopes", slopes), max_bias=max_bias,
                    offset=replaced_offset(offset, replaced), key_positions=stand_in("key_positions", key_positions),
                    num_threads=num_threads)
    if s.size == 0:
        return s
    B, H, _, Tk = s.shape
    if not isinstance(slopes, da.Array):
        checked, checked_max_bias = check_slopes(slopes, max_bias, H)
        slopes = _formulas.head_slopes(checked, H, checked_max_bias)
    head_slopes = (aligned(slopes, (H,), s.chunks[1:2]), (1,))
    if key_positions is None:
        args = head_slopes + (_batch_offset(offset, s), (0,), None, None)
    else:
        if not isinstance(key_positions, da.Array):
            key_positions = check_key_positions(key_positions, offset, s.shape)
        args = head_slopes + (None, None, aligned(key_positions, (B, Tk), (s.chunks[0], s.chunks[3])), (0, 3))
    return _blockwise(_alibi_block, s, args, "fastpe-add-alibi", num_threads=num_threads)


def _relative_block(scores, table_rows, offset, rows, cols, *, settings, num_threads):
    scores, out = new_like(scores)
    (table,) = table_rows  # the heads' columns of the table, all its buckets in one chunk
    bidirectional, num_buckets, max_distance = settings
    _bias.add_relative_bias(scores, table, bidirectional=bidirectional, num_buckets=num_buckets,
                            max_distance=max_distance, offset=_block_offset(offset, rows, cols), out=out,
                            num_threads=num_threads)
    return out


def add_relative_bias(scores, bias_table, *, bidirectional, num_buckets, max_distance, offset=0, num_threads=None):
    """Lazy `fastpe.add_relative_bias`: scores plus T5's bucketed bias, as a new Dask array.

    Parameters
    ----------
    scores : dask.array.Array or array_like
        ``(B, H, Tq, Tk)``; any axis may be chunked.
    bias_table : dask.array.Array or array_like
        ``(num_buckets, H)`` (NumPy or Dask), cut like the heads of `scores`.
    bidirectional, num_buckets, max_distance, num_threads
        As in `fastpe.add_relative_bias`.
    offset : int or array_like of int, optional
        Position of the first query: one number, or one per batch entry
        (NumPy or Dask).

    Returns
    -------
    result : dask.array.Array
        Same shape, dtype and chunks as `scores`.

    Raises
    ------
    TypeError, ValueError
        As `fastpe.add_relative_bias`, when the graph is built.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> import fastpe, fastpe.dask
    >>> table = np.random.default_rng(0).standard_normal((32, 8))         # (num_buckets, heads)
    >>> scores = da.zeros((1, 8, 256, 256), chunks=(1, 4, 64, 128))
    >>> biased = fastpe.dask.add_relative_bias(scores, table, bidirectional=True, num_buckets=32, max_distance=128)
    >>> eager = fastpe.add_relative_bias(np.zeros((1, 8, 256, 256)), table, bidirectional=True, num_buckets=32,
    ...                                  max_distance=128)
    >>> bool(np.array_equal(biased.compute(), eager))
    True
    """
    s = as_dask("scores", scores)
    _bias.add_relative_bias(_scores_stand_in(s, True), stand_in("bias_table", bias_table),
                            bidirectional=bidirectional, num_buckets=num_buckets, max_distance=max_distance,
                            offset=stand_in("offset", offset), num_threads=num_threads)
    if s.size == 0:
        return s
    if not isinstance(bias_table, da.Array):
        bias_table = check_bias_table(bias_table, num_buckets, s.shape[1])
    table = da.asarray(bias_table).rechunk(((num_buckets,), s.chunks[1]))
    args = (table, (4, 1), _batch_offset(offset, s), (0,))
    return _blockwise(_relative_block, s, args, "fastpe-add-relative-bias",
                      settings=(bidirectional, num_buckets, max_distance), num_threads=num_threads)
