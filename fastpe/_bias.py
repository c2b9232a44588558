"""Additive attention biases: ALiBi and T5's bucketed relative bias, fused into scores in place.

Scores have shape (B, H, Tq, Tk) (batch, head, query, key), float16,
bfloat16, float32 or float64, any strides. Every argument is checked (fastpe._validation holds
the checks, shared with the NumPy reference) before anything is written; then
one pass over the scores, threaded over (batch, head, block of query rows)
with the GIL released, adds the bias.

Accumulation: the bias is formed in float64, rounded once to the scores'
dtype and added in that dtype. For float64 scores that is the float64 sum;
for float32 scores the result carries two roundings (at most half a float32
ulp of the bias plus half an ulp of the result), exactly what
scores + bias.astype(float32) gives in NumPy. Adding in float64 instead
(convert, add, round) made the float32 kernel ~3x slower than a plain add on
the portable (SSE2) build; the gain, under one float32 ulp, is far below what
attention scores in float32 resolve. 16-bit scores are the exception: their
sum is formed in float64 and rounded once (bias rounded to float16 first would
cost up to an ulp of the bias, which can exceed the result's).

Both biases run through one kernel: per head, the bias of every relative
distance the call needs (ALiBi: slope * d; T5: bias_table[bucket(d)]), or of
every key (BLOOM's key-only form), is tabulated once (O(H * (Tq + Tk))),
and row i of (b, h) adds a shifted window of that lookup. The (Tq, Tk)
bucket or distance matrix is never built.

fastpe adds biases, it does not mask: combine with your own mask (e.g. -inf
above the diagonal).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import numpy.typing as npt

from . import _formulas, _kernels
from ._runtime import ITEMS_PER_THREAD, add_source, resolve_threads, through_aligned
from ._typing import ArrayT, Bool, Int, OptArrayLike, OptInt, Real
from ._validation import (
    DEFAULT_MAX_BIAS,
    alibi_request,
    caller_result,
    check_bucket_settings,
    check_heads,
    check_max_bias,
    check_relative_positions,
    encoding_dtype_for,
    relative_request,
)

__all__ = ["alibi_slopes", "add_alibi", "relative_position_bucket", "add_relative_bias"]



def _items(shape, n_threads):
    """(rows per item, number of items, team size): items are (b, h, block of query rows)."""
    B, H, Tq, _ = shape
    bh = B * H
    n_blocks = 1
    if n_threads > 1 and bh < ITEMS_PER_THREAD * n_threads:
        n_blocks = min(Tq, -(-ITEMS_PER_THREAD * n_threads // bh))
    block = -(-Tq // n_blocks)
    n_items = bh * -(-Tq // block)
    return block, n_items, max(1, min(n_threads, n_items))


def _add(scores, out, bias, lead):
    """Add a bias into scores (or out) by bias(dst, src, *lead), where lead are
    per-batch arguments (aligned to the batch axis, or None); a misaligned
    target is written through aligned scratch chunks of whole batch entries."""
    dst = scores if out is None else out
    through_aligned(dst, add_source(scores, dst), bias, lead, 1)


def _run(dst, src, num_threads, lut, start, istep):
    """dst[b, h, i, j] = src[b, h, i, j] + lut[h, start[b] - i * istep + j], in
    place when src is None (lut in float64: rounded here)."""
    lut = np.ascontiguousarray(lut, dtype=encoding_dtype_for(dst.dtype))
    block, _, n_threads = _items(dst.shape, resolve_threads(num_threads, dst.size))
    window = (lut, np.ascontiguousarray(start, dtype=np.intp), lut.shape[1], istep, block, n_threads)
    _kernels.add_bias(dst, *window, src=src)


def _distances(off, Tq, Tk):
    """Every relative distance j - (i + offset[b]) the call needs, and where batch b's window starts.

    Returns (distances int64 (W,), start intp (B,)) with
    j - (i + offset[b]) == distances[start[b] - i + j]. Distinct offsets close
    together share one span of Tq + Tk - 1 + (max - min offset) distances;
    far apart, each distinct offset gets its own span of Tq + Tk - 1."""
    W = Tq + Tk - 1
    uniq, inverse = np.unique(off, return_inverse=True)
    lo, hi = int(uniq[0]), int(uniq[-1])
    if hi - lo <= (len(uniq) - 1) * W:
        distances = np.arange(W + hi - lo, dtype=np.int64) - (Tq - 1) - hi
        start = (Tq - 1) + hi - off
    else:
        k = np.arange(W, dtype=np.int64)
        distances = (k[None, :] - (Tq - 1) - uniq[:, None]).reshape(-1)
        start = inverse.reshape(-1) * W + (Tq - 1)
    return distances, start


def alibi_slopes(n_heads: Int, max_bias: Real = DEFAULT_MAX_BIAS) -> npt.NDArray[np.float64]:
    """ALiBi's head slopes, as the paper's reference code ``get_slopes``.

    With ``m`` = `n_heads` rounded down to a power of two, head ``h < m``
    gets ``2 ** (-max_bias * (h + 1) / m)``; the remaining heads take every
    other slope of the ``2m``-head set, ``2 ** (-max_bias * (2 (h - m) + 1)
    / (2m))``.

    Parameters
    ----------
    n_heads : int
        Number of attention heads (>= 1); need not be a power of two.
    max_bias : float, optional
        8 (default) is the paper's and BLOOM's; MPT's ``alibi_bias_max``
        generalises it the same way.

    Returns
    -------
    slopes : ndarray of float64
        Shape ``(n_heads,)``.

    Raises
    ------
    TypeError
        A non-integer `n_heads`.
    ValueError
        ``n_heads < 1``, a non-finite or non-positive `max_bias`.

    See Also
    --------
    add_alibi : adds the biases these slopes scale.

    Notes
    -----
    The same function serves as ``fastpe.alibi_slopes`` and
    ``fastpe.reference.alibi_slopes``. Each slope is one float64 power of two
    of a rounded exponent; the paper's ``start * ratio ** i`` and BLOOM's
    float32 powers agree to within their own rounding. The non-power-of-two
    rule is matched against HF BLOOM and MPT.

    Examples
    --------
    >>> import fastpe
    >>> fastpe.alibi_slopes(8).tolist()
    [0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 0.00390625]
    >>> fastpe.alibi_slopes(6).tolist()     # 4 heads' slopes, then every other of 8's
    [0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125]
    """
    return _formulas.alibi_slopes(check_heads(n_heads), check_max_bias(max_bias))


def relative_position_bucket(relative_position: npt.ArrayLike, *, bidirectional: Bool = True, num_buckets: Int = 32,
                             max_distance: Int = 128) -> npt.NDArray[np.int64]:
    """T5's bucket of each relative position ``j - i``.

    Equal to HF ``T5Attention._relative_position_bucket`` (Mesh TensorFlow's
    ``_relative_position_bucket``): `bidirectional` splits the buckets
    between negative and positive distances (positive ones get
    ``num_buckets // 2`` added); otherwise positive distances (future keys)
    share bucket 0. Of each direction's ``n`` buckets, distances below
    ``max_exact = n // 2`` get their own, the rest are binned by
    ``max_exact + floor(log(d / max_exact) / log(max_distance / max_exact)
    * (n - max_exact))``, capped at ``n - 1``.

    Parameters
    ----------
    relative_position : array_like of int
        Key position minus query position, any shape.
    bidirectional : bool, optional
        Split the buckets between both directions (default True).
    num_buckets : int, optional
        Number of buckets (default 32); >= 4 when bidirectional, else >= 2.
    max_distance : int, optional
        Distance from which every bucket is the last (default 128); it must
        lie above the exact buckets.

    Returns
    -------
    buckets : ndarray of int64
        Same shape as `relative_position`.

    Raises
    ------
    TypeError
        Non-integer positions or settings, a non-bool `bidirectional`.
    ValueError
        Settings out of range, positions beyond int64.

    See Also
    --------
    add_relative_bias : adds the learned bias of each bucket.

    Notes
    -----
    The same function serves as ``fastpe.relative_position_bucket`` and
    ``fastpe.reference.relative_position_bucket``.

    fastpe evaluates the floor exactly (float64, and integer arithmetic
    where the value is within rounding of a bin edge). HF evaluates it in
    float32 (relative error ~1e-7), so where the exact value is an integer,
    or within ~1e-6 of one, HF may land in the neighbouring bucket. At T5's
    own settings (32 or 64 buckets, max_distance 128 or 256) the two agree for
    every distance. Examples where they differ:

    * bidirectional=True, num_buckets=34, max_distance=27: n = 17, 8 exact
      buckets, 9 log bins; distance 18 = 8 * (27/8) ** (6/9) sits exactly on
      an edge (the exact floor is 6), float32 gives 5.9999995: HF puts
      relative positions -18 / +18 in buckets 13 / 30, fastpe in 14 / 31.
    * bidirectional=False, num_buckets=46, max_distance=164: for distance 107
      the exact value is 17.99999817 (floor 17, bucket 40); float32 rounds it
      to 18.0 and HF gives bucket 41.

    Examples
    --------
    >>> import numpy as np
    >>> import fastpe
    >>> fastpe.relative_position_bucket(np.array([-3, -1, 0, 1, 3, 200])).tolist()
    [3, 1, 0, 17, 19, 31]
    >>> fastpe.relative_position_bucket(np.array([-3, 0, 3]), bidirectional=False).tolist()
    [3, 0, 0]
    """
    settings = check_bucket_settings(bidirectional, num_buckets, max_distance)
    return _formulas.bucket_of(check_relative_positions(relative_position), *settings)


def add_alibi(scores: ArrayT, *, slopes: OptArrayLike = None, max_bias: Real = DEFAULT_MAX_BIAS,
              offset: npt.ArrayLike = 0, key_positions: OptArrayLike = None, out: Optional[ArrayT] = None,
              num_threads: OptInt = None) -> ArrayT:
    """Add ALiBi's linear biases to attention scores in place.

    ``scores[b, h, i, j] += slopes[h] * (j - (i + offset[b]))``: query ``i``
    sits at position ``i + offset``, key ``j`` at position ``j``. fastpe adds
    biases; it does not mask.

    Parameters
    ----------
    scores : array
        Float array (or tensor) of shape ``(B, H, Tq, Tk)``, any strides;
        written in place unless `out` is given.
    slopes : array_like, optional
        ``(H,)`` real slopes; default ``alibi_slopes(H, max_bias)``.
    max_bias : float, optional
        The ALiBi paper's 8 (default); cannot be combined with `slopes`.
    offset : int or array_like of int, optional
        Position of the first query: one number, or one per batch entry
        (e.g. the KV-cache lengths when decoding).
    key_positions : array_like, optional
        Real positions broadcastable to ``(B, Tk)``, e.g. BLOOM's
        ``(cumsum(mask) - 1) * mask``: adds BLOOM's key-only form
        ``slopes[h] * key_positions[b, j]`` instead (then `offset` must be 0).
        It differs from the above by ``-slopes[h] * i`` per row, which
        softmax ignores.
    out : array, optional
        Where to write the result (same shape and dtype as `scores`).
    num_threads : int, optional
        OpenMP threads for this call; None uses OpenMP's default.

    Returns
    -------
    result : array
        `scores` (or `out`): the caller's own object.

    Raises
    ------
    TypeError
        Non-float scores, non-integer `offset`.
    ValueError
        `scores` not 4-D, `slopes` not of length H, `slopes` with a
        non-default `max_bias`, `key_positions` with a non-zero `offset`,
        arguments that do not broadcast, read-only memory.

    See Also
    --------
    alibi_slopes : the default slopes.
    fastpe.reference.add_alibi : the NumPy definition.

    Notes
    -----
    The bias is formed in float64, rounded once to the scores' dtype and
    added in that dtype (16-bit scores: the float64 sum, rounded once).

    Examples
    --------
    >>> import numpy as np
    >>> import fastpe
    >>> scores = np.zeros((1, 2, 3, 3))
    >>> _ = fastpe.add_alibi(scores, slopes=[1.0, 0.5])
    >>> scores[0, 1].tolist()
    [[0.0, 0.5, 1.0], [-0.5, 0.0, 0.5], [-1.0, -0.5, 0.0]]

    Decoding one token after 4 cached ones (query at position 4):

    >>> step = np.zeros((1, 2, 1, 5))
    >>> fastpe.add_alibi(step, slopes=[1.0, 0.5], offset=4)[0, 0, 0].tolist()
    [-4.0, -3.0, -2.0, -1.0, 0.0]
    """
    sc, out_view, slopes, max_bias, off, kp, num_threads = alibi_request(scores, slopes, max_bias, offset,
                                                                         key_positions, out, num_threads)
    slopes = _formulas.head_slopes(slopes, sc.shape[1], max_bias)
    def by_distance(dst, src, off):
        distances, start = _distances(off, *dst.shape[2:])
        _run(dst, src, num_threads, slopes[:, None] * distances.astype(np.float64)[None, :], start, 1)

    def by_key(dst, src, kp):
        B, H, _, Tk = dst.shape
        keys = np.broadcast_to(kp, (kp.shape[0], Tk))
        lut = (slopes[:, None, None] * keys[None, :, :]).reshape(H, -1)
        start = np.arange(B) * Tk if keys.shape[0] > 1 else np.zeros(B, dtype=np.intp)
        _run(dst, src, num_threads, lut, start, 0)

    if sc.size and kp is None:
        _add(sc, out_view, by_distance, (off,))
    elif sc.size:
        _add(sc, out_view, by_key, (kp,))
    return caller_result(scores, out)


def add_relative_bias(scores: ArrayT, bias_table: npt.ArrayLike, *, bidirectional: Bool, num_buckets: Int,
                      max_distance: Int, offset: npt.ArrayLike = 0, out: Optional[ArrayT] = None,
                      num_threads: OptInt = None) -> ArrayT:
    """Add T5's bucketed relative position bias to attention scores in place.

    ``scores[b, h, i, j] += bias_table[bucket(j - (i + offset[b])), h]``,
    with ``bucket`` = `relative_position_bucket` (computed exactly). The
    ``(Tq, Tk)`` bucket matrix is never built: the bias of each relative
    distance is tabulated per head (``O(H (Tq + Tk))``) and shifted slices of
    it are added to each row.

    Parameters
    ----------
    scores : array
        Float array (or tensor) of shape ``(B, H, Tq, Tk)``; written in place
        unless `out` is given.
    bias_table : array_like
        ``(num_buckets, H)`` reals: the learned embedding (HF's
        ``relative_attention_bias.weight``).
    bidirectional : bool
        True for encoders (T5's encoder), False for causal decoders.
    num_buckets : int
        Number of buckets (T5: 32); >= 4 when bidirectional, else >= 2.
    max_distance : int
        Distance from which every bucket is the last (T5: 128); above the
        exact buckets.
    offset : int or array_like of int, optional
        Position of the first query: one number or one per batch entry
        (HF's ``past_seen_tokens``).
    out : array, optional
        Where to write the result (same shape and dtype as `scores`).
    num_threads : int, optional
        OpenMP threads for this call; None uses OpenMP's default.

    Returns
    -------
    result : array
        `scores` (or `out`): the caller's own object.

    Raises
    ------
    TypeError
        Non-float scores, a non-bool `bidirectional`, non-integer settings.
    ValueError
        `scores` not 4-D, a `bias_table` not of shape ``(num_buckets, H)``,
        bucket settings out of range, read-only memory.

    See Also
    --------
    relative_position_bucket : the buckets.
    fastpe.reference.add_relative_bias : the NumPy definition.

    Examples
    --------
    >>> import numpy as np
    >>> import fastpe
    >>> table = np.arange(32.0 * 2).reshape(32, 2)              # (num_buckets, H)
    >>> scores = np.zeros((1, 2, 4, 4))
    >>> _ = fastpe.add_relative_bias(scores, table, bidirectional=True, num_buckets=32, max_distance=128)
    >>> i, j = np.meshgrid(np.arange(4), np.arange(4), indexing="ij")
    >>> buckets = fastpe.relative_position_bucket(j - i, bidirectional=True)
    >>> bool(np.array_equal(scores[0, 1], table[buckets, 1]))
    True
    """
    sc, out_view, table, settings, off, num_threads = relative_request(
        scores, bias_table, bidirectional, num_buckets, max_distance, offset, out, num_threads)
    def by_distance(dst, src, off):
        distances, start = _distances(off, *dst.shape[2:])
        _run(dst, src, num_threads, table[_formulas.bucket_of(distances, *settings)].T, start, 1)

    if sc.size:
        _add(sc, out_view, by_distance, (off,))
    return caller_result(scores, out)
