# Part of fastpe/_frontdoor.pyx: the one cache, and every key of it.

from cpython.pythread cimport (NOWAIT_LOCK, PyThread_acquire_lock, PyThread_allocate_lock, PyThread_free_lock,
                               PyThread_release_lock, PyThread_type_lock, WAIT_LOCK)

CacheInfo = collections.namedtuple("CacheInfo", "hits misses entries nbytes limit")


cdef class BoundedCache:
    """An LRU of entries with an ``nbytes`` attribute, at most `limit` bytes in all.

    A dict keeps them in recency order (a hit moves its key to the end;
    eviction takes from the front). A PyThread lock, not the GIL, guards it:
    hashing a key or freeing an entry may run code that lets another thread
    in. Every entry is a pure function of its key, so the cache never changes
    a result."""

    cdef PyThread_type_lock _lock
    cdef dict _entries
    cdef Py_ssize_t _nbytes
    cdef Py_ssize_t _limit
    cdef readonly unsigned long long hits
    cdef readonly unsigned long long misses

    def __cinit__(self, limit):
        self._lock = PyThread_allocate_lock()
        if self._lock == NULL:
            raise MemoryError("cannot allocate the cache's lock")
        self._entries = {}
        self._nbytes = 0
        self._limit = int(limit)
        self.hits = 0
        self.misses = 0

    def __dealloc__(self):
        if self._lock != NULL:
            PyThread_free_lock(self._lock)

    cdef inline void _acquire(self):
        # Uncontended, the lock is taken without giving up the GIL; contended,
        # the GIL goes while waiting (its holder may need the GIL to finish).
        if not PyThread_acquire_lock(self._lock, NOWAIT_LOCK):
            with nogil:
                PyThread_acquire_lock(self._lock, WAIT_LOCK)

    cdef object find(self, object key):
        """The entry of `key` (now the most recent), or None; counts a hit or a miss."""
        cdef object entry
        self._acquire()
        try:
            entry = self._entries.pop(key, None)
            if entry is None:
                self.misses += 1
            else:
                self._entries[key] = entry
                self.hits += 1
        finally:
            PyThread_release_lock(self._lock)
        return entry

    cdef object keep(self, object key, object entry):
        """Store `entry` under `key` unless another thread already did or it
        is larger than the limit; return the entry the cache holds (or `entry`)."""
        cdef Py_ssize_t nbytes = entry.nbytes
        cdef object held
        self._acquire()
        try:
            held = self._entries.get(key)
            if held is not None:
                return held
            if nbytes <= self._limit:
                self._entries[key] = entry
                self._nbytes += nbytes
                self._evict()
        finally:
            PyThread_release_lock(self._lock)
        return entry

    cdef void _evict(self):
        cdef object key
        while self._nbytes > self._limit and self._entries:
            key = next(iter(self._entries))
            self._nbytes -= self._entries.pop(key).nbytes

    def get(self, key, build):
        """The entry of `key`, built by ``build()`` (outside the lock) on a miss."""
        entry = self.find(key)
        if entry is None:
            entry = self.keep(key, build())
        return entry

    def clear(self):
        """Drop every entry and reset the counters."""
        cdef dict old
        self._acquire()
        try:
            old = self._entries
            self._entries = {}
            self._nbytes = 0
            self.hits = 0
            self.misses = 0
        finally:
            PyThread_release_lock(self._lock)
        old.clear()  # entries are freed outside the lock

    def set_limit(self, nbytes):
        """A new limit in bytes; the least recently used entries go to fit."""
        self._acquire()
        try:
            self._limit = int(nbytes)
            self._evict()
        finally:
            PyThread_release_lock(self._lock)

    def keys(self):
        """The keys held, least recently used first (a snapshot)."""
        self._acquire()
        try:
            return list(self._entries)
        finally:
            PyThread_release_lock(self._lock)

    def info(self):
        """CacheInfo(hits, misses, entries, nbytes, limit)."""
        self._acquire()
        try:
            return CacheInfo(self.hits, self.misses, len(self._entries), self._nbytes, self._limit)
        finally:
            PyThread_release_lock(self._lock)


# The cache, bounded by FASTPE_CACHE_BYTES at import (fastpe._runtime).
CACHE = BoundedCache(_runtime.cache_limit_from_environment())
cdef BoundedCache _CACHE = CACHE


def cached(key, build):
    """The entry of `key` (made by one of the key functions below), built by ``build()`` on a miss."""
    return _CACHE.get(key, build)


# ------------------------------------------------------------ keys
# One function per kind of entry, each with its own tag: what an entry
# depends on is written here once, for every module that keeps or looks up
# such an entry.

cdef tuple _layout_plan_key(str layout, object dim, double base):
    return ("plan", "layout", layout, dim, base)


def plan_key(encoding):
    """A sinusoid plan (fastpe._plan.plan_of): everything a checked
    fastpe._validation.Encoding's columns depend on. Equal keys, equal plans."""
    if encoding.preset is not None:
        return ("plan", "preset", encoding.preset, encoding.dim, encoding.base, encoding.min_timescale,
                encoding.max_timescale)
    if encoding.inv_freq is not None:
        return ("plan", "inv_freq", encoding.layout, encoding.dim, encoding.inv_freq.tobytes())
    return _layout_plan_key(encoding.layout, encoding.dim, encoding.base)


def exact_plan_key(freq, freq_lo):
    """The concat plan [sin | cos] of the exact frequencies freq + freq_lo (float64 arrays)."""
    return ("exact-plan", freq.tobytes(), freq_lo.tobytes())


def grid_2d_key(grid_h, grid_w, dim, base, layout, cls_token, dtype):
    """A 2-D sin-cos grid table in `dtype` (fastpe._grids)."""
    return ("grid-2d", grid_h, grid_w, dim, base, layout, cls_token, np.dtype(dtype).str)


def grid_nd_key(shape, dim, min_timescale, max_timescale, dtype):
    """An n-D grid table in `dtype` (fastpe._grids)."""
    return ("grid-nd", shape, dim, min_timescale, max_timescale, np.dtype(dtype).str)


cdef tuple _sinusoid_rows_key(fpe_idx dim, int typenum, fpe_idx block):
    """A block of the default encoding's rows (DEFAULT_LAYOUT, base DEFAULT_BASE:
    the only ones the sinusoid front door keeps), in one dtype."""
    return ("sinusoid-rows", dim, typenum, block)


cdef tuple _rotary_frequencies_key(object width, object rotary_dim, double base, object scaling_key):
    """Scaled rotary frequencies (fastpe._rope.ScaledFrequencies) of a scaling
    key (scaling_key), before what a seq_len adds (rotary_frequencies_at_key)."""
    return ("rotary-frequencies", width, rotary_dim, base, scaling_key)


cdef tuple _rotary_frequencies_at_key(tuple key, object seq_len_key):
    """The same frequencies at one seq_len key (ScaledFrequencies.seq_len_key)."""
    return key + (seq_len_key,)


cdef tuple _cos_sin_block_key(object freq, double block):
    """The float64 cos/sin rows of a block of positions of scaled frequencies."""
    return ("rotary-cos-sin", freq.freq_bytes, freq.attention_factor, block)


def rotary_order_key(lead_shape, seq_axis, block):
    """The rotate kernel's visit order of the rows of an array (fastpe._rotary)."""
    return ("rotary-visit-order", lead_shape, seq_axis, block)


def rotary_rows_key(kind, lead_shape, lead_strides, seq_axis, block):
    """Per-row values of an array in the rotate kernel's visit order (fastpe._rotary): `kind` says which."""
    return ("rotary-rows", kind, lead_shape, lead_strides, seq_axis, block)


def cos_sin_given_rows_key(lead_shape, table_lead_shape):
    """The table row of each vector row in a rotation by given cos/sin tables (fastpe._rotary_given)."""
    return ("cos-sin-given-rows", lead_shape, table_lead_shape)


def device_table_key(device, dtype, what):
    """A table of fastpe.torch's torch-ops path on a device, as a tensor of a dtype (fastpe.torch._device):
    `what` (a tuple) says which."""
    return ("device-table", str(device), str(dtype)) + what


def digit_rows_key(freq_bytes, n_pairs):
    """The cos/sin rows of the base-256 digits' positions that compiled rotations multiply (fastpe.torch._graph)."""
    return ("torch-digit-rows", freq_bytes, n_pairs)


# ------------------------------------------------------------ entries kept for both paths

def encoding_plan(encoding):
    """The (cached) plan of a checked 1-D encoding (fastpe._validation.Encoding)."""
    return _CACHE.get(plan_key(encoding), lambda: _plan.plan_of(encoding))


def exact_plan(freq, freq_lo):
    """The (cached) concat plan of the exact frequencies freq + freq_lo: the
    rotary cos/sin rows, the grids' axis blocks."""
    return _CACHE.get(exact_plan_key(freq, freq_lo), lambda: _plan.exact_concat_plan(freq, freq_lo))


cdef Plan _default_plan(fpe_idx dim):
    """encoding_plan of the default encoding of width dim (DEFAULT_LAYOUT, base
    DEFAULT_BASE), the same entry, without building the Encoding on a hit."""
    key = _layout_plan_key(_DEFAULT_LAYOUT, dim, _DEFAULT_BASE)
    plan = _CACHE.find(key)
    if plan is None:
        plan = _CACHE.keep(key, _plan.default_plan(dim))
    return <Plan>plan
