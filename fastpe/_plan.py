"""Column plans for the sinusoid kernels, and the bounded cache that keeps them.

A plan says, for each output column, which frequency it uses and whether it
holds a sine, a cosine or a constant zero. Every layout (interleaved, concat
and the model presets) is one plan; the kernels only ever see plans.
"""

import os
import threading
from collections import OrderedDict, namedtuple

import numpy as np

LAYOUTS = ("interleaved", "concat")

CacheInfo = namedtuple("CacheInfo", "hits misses entries nbytes limit")

_DEFAULT_CACHE_LIMIT = 64 * 2**20


class Plan:
    """Per-column description of one encoding (read-only arrays)."""

    __slots__ = ("freq", "col_freq", "col_cos", "step_cos", "step_sin", "nbytes")

    def __init__(self, freq, col_freq, col_cos):
        self.freq = np.ascontiguousarray(freq, dtype=np.float64)
        self.col_freq = np.ascontiguousarray(col_freq, dtype=np.int32)
        self.col_cos = np.ascontiguousarray(col_cos, dtype=np.uint8)
        used = self.col_freq >= 0
        w = np.where(used, self.freq[np.where(used, self.col_freq, 0)] if self.freq.size else 0.0, 0.0)
        # A zero column rotates by nothing: its (0, 0) state stays zero.
        self.step_cos = np.where(used, np.cos(w), 1.0)
        self.step_sin = np.where(used, np.sin(w), 0.0)
        arrays = (self.freq, self.col_freq, self.col_cos, self.step_cos, self.step_sin)
        for a in arrays:
            a.flags.writeable = False
        self.nbytes = sum(a.nbytes for a in arrays)


def n_frequencies(dim, layout):
    """How many pair frequencies a layout of width dim uses."""
    return (dim + 1) // 2 if layout == "interleaved" else dim // 2


def base_frequencies(dim, base, layout):
    """w_k = base ** (-2k / dim), the Vaswani frequencies, in float64."""
    k = np.arange(n_frequencies(dim, layout), dtype=np.float64)
    return np.float64(base) ** (-(2.0 * k) / dim)


def layout_columns(dim, layout):
    """(col_freq, col_cos) for a layout: which frequency and phase each column takes."""
    j = np.arange(dim)
    if layout == "interleaved":
        return j // 2, j % 2
    half = dim // 2
    col_freq = np.where(j < 2 * half, j % max(half, 1), -1)
    return col_freq, (j >= half) & (j < 2 * half)


class PlanCache:
    """A thread-safe LRU of plans, bounded in bytes. It never changes results:
    a plan is a pure function of its key."""

    def __init__(self, limit):
        self._lock = threading.Lock()
        self._entries = OrderedDict()
        self._nbytes = 0
        self._limit = int(limit)
        self.hits = 0
        self.misses = 0

    def get(self, key, build):
        with self._lock:
            plan = self._entries.get(key)
            if plan is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return plan
            self.misses += 1
        plan = build()  # outside the lock: building may take a while for wide dims
        with self._lock:
            if key not in self._entries and plan.nbytes <= self._limit:
                self._entries[key] = plan
                self._nbytes += plan.nbytes
                self._evict()
        return plan

    def _evict(self):
        while self._nbytes > self._limit and self._entries:
            _, old = self._entries.popitem(last=False)
            self._nbytes -= old.nbytes

    def clear(self):
        with self._lock:
            self._entries.clear()
            self._nbytes = 0
            self.hits = 0
            self.misses = 0

    def set_limit(self, nbytes):
        with self._lock:
            self._limit = int(nbytes)
            self._evict()

    def info(self):
        with self._lock:
            return CacheInfo(self.hits, self.misses, len(self._entries), self._nbytes, self._limit)


def _limit_from_environment():
    raw = os.environ.get("FASTPE_CACHE_BYTES")
    if raw is None or raw.strip() == "":
        return _DEFAULT_CACHE_LIMIT
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"FASTPE_CACHE_BYTES must be a non-negative integer number of bytes, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"FASTPE_CACHE_BYTES must be a non-negative integer number of bytes, got {raw!r}")
    return value


CACHE = PlanCache(_limit_from_environment())


def sinusoid_plan(dim, layout, base, inv_freq):
    """The plan of a 1-D sinusoidal encoding; inv_freq (validated float64) replaces base."""
    if inv_freq is None:
        key = ("sinusoid", dim, layout, float(base))

        def build():
            return Plan(base_frequencies(dim, base, layout), *layout_columns(dim, layout))
    else:
        key = ("sinusoid-inv", dim, layout, inv_freq.tobytes())

        def build():
            return Plan(inv_freq, *layout_columns(dim, layout))

    return CACHE.get(key, build)
