# cython: language_level=3
"""fastpe's one cache: a thread-safe LRU of immutable entries, bounded in bytes.

Frequency plans, grid tables, rotary frequencies and blocks of encoding rows
all live here, under one limit (``fastpe.set_cache_limit``) and one set of
counters (``fastpe.cache_info``). Every entry is a pure function of its key,
so the cache never changes a result. It is compiled so that the compiled
fast paths can look entries up for a fraction of a microsecond; Python code
uses ``get``.

Entries have an ``nbytes`` attribute (plans, NumPy arrays). A dict keeps
them in recency order (a hit moves its key to the end; eviction takes from
the front). A PyThread lock, not the GIL, guards it: hashing a key or freeing
an entry may run code that lets another thread in.
"""

import collections

from cpython.pythread cimport (NOWAIT_LOCK, PyThread_acquire_lock, PyThread_allocate_lock,
                               PyThread_free_lock, PyThread_release_lock, WAIT_LOCK)

CacheInfo = collections.namedtuple("CacheInfo", "hits misses entries nbytes limit")


cdef class BoundedCache:
    """An LRU of entries with an ``nbytes`` attribute, at most `limit` bytes in all."""

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
