"""Additive attention biases in plain NumPy: ALiBi and T5's bucketed relative bias.

The bias part of fastpe.reference: it defines what fastpe._bias computes.
Like the rest of the reference it shares with the implementation only the
argument checks (fastpe._validation) and the formulas (fastpe._formulas: the
ALiBi slopes and the exact T5 bucket function, each checked against its
paper's code by the tests); every bias is built here, in full, in float64.

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

from typing import Optional

import numpy as np
import numpy.typing as npt

from . import _formulas
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


def alibi_slopes(n_heads: Int, max_bias: Real = DEFAULT_MAX_BIAS) -> npt.NDArray[np.float64]:
    """Reference of `fastpe.alibi_slopes`: the same checks and the shared formula
    (fastpe._formulas.alibi_slopes, checked against the paper's code by the tests).

    Examples
    --------
    >>> import numpy as np
    >>> import fastpe
    >>> bool(np.array_equal(fastpe.reference.alibi_slopes(12), fastpe.alibi_slopes(12)))
    True
    """
    return _formulas.alibi_slopes(check_heads(n_heads), check_max_bias(max_bias))


def relative_position_bucket(relative_position: npt.ArrayLike, *, bidirectional: Bool = True, num_buckets: Int = 32,
                             max_distance: Int = 128) -> npt.NDArray[np.int64]:
    """Reference of `fastpe.relative_position_bucket`: the same checks and the shared
    formula (fastpe._formulas.bucket_of, checked against T5's integer definition and HF).

    Examples
    --------
    >>> import fastpe
    >>> fastpe.reference.relative_position_bucket([-200, -3, 0, 3, 200]).tolist()
    [15, 3, 0, 19, 31]
    """
    settings = check_bucket_settings(bidirectional, num_buckets, max_distance)
    return _formulas.bucket_of(check_relative_positions(relative_position), *settings)


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
    sc, out_view, slopes, max_bias, off, kp, _ = alibi_request(scores, slopes, max_bias, offset, key_positions, out,
                                                               num_threads)
    slopes = _formulas.head_slopes(slopes, sc.shape[1], max_bias)
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
    buckets = _formulas.bucket_of(rel, *settings)
    bias = np.moveaxis(table[buckets], -1, 1)  # (B, Tq, Tk, H) -> (B, H, Tq, Tk)
    _store(sc, out_view, bias)
    return caller_result(scores, out)
