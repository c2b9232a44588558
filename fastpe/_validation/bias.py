"""The checked arguments of the attention biases (ALiBi, T5's relative buckets)."""

import numbers
import operator

import numpy as np

from . import params
from .aliasing import read_apart
from .arrays import array_of_kind, as_float_array, broadcastable_to, check_out, real_array, writable_array
from .scalars import POSITION_LIMIT, check_bool, check_count, check_int, check_real_scalar, is_integer
from .views import refuse_masked

DEFAULT_MAX_BIAS = 8.0
# Positions, and the relative distances between them, are exact in float64 up to here.
_MAX_POSITION = POSITION_LIMIT // 2


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
    if is_integer(offset):
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
    """(explicit slopes (H,) as float64, or None for ALiBi's default; checked
    max_bias): fastpe._formulas.head_slopes gives the slopes of both."""
    max_bias = check_max_bias(max_bias)
    if slopes is None:
        return None, max_bias
    if max_bias != DEFAULT_MAX_BIAS:
        raise ValueError("max_bias only shapes the default slopes; it cannot be combined with explicit slopes=")
    s = real_array("slopes", slopes)
    if s.shape != (n_heads,):
        raise ValueError(f"slopes must have shape ({n_heads},) (one per head of scores), got {s.shape}")
    return np.ascontiguousarray(s), max_bias


def check_key_positions(key_positions, offset, scores_shape):
    """BLOOM's key positions, broadcast to (B, Tk) float64; offset must then be 0."""
    if isinstance(offset, np.ndarray) or not (isinstance(offset, numbers.Integral) and offset == 0):
        refuse_masked("offset", offset)
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
    num_threads = params.NUM_THREADS.check(num_threads)
    slopes, max_bias = check_slopes(slopes, max_bias, scores.shape[1])
    if key_positions is not None:
        kp = check_key_positions(key_positions, offset, scores.shape)
        off = None
    else:
        kp = None
        off = check_offset(offset, scores.shape)
    written = (scores if out is None else out,)
    slopes, off, kp = (read_apart(a, written) for a in (slopes, off, kp))
    return scores, out, slopes, max_bias, off, kp, num_threads


def relative_request(scores, bias_table, bidirectional, num_buckets, max_distance, offset, out, num_threads):
    scores, out = scores_and_out(scores, out)
    num_threads = params.NUM_THREADS.check(num_threads)
    settings = check_bucket_settings(bidirectional, num_buckets, max_distance)
    table = check_bias_table(bias_table, settings[1], scores.shape[1])
    off = check_offset(offset, scores.shape)
    written = (scores if out is None else out,)
    table, off = read_apart(table, written), read_apart(off, written)
    return scores, out, table, settings, off, num_threads


def check_relative_positions(relative_position):
    """relative_position_bucket's distances, as int64."""
    rp = array_of_kind("relative_position", relative_position, "iu", "integers (key - query positions)")
    # Compared as Python ints: NumPy < 1.25 compares uint64 with int64 in float64 (2**63 - 1 rounds to 2**63).
    if rp.size and ((rp.dtype.kind == "u" and int(rp.max()) > np.iinfo(np.int64).max)
                    or (rp.dtype.kind == "i" and int(rp.min()) < -np.iinfo(np.int64).max)):
        raise ValueError("relative_position must lie within +-(2**63 - 1) (int64 with a negatable minimum)")
    return rp.astype(np.int64, copy=False)
