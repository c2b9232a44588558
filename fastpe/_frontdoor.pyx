# cython: language_level=3
"""fastpe's front doors and its one cache (the second of its two compiled modules).

The front doors. add_sinusoidal and apply_rotary (fastpe._sinusoid,
fastpe._rotary) first offer their arguments, unchanged, to a function here.
It recognises the common call (exact ndarrays of float32 or float64 in the
common layouts, a scalar offset, default options) and serves it: the rows
come from the cache, the work from fastpe._kernels' entry points, the team
size from fastpe._runtime. Any other call gets None back and its public
function hands the same arguments to the general path, which gives it its
usual result, warning or error. A front door checks less, never again: every
bound it reads comes from the declaration of its parameter
(fastpe._validation.params, through _params.pxd), every formula from the
module that defines it. An array reaches a front door as an ArrayDesc
(fastpe/_kernels.pxd): a pointer, an element type, a shape and strides, so a
source other than an ndarray (a tensor's data pointer, shape, strides and
dtype) can be described to the same code.

The cache. Frequency plans, grid tables, rotary frequencies, blocks of
encoding rows and cos/sin rows, and the general path's index arrays all live
in one bounded, thread-safe LRU (BoundedCache), under one limit
(fastpe.set_cache_limit) and one set of counters (fastpe.cache_info). Every
key is built by one function here, one per kind of entry, each with a tag of
its own. It is compiled so that a front door looks an entry up without a
Python call.

Parts: the cache and its keys, the sinusoid front door, the rotary front door, the front door of the
rotation by given cos and sin tables.
"""

cimport numpy as cnp
from cpython.tuple cimport PyTuple_Check, PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.math cimport NAN, fabs, floor, isfinite
from libc.stdint cimport uintptr_t
from libc.stdlib cimport free, malloc

from fastpe._kernels cimport (ArrayDesc, BlockedTable, CosSin, FPE_BFLOAT16, FPE_FLOAT16, FPE_FLOAT32, FPE_FLOAT64,
                              FPE_MAX_DIMS,
                              FPE_PAIRS_HALF, FPE_PAIRS_INTERLEAVED, FPE_SEED_GRID, Plan, Positions,
                              describe_ndarray, fpe_idx, internal_overlap, memory_bounds, rotate_rows,
                              row_offsets_into, sequence_index_into, shared_rows_prepared, sinusoid_grid,
                              table_grid)
from fastpe._params cimport IntRule, accepts_int, int_rule

import collections
import warnings

import numpy as np

from . import _formulas, _plan, _rope, _runtime, _tables
from ._validation import params
from ._validation import views as _views

cnp.import_array()

# What the parts read of the declarations and the formulas, once.
cdef double _LIMIT = params.OFFSET.limit
cdef object _INT_LIMIT = int(params.OFFSET.limit)
cdef double _DEFAULT_BASE = _formulas.DEFAULT_BASE
cdef str _DEFAULT_LAYOUT = _formulas.DEFAULT_LAYOUT
cdef IntRule _NUM_THREADS = int_rule(params.NUM_THREADS)

include "_frontdoor_cache.pxi"
include "_frontdoor_arrays.pxi"
include "_frontdoor_table.pxi"
include "_frontdoor_sinusoid.pxi"
include "_frontdoor_rotary.pxi"
include "_frontdoor_cos_sin.pxi"
