"""Column plans for the sinusoid kernels, and fastpe's one bounded cache that keeps them.

A plan says, for each output column, which frequency it uses and whether it
holds a sine, a cosine or a constant zero. Every layout (interleaved, concat
and the model presets) is one plan; the kernels only ever see plans.
"""

import os
import warnings

import numpy as np

from ._cache import BoundedCache, CacheInfo
from ._double_double import DoubleDouble
from ._formulas import DEFAULT_BASE, concat_columns
from ._validation import Encoding, check_count

_DEFAULT_CACHE_LIMIT = 64 * 2**20


class Plan:
    """How one encoding's columns are made (read-only).

    Frequency k (w_k = freq[k] + freq_lo[k], exactly: see fastpe._formulas,
    "Exact frequencies") writes its sine to column sin_col + k*col_step when
    k < n_sin and its cosine to cos_col + k*col_step when k < n_cos;
    zero_cols lists the columns no frequency writes (they hold 0)."""

    __slots__ = ("freq", "freq_lo", "step_cos", "step_sin", "n_sin", "n_cos", "sin_col", "cos_col",
                 "col_step", "zero_cols", "n_cols", "nbytes")

    def __init__(self, freq, n_cols, *, sin_col, cos_col, col_step, n_sin, n_cos):
        """freq: a DoubleDouble."""
        # Private copies: the caller's inv_freq stays theirs (and writeable).
        self.freq = np.array(freq.hi, dtype=np.float64, copy=True)
        self.freq_lo = np.array(freq.lo, dtype=np.float64, copy=True)
        # One position's rotation per frequency: cos and sin of w_k = hi + lo,
        # rounded once (to within an ulp or two); with lo = 0, cos(hi) and sin(hi).
        cos_hi, sin_hi, cos_lo, sin_lo = np.cos(self.freq), np.sin(self.freq), np.cos(self.freq_lo), np.sin(self.freq_lo)
        self.step_cos = cos_hi * cos_lo - sin_hi * sin_lo
        self.step_sin = sin_hi * cos_lo + cos_hi * sin_lo
        self.n_cols = int(n_cols)
        self.sin_col, self.cos_col, self.col_step = int(sin_col), int(cos_col), int(col_step)
        self.n_sin, self.n_cos = int(n_sin), int(n_cos)
        written = np.zeros(self.n_cols, dtype=bool)
        written[self.sin_col + np.arange(self.n_sin) * self.col_step] = True
        written[self.cos_col + np.arange(self.n_cos) * self.col_step] = True
        self.zero_cols = np.flatnonzero(~written).astype(np.intp)
        arrays = (self.freq, self.freq_lo, self.step_cos, self.step_sin, self.zero_cols)
        for a in arrays:
            a.flags.writeable = False
        self.nbytes = sum(a.nbytes for a in arrays)


def _limit_from_environment():
    """FASTPE_CACHE_BYTES, or the default. A malformed value warns and falls
    back to the default: a typo in the environment must not break the import."""
    raw = os.environ.get("FASTPE_CACHE_BYTES")
    if raw is None or raw.strip() == "":
        return _DEFAULT_CACHE_LIMIT
    try:
        return check_count("FASTPE_CACHE_BYTES", int(raw))
    except ValueError:
        warnings.warn(f"FASTPE_CACHE_BYTES must be a non-negative integer number of bytes, got {raw!r}; "
                      f"using the default {_DEFAULT_CACHE_LIMIT}", RuntimeWarning, stacklevel=2)
        return _DEFAULT_CACHE_LIMIT


CACHE = BoundedCache(_limit_from_environment())


def _plan_key(encoding):
    """What a sinusoid plan depends on: equal keys, equal plans."""
    if encoding.preset is not None:
        return ("preset", encoding.preset, encoding.dim, encoding.base, encoding.min_timescale,
                encoding.max_timescale)
    if encoding.inv_freq is not None:
        return ("inv_freq", encoding.layout, encoding.dim, encoding.inv_freq.tobytes())
    return ("layout", encoding.layout, encoding.dim, encoding.base)


def _plan_of(freq, dim, columns):
    return Plan(freq, dim, sin_col=columns.sin_col, cos_col=columns.cos_col, col_step=columns.col_step,
                n_sin=columns.n_sin, n_cos=columns.n_cos)


def _build_plan(encoding):
    freq, columns = encoding.frequencies_and_columns()
    return _plan_of(freq, encoding.dim, columns)


def sinusoid_plan(encoding):
    """The (cached) plan of a validated 1-D encoding (fastpe._validation.Encoding)."""
    return CACHE.get(_plan_key(encoding), lambda: _build_plan(encoding))


def concat_plan(freq, freq_lo):
    """The (cached) plan of the concat layout [sin | cos] of the exact
    frequencies freq + freq_lo (float64 arrays): the rotary cos/sin rows."""
    dim = 2 * freq.shape[0]
    return CACHE.get(("concat-exact", freq.tobytes(), freq_lo.tobytes()),
                     lambda: _plan_of(DoubleDouble(freq, freq_lo), dim, concat_columns(dim)))


def default_sinusoid_plan(dim):
    """sinusoid_plan(Encoding(dim, None, None, None)) (interleaved, base 10000),
    the same cache entry, without building the Encoding on a hit: the compiled
    fast path of add_sinusoid asks for it on every call."""
    return CACHE.get(("layout", "interleaved", dim, DEFAULT_BASE),
                     lambda: _build_plan(Encoding(dim, None, None, None)))
