"""Additive attention biases in plain NumPy: ALiBi and T5's bucketed relative bias.

This module defines what fastpe._bias computes. It also holds the argument
checks both share (pure Python, so the reference never needs the compiled
kernels), and the exact T5 bucket function, which NumPy already computes in
one pass over its (small) input.

Conventions (scores of shape (B, H, Tq, Tk): batch, head, query, key):

* ALiBi adds ``slope[h] * (j - (i + offset[b]))`` to ``scores[b, h, i, j]``
  (Press et al. 2022; ``offset`` is the number of tokens already in a KV
  cache). With ``key_positions`` it adds BLOOM's key-only form
  ``slope[h] * key_positions[b, j]`` instead: softmax along j is unchanged by
  a per-row constant, so ``-slope * i`` may be dropped, and BLOOM's positions
  ``(cumsum(mask) - 1) * mask`` skip left padding.
* T5 adds ``bias_table[bucket(j - (i + offset[b])), h]``.

The bias is formed in float64, rounded once to the scores' dtype and added
in that dtype: ``scores + bias.astype(scores.dtype)``.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Optional

import numpy as np
import numpy.typing as npt

from ._interop import caller_result
from ._memory import read_apart
from ._typing import ArrayT, Bool, Int, OptArrayLike, OptInt, Real
from ._validation import (
    array_of_kind,
    as_float_array,
    broadcastable_to,
    check_bool,
    check_count,
    check_int,
    check_num_threads,
    check_out,
    check_real_scalar,
    encoding_dtype_for,
    real_array,
    writable_array,
)

DEFAULT_MAX_BIAS = 8.0
# Positions and relative distances are exact in float64 up to here.
_MAX_POSITION = 2**52


# ------------------------------------------------------------------ checks

def check_heads(n_heads):
    return check_count("n_heads", n_heads, minimum=1)


def check_max_bias(max_bias):
    return check_real_scalar("max_bias", max_bias, positive=True)


def scores_and_out(scores, out):
    """The scores a bias is added to (read), and the array written (out, or scores)."""
    if out is None:
        scores = writable_array("scores", scores, hint="; pass out= to write the result into another array")
    else:
        scores = as_float_array("scores", scores, like=writable_array("out", out).dtype)
    if scores.ndim != 4:
        raise ValueError(f"scores must have 4 dimensions (batch, heads, queries, keys), got shape {scores.shape}")
    if out is not None:
        out = check_out(out, scores.shape, scores.dtype)
    return scores, out


def check_offset(offset, scores_shape):
    """Query offsets: an integer, or one per batch entry; returned as int64 of shape (B,)."""
    if isinstance(offset, numbers.Integral) and not isinstance(offset, (bool, np.bool_)):
        off = np.full((), operator.index(offset), dtype=object)
        if abs(int(off[()])) > _MAX_POSITION:
            raise ValueError(f"offset must lie in [-2**52, 2**52], got {offset}")
        off = off.astype(np.int64)
    else:
        off = array_of_kind("offset", offset, "iu", "integers (a query position offset)")
        if off.dtype.kind == "u" and off.size and off.max() > _MAX_POSITION:
            raise ValueError("offset must lie in [-2**52, 2**52]")
        off = off.astype(np.int64, copy=False)
    B, _, Tq, Tk = scores_shape
    off = broadcastable_to("offset", off, (B,), "the batch axis (one offset per sequence)")
    off = np.broadcast_to(off, (B,))
    if off.size and (np.abs(off).max() > _MAX_POSITION - Tq - Tk):
        raise ValueError(f"offset must lie within +-(2**52 - Tq - Tk) so that positions stay exact, "
                         f"got values from {off.min()} to {off.max()}")
    return np.ascontiguousarray(off, dtype=np.int64)


def check_slopes(slopes, max_bias, n_heads):
    """Explicit slopes (H,), or ALiBi's default for n_heads heads (float64)."""
    max_bias = check_max_bias(max_bias)
    if slopes is None:
        return alibi_slopes(n_heads, max_bias) if n_heads else np.zeros(0)
    if max_bias != DEFAULT_MAX_BIAS:
        raise ValueError("max_bias only shapes the default slopes; it cannot be combined with explicit slopes=")
    s = real_array("slopes", slopes)
    if s.shape != (n_heads,):
        raise ValueError(f"slopes must have shape ({n_heads},) (one per head of scores), got {s.shape}")
    return np.ascontiguousarray(s)


def check_key_positions(key_positions, offset, scores_shape):
    """BLOOM's key positions, broadcast to (B, Tk) float64; offset must then be 0."""
    if isinstance(offset, np.ndarray) or not (isinstance(offset, numbers.Integral) and offset == 0):
        off = np.asarray(offset)
        if off.dtype.kind not in "iuf" or off.size == 0 or (off != 0).any():
            raise ValueError("offset cannot be combined with key_positions: the key-only form has no query position")
    kp = real_array("key_positions", key_positions, position=True)
    B, _, _, Tk = scores_shape
    kp = broadcastable_to("key_positions", kp, (B, Tk), "(batch, keys) =")
    return kp


def check_bucket_settings(bidirectional, num_buckets, max_distance):
    """(bidirectional, num_buckets, max_distance), checked against what T5's bucket arithmetic needs.

    Each direction gets n = num_buckets (// 2 when bidirectional) buckets, the
    first n // 2 exact. With n // 2 == 0 T5's formula divides log(0) by
    log(inf) (NaN buckets), and max_distance must exceed n // 2 or the log
    bins run backwards (max_distance < n // 2 gives negative buckets, == a
    division by zero)."""
    bidirectional = check_bool("bidirectional", bidirectional)
    num_buckets, max_distance = check_int("num_buckets", num_buckets), check_int("max_distance", max_distance)
    if num_buckets < 1:
        raise ValueError(f"num_buckets must be >= 1, got {num_buckets}")
    if max_distance <= 0:
        raise ValueError(f"max_distance must be > 0, got {max_distance}")
    n = num_buckets // 2 if bidirectional else num_buckets
    if n // 2 < 1:
        need = 4 if bidirectional else 2
        raise ValueError(f"num_buckets must be >= {need} when bidirectional={bidirectional} (T5's bucket formula "
                         f"needs at least one exact bucket per direction), got {num_buckets}")
    if max_distance <= n // 2:
        raise ValueError(f"max_distance must be > {n // 2} (the number of exact buckets per direction for "
                         f"num_buckets={num_buckets}, bidirectional={bidirectional}), got {max_distance}")
    return bidirectional, num_buckets, max_distance


def check_bias_table(bias_table, num_buckets, n_heads):
    table = real_array("bias_table", bias_table)
    if table.shape != (num_buckets, n_heads):
        raise ValueError(f"bias_table must have shape (num_buckets, heads) = ({num_buckets}, {n_heads}), "
                         f"got {table.shape}")
    return table


def alibi_request(scores, slopes, max_bias, offset, key_positions, out, num_threads):
    scores, out = scores_and_out(scores, out)
    num_threads = check_num_threads(num_threads)
    slopes = check_slopes(slopes, max_bias, scores.shape[1])
    if key_positions is not None:
        kp = check_key_positions(key_positions, offset, scores.shape)
        off = None
    else:
        kp = None
        off = check_offset(offset, scores.shape)
    written = (scores if out is None else out,)
    slopes, off, kp = (read_apart(a, written) for a in (slopes, off, kp))
    return scores, out, slopes, off, kp, num_threads


def relative_request(scores, bias_table, bidirectional, num_buckets, max_distance, offset, out, num_threads):
    scores, out = scores_and_out(scores, out)
    num_threads = check_num_threads(num_threads)
    settings = check_bucket_settings(bidirectional, num_buckets, max_distance)
    table = check_bias_table(bias_table, settings[1], scores.shape[1])
    off = check_offset(offset, scores.shape)
    written = (scores if out is None else out,)
    table, off = read_apart(table, written), read_apart(off, written)
    return scores, out, table, settings, off, num_threads


# ------------------------------------------------------------------ ALiBi slopes

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
    n_heads = check_heads(n_heads)
    max_bias = check_max_bias(max_bias)
    m = 1 << (n_heads.bit_length() - 1)
    h = np.arange(n_heads, dtype=np.float64)
    first = h < m
    exponent = np.where(first, -max_bias * (h + 1) / m, -max_bias * (2 * (h - m) + 1) / (2 * m))
    return np.exp2(exponent)


# ------------------------------------------------------------------ T5 buckets

def _exact_log_bins(u, max_exact, max_distance, n_log):
    """floor(log(u / max_exact) / log(max_distance / max_exact) * n_log), exactly,
    for integers max_exact <= u < max_distance (int64 array).

    float64 settles every value but those within rounding of an integer; those
    are decided in integers: floor(...) >= k  <=>  u**n >= max_distance**k * max_exact**(n - k)."""
    v = np.log(u / max_exact) / math.log(max_distance / max_exact) * n_log
    k = np.floor(v).astype(np.int64)
    r = np.rint(v)
    near = np.abs(v - r) <= 1e-9 * np.maximum(1.0, np.abs(v))
    for idx in np.flatnonzero(near):
        uu, kk = int(u[idx]), int(r[idx])
        g = math.gcd(kk, n_log) or n_log
        ok = uu ** (n_log // g) >= max_distance ** (kk // g) * max_exact ** ((n_log - kk) // g)
        k[idx] = kk if ok else kk - 1
    return k


def bucket_of(relative_position, bidirectional, num_buckets, max_distance):
    """The bucket of every relative distance in an int64 array (checked settings)."""
    rp = np.asarray(relative_position, dtype=np.int64)
    buckets = np.zeros(rp.shape, dtype=np.int64)
    n = num_buckets
    if bidirectional:
        n //= 2
        buckets += (rp > 0) * n
        dist = np.abs(rp)
    else:
        dist = -np.minimum(rp, 0)
    max_exact = n // 2
    small = dist < max_exact
    far = dist >= max_distance
    mid = ~small & ~far
    buckets += np.where(small, dist, n - 1)
    if mid.any():
        u, inverse = np.unique(dist[mid], return_inverse=True)
        k = _exact_log_bins(u, max_exact, max_distance, n - max_exact)
        buckets[mid] += np.minimum(max_exact + k, n - 1)[inverse] - (n - 1)
    return buckets


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
    bidirectional, num_buckets, max_distance = check_bucket_settings(bidirectional, num_buckets, max_distance)
    rp = array_of_kind("relative_position", relative_position, "iu", "integers (key - query positions)")
    if rp.size and ((rp.dtype.kind == "u" and rp.max() > np.iinfo(np.int64).max)
                    or (rp.dtype.kind == "i" and rp.min() < -np.iinfo(np.int64).max)):
        raise ValueError("relative_position must lie within +-(2**63 - 1) (int64 with a negatable minimum)")
    return bucket_of(rp.astype(np.int64, copy=False), bidirectional, num_buckets, max_distance)


# ------------------------------------------------------------------ reference adds

def _store(scores, out, bias):
    """scores + bias (float64, rounded once to scores' dtype, then added in that
    dtype); 16-bit scores: the float64 sum, rounded once."""
    dst = scores if out is None else out
    dtype = encoding_dtype_for(scores.dtype)
    dst[...] = scores.astype(dtype, copy=False) + bias.astype(dtype, copy=False)


def add_alibi(scores: ArrayT, *, slopes: OptArrayLike = None, max_bias: Real = DEFAULT_MAX_BIAS,
              offset: npt.ArrayLike = 0, key_positions: OptArrayLike = None, out: Optional[ArrayT] = None,
              num_threads: OptInt = None) -> ArrayT:
    """NumPy definition of `fastpe.add_alibi` (same signature and checks).

    Builds the whole ``(B, H, Tq, Tk)`` bias
    ``slope[h] * (j - (i + offset[b]))`` (or ``slope[h] * key_positions[b,
    j]``) in float64, rounds it to the scores' dtype and adds it.

    Examples
    --------
    >>> import numpy as np
    >>> import fastpe
    >>> scores = np.random.default_rng(0).standard_normal((2, 4, 8, 8))
    >>> expected = fastpe.reference.add_alibi(scores.copy(), offset=np.array([0, 3]))
    >>> got = fastpe.add_alibi(scores, offset=np.array([0, 3]))
    >>> bool(np.allclose(got, expected, rtol=0, atol=1e-12))
    True
    """
    sc, out_view, slopes, off, kp, _ = alibi_request(scores, slopes, max_bias, offset, key_positions, out,
                                                     num_threads)
    B, H, Tq, Tk = sc.shape
    s = slopes[None, :, None, None]
    if kp is None:
        q = np.arange(Tq, dtype=np.float64)[None, :] + off[:, None].astype(np.float64)   # (B, Tq)
        rel = np.arange(Tk, dtype=np.float64)[None, None, :] - q[:, :, None]              # (B, Tq, Tk)
        bias = s * rel[:, None, :, :]
    else:
        bias = s * np.broadcast_to(kp, (B, Tk))[:, None, None, :]
    _store(sc, out_view, bias)
    return caller_result(scores, out)


def add_relative_bias(scores: ArrayT, bias_table: npt.ArrayLike, *, bidirectional: Bool, num_buckets: Int,
                      max_distance: Int, offset: npt.ArrayLike = 0, out: Optional[ArrayT] = None,
                      num_threads: OptInt = None) -> ArrayT:
    """NumPy definition of `fastpe.add_relative_bias` (same signature and checks).

    Builds the ``(B, Tq, Tk)`` bucket matrix and gathers
    ``bias_table[bucket(j - (i + offset[b])), h]``, then adds it as
    `fastpe.reference.add_alibi` does.

    Examples
    --------
    >>> import numpy as np
    >>> import fastpe
    >>> rng = np.random.default_rng(0)
    >>> scores, table = rng.standard_normal((1, 4, 8, 8)), rng.standard_normal((32, 4))
    >>> settings = dict(bidirectional=False, num_buckets=32, max_distance=128)
    >>> expected = fastpe.reference.add_relative_bias(scores.copy(), table, **settings)
    >>> got = fastpe.add_relative_bias(scores, table, **settings)
    >>> bool(np.allclose(got, expected, rtol=0, atol=1e-12))
    True
    """
    sc, out_view, table, settings, off, _ = relative_request(scores, bias_table, bidirectional, num_buckets,
                                                             max_distance, offset, out, num_threads)
    B, H, Tq, Tk = sc.shape
    rel = np.arange(Tk)[None, None, :] - (np.arange(Tq)[None, :, None] + off[:, None, None])  # (B, Tq, Tk)
    buckets = bucket_of(rel, *settings)
    bias = np.moveaxis(table[buckets], -1, 1)  # (B, Tq, Tk, H) -> (B, H, Tq, Tk)
    _store(sc, out_view, bias)
    return caller_result(scores, out)
