"""Additive attention biases: ALiBi and T5's bucketed relative bias, fused into scores in place.

Scores have shape (B, H, Tq, Tk) (batch, head, query, key), float32 or
float64, any strides. Every argument is checked (fastpe._bias_reference holds
the checks, shared with the NumPy reference) before anything is written; then
one pass over the scores, threaded over (batch, head, block of query rows)
with the GIL released, adds the bias.

Accumulation: the bias is formed in float64 and added to the score in
float64; the sum is rounded once to the scores' dtype. fastpe adds biases, it
does not mask: combine with your own mask (e.g. -inf above the diagonal).
"""

import numpy as np

from . import _bias_kernels
from ._api import ITEMS_PER_THREAD, _source_and_mode, resolve_threads
from ._bias_reference import (
    DEFAULT_MAX_BIAS,
    alibi_request,
    alibi_slopes,
    bucket_of,
    relative_position_bucket,
    relative_request,
)

__all__ = ["alibi_slopes", "add_alibi", "relative_position_bucket", "add_relative_bias"]

_NONE_F64 = np.zeros(1, dtype=np.float64)
_NONE_IDX = np.zeros(1, dtype=np.intp)


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


def _run(scores, out, num_threads, kind, slopes=_NONE_F64, keys=_NONE_F64, keys_bs=0, qoff=_NONE_F64,
         qstep=0.0, lut=_NONE_F64, lut_start=_NONE_IDX, lut_hs=0):
    dst = scores if out is None else out
    src, mode = _source_and_mode(scores, dst)
    block, n_items, n_threads = _items(dst.shape, resolve_threads(num_threads, dst.size))
    _bias_kernels.add_bias(dst, src, mode, kind, slopes, keys, keys_bs, qoff, qstep, lut, lut_start, lut_hs,
                           block, n_items, n_threads)
    return dst


def add_alibi(scores, *, slopes=None, max_bias=DEFAULT_MAX_BIAS, offset=0, key_positions=None, out=None,
              num_threads=None):
    """Add ALiBi's linear biases to attention scores (B, H, Tq, Tk), in place unless out= is given.

    scores[b, h, i, j] += slopes[h] * (j - (i + offset[b])): query i sits at
    position i + offset (offset: an int, or one int per batch entry, e.g.
    the KV-cache lengths when decoding), key j at position j.

    With key_positions (real array broadcastable to (B, Tk), e.g. BLOOM's
    (cumsum(mask) - 1) * mask), adds BLOOM's key-only form
    slopes[h] * key_positions[b, j] instead (offset must then be 0): it
    differs from the above by -slopes[h] * i per row, which softmax ignores.

    slopes: (H,) reals; default alibi_slopes(H, max_bias) (max_bias cannot be
    combined with explicit slopes). The bias is formed and added in float64
    and the sum rounded once to scores' dtype. Returns the array written."""
    scores, out, slopes, off, kp, num_threads = alibi_request(scores, slopes, max_bias, offset, key_positions,
                                                              out, num_threads)
    dst = scores if out is None else out
    if dst.size == 0:
        return dst
    B, _, _, Tk = scores.shape
    if kp is None:
        return _run(scores, out, num_threads, _bias_kernels.KIND_ALIBI, slopes=slopes,
                    keys=np.arange(Tk, dtype=np.float64), keys_bs=0, qoff=off.astype(np.float64), qstep=1.0)
    keys = np.ascontiguousarray(np.broadcast_to(kp, (kp.shape[0], Tk)), dtype=np.float64)
    keys_bs = Tk if keys.shape[0] > 1 else 0
    return _run(scores, out, num_threads, _bias_kernels.KIND_ALIBI, slopes=slopes, keys=keys, keys_bs=keys_bs,
                qoff=np.zeros(B), qstep=0.0)


def _relative_lookup(table, settings, off, Tq, Tk):
    """Per head, the bias of every relative distance the call needs, and where batch b's rows start.

    Distances j - i - offset[b] span Tq + Tk - 1 values per offset. One span
    covers all offsets when they are close together; otherwise each distinct
    offset gets its own span. Returns (lut (H, width) float64, start (B,) intp)
    with bias(b, h, i, j) = lut[h, start[b] - i + j]: O(H * (Tq + Tk)) work and
    memory, never the (Tq, Tk) bucket matrix."""
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
    buckets = bucket_of(distances, *settings)
    lut = np.ascontiguousarray(table[buckets].T, dtype=np.float64)
    return lut, np.ascontiguousarray(start, dtype=np.intp)


def add_relative_bias(scores, bias_table, *, bidirectional, num_buckets, max_distance, offset=0, out=None,
                      num_threads=None):
    """Add T5's bucketed relative position bias to scores (B, H, Tq, Tk), in place unless out= is given.

    scores[b, h, i, j] += bias_table[bucket(j - (i + offset[b])), h], with
    bucket = relative_position_bucket(..., bidirectional, num_buckets,
    max_distance) (exact; see its docstring for where HF's float32 log
    differs). bias_table: (num_buckets, H) reals, the learned embedding
    (HF's relative_attention_bias.weight). offset: an int, or one per batch
    entry (HF's past_seen_tokens). The bias of each distance is looked up
    once per head (O(H * (Tq + Tk))), added in float64 and the sum rounded
    once to scores' dtype. Returns the array written."""
    scores, out, table, settings, off, num_threads = relative_request(
        scores, bias_table, bidirectional, num_buckets, max_distance, offset, out, num_threads)
    dst = scores if out is None else out
    if dst.size == 0:
        return dst
    _, _, Tq, Tk = scores.shape
    lut, start = _relative_lookup(table, settings, off, Tq, Tk)
    return _run(scores, out, num_threads, _bias_kernels.KIND_LOOKUP, lut=lut, lut_start=start,
                lut_hs=lut.shape[1])
