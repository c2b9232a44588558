# cython: language_level=3
from cpython.pythread cimport PyThread_type_lock


cdef class BoundedCache:
    cdef PyThread_type_lock _lock
    cdef dict _entries
    cdef Py_ssize_t _nbytes
    cdef Py_ssize_t _limit
    cdef readonly unsigned long long hits
    cdef readonly unsigned long long misses

    cdef void _acquire(self)
    cdef object find(self, object key)
    cdef object keep(self, object key, object entry)
    cdef void _evict(self)
