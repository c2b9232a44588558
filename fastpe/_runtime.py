"""How a call runs: team size, the fork rule, aligned scratch, row grouping, the cache's limit.

Every family (sinusoid, tables, grids, rotary, biases), the front doors and
the benchmark take their run-time policy from here; none keeps a copy of it.
How a kernel cuts its work into items and tiles is the kernels' own
(fastpe/_kernels_sinusoid.pxi, _work_split and _tile_rows).

Team size: a call runs on one thread below SERIAL_BELOW output elements,
without OpenMP, or in a forked child (the fork rule); otherwise on
num_threads (or OpenMP's default), capped at MAX_TEAM.

The fork rule: GNU libgomp keeps its worker threads in a pool; fork()
copies the pool's bookkeeping but not the threads, so a child whose parent
ran a parallel region waits in its own next one for workers that do not
exist, for ever (PyTorch DataLoader workers and multiprocessing's "fork"
start method make such children). The parent's region may be fastpe's or
any other library's on the same runtime: torch and fastpe share one libgomp
when torch's is loaded first. fastpe cannot see another library's regions,
so every process forked (at any depth) from one that had imported fastpe
runs every kernel serially, on the calling thread, whatever num_threads
asks. The mark is set by a pthread_atfork handler registered when
fastpe._kernels is imported (fastpe/_openmp.h), so forks made in C count
too, and each call reads it with one C call (teams_allowed). Children made
by "spawn" or "forkserver" start a fresh runtime and are not affected. A
fork made before fastpe's import is invisible to it: a child that imports
fastpe first runs teams as any process does (docs/threads.rst).

Misaligned outputs: arrays that arrive by pickle protocol 5 (Dask's process
workers) or np.frombuffer at an odd offset sit at any address (float32 at
address % 4 == 1). The kernels load and store whole elements, so an output
that is not aligned to its dtype is written through an aligned scratch
(through_aligned): a copy of a chunk of it, computed in place by the same
code, copied back, chunk after chunk. Chunks are cut along the leading axes
over which every per-row argument of the call is aligned (SCRATCH_BYTES at
most, or one index of the innermost of those axes), so the bits are those of
an aligned copy and the scratch stays small. An output with no such axis (a
2-D table or sequence, a fused add's single (T, D) sequence) goes through
one scratch of its own size.

Row grouping: the kernels see an array as a base pointer plus a list of row
offsets in bytes, so transposed, sliced and negative-stride views are written
where they are. Rows that share a key (an offset or a position) are grouped,
so the kernel computes each encoding row once and applies it to the whole group.
"""

import itertools
import math
import os
import warnings

import numpy as np

from . import _kernels
from ._validation.aliasing import same_view, shares_memory
from ._validation.scalars import check_count

# Below this many output elements a call runs on one thread: waking a team
# costs more than it saves.
SERIAL_BELOW = 1 << 15
# Positions between libm seeds (the canonical seed points of every row are
# its multiples; see _kernels.pyx); the recurrence's rounding grows ~2e-16 a step.
RESEED_INTERVAL = _kernels.SEED_GRID
# The largest team fastpe starts: more threads than this only oversubscribe
# the cores, and a team of 10**5 makes libgomp kill the process.
MAX_TEAM = max(8, 4 * (os.cpu_count() or 1))
# Work items per thread for kernels whose results do not depend on how the
# work is split (the attention biases): there the team size may set it.
ITEMS_PER_THREAD = 4
# The bytes fastpe's cache may hold when FASTPE_CACHE_BYTES does not say.
DEFAULT_CACHE_LIMIT = 128 * 2**20


def cache_limit_from_environment():
    """FASTPE_CACHE_BYTES, or the default. A malformed value warns and falls
    back to the default: a typo in the environment must not break the import."""
    raw = os.environ.get("FASTPE_CACHE_BYTES")
    if raw is None or raw.strip() == "":
        return DEFAULT_CACHE_LIMIT
    try:
        return check_count("FASTPE_CACHE_BYTES", int(raw))
    except ValueError:
        warnings.warn(f"FASTPE_CACHE_BYTES must be a non-negative integer number of bytes, got {raw!r}; "
                      f"using the default {DEFAULT_CACHE_LIMIT}", RuntimeWarning, stacklevel=2)
        return DEFAULT_CACHE_LIMIT


def serial_only():
    """True in a process forked from one that had imported fastpe (the fork rule)."""
    return _kernels.forked_child()


def default_team():
    """The team a call with num_threads=None may use: OpenMP's default (1 without OpenMP)."""
    return max(1, _kernels.omp_max_threads()) if _kernels.openmp_enabled() else 1


_teams_allowed = _kernels.teams_allowed


def resolve_threads(num_threads, work):
    """The team size for one call: 1 for small work, without OpenMP, or in a
    forked child (the fork rule)."""
    if work < SERIAL_BELOW or not _teams_allowed():
        return 1
    return min(num_threads if num_threads is not None else default_team(), MAX_TEAM)


# Bytes of the aligned scratch a misaligned output is written through, per
# chunk (see the module docstring).
SCRATCH_BYTES = 4 << 20


def through_aligned(dst, src, run, lead, n_lead):
    """run(dst, src, *lead), or, for a misaligned dst, the same run on aligned
    scratch copies of dst's chunks (see the module docstring), each copied
    back into dst.

    src: what the call reads (None: it works in place), indexed like dst.
    lead: arrays (or None) aligned to dst's first n_lead axes (each axis full
    or 1); each chunk gets their slices. run must compute every row of its dst
    from the rows of its arguments alone."""
    if dst.flags.aligned:
        return run(dst, src, *lead)
    for index in _chunks(dst.shape, n_lead, dst.itemsize):
        part = dst[index]
        scratch = np.array(part)  # aligned; a copy, so columns the call leaves alone come back unchanged
        run(scratch, None if src is None else src[index], *(_part(a, index) for a in lead))
        part[...] = scratch


def _part(a, index):
    """The chunk `index` (slices of the leading axes) of an argument aligned to them."""
    if a is None:
        return None
    return a[tuple(axis if size != 1 else slice(None) for axis, size in zip(index, a.shape))]


def _chunks(shape, n_lead, itemsize):
    """Slices over the leading axes of `shape` that cut it into chunks of at
    most SCRATCH_BYTES, or of one index of axis n_lead - 1 (the whole array
    when n_lead is 0)."""
    if n_lead == 0 or math.prod(shape) * itemsize <= SCRATCH_BYTES:
        yield ()
        return
    axis = 0  # the outermost leading axis along which one index fits the bound
    while axis < n_lead - 1 and math.prod(shape[axis + 1:]) * itemsize > SCRATCH_BYTES:
        axis += 1
    step = max(1, SCRATCH_BYTES // max(math.prod(shape[axis + 1:]) * itemsize, 1))
    for outer in itertools.product(*(range(n) for n in shape[:axis])):
        for start in range(0, shape[axis], step):
            yield tuple(slice(i, i + 1) for i in outer) + (slice(start, start + step),)


def group_chunks(group_ptr):
    """Work items of the grouped kernels, from the groups alone (not the team
    size): about as many as the grid kernels cut (the kernels' ITEMS_PER_CALL
    and MIN_BLOCK)."""
    n_groups = group_ptr.shape[0] - 1
    return balanced_chunks(group_ptr, min(_kernels.ITEMS_PER_CALL, -(-n_groups // _kernels.MIN_BLOCK)))


def add_source(x, dst):
    """What a fused add into dst reads: None when it adds in place (dst is
    x), else x, or a private copy of x where dst overlaps it without being it
    (so no element is read after it was overwritten)."""
    if same_view(dst, x):
        return None
    if shares_memory(dst, x):
        return x.copy()
    return x


def axis_offsets(shape, strides, axes):
    """Byte offset of every index over `axes` (other axes fixed at 0), shaped `shape`."""
    off = np.zeros((1,) * len(shape), dtype=np.intp)
    for axis in axes:
        view = [1] * len(shape)
        view[axis] = shape[axis]
        off = off + (np.arange(shape[axis], dtype=np.intp) * strides[axis]).reshape(view)
    return off


class Groups:
    """Distinct keys, sorted, and the rows each one applies to.

    keys: float64[G]; group_ptr: intp[G+1]; rows[i]: intp[N], the byte
    offsets into arrays[i] of the rows of group g at group_ptr[g]:group_ptr[g+1]."""

    __slots__ = ("keys", "group_ptr", "rows")


def lead_row_offsets(arr, lead_shape):
    """Byte offsets of every row over the leading axes `lead_shape` (arr.shape's
    first axes), in C order (flattened): the kernels' row_offsets."""
    return _kernels.row_offsets(arr, len(lead_shape))


def _single_group(key, lead_shape, arrays):
    """One key for every row (a scalar offset): no sorting needed."""
    g = Groups()
    g.keys = np.array([key], dtype=np.float64)
    g.rows = []
    for i, arr in enumerate(arrays):
        if i and arr is arrays[0]:
            g.rows.append(g.rows[0])
        else:
            g.rows.append(lead_row_offsets(arr, lead_shape))
    g.group_ptr = np.array([0, g.rows[0].shape[0]], dtype=np.intp)
    return g


def group_rows(keys, lead_shape, arrays):
    """Group the rows over the leading axes `lead_shape` of each array by key.

    `keys` is aligned to lead_shape (same ndim, each axis full or 1). Axes where
    keys has size 1 fan the same key out to every index along them."""
    if keys.size == 1:
        return _single_group(keys.reshape(-1)[0], lead_shape, arrays)
    n_lead = len(lead_shape)
    carry = [a for a in range(n_lead) if keys.shape[a] != 1]
    fan = [a for a in range(n_lead) if keys.shape[a] == 1 and lead_shape[a] != 1]
    flat = keys.ravel()
    order = np.argsort(flat, kind="stable")
    sorted_keys = flat[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))
    n_fan = 1
    for a in fan:
        n_fan *= lead_shape[a]
    g = Groups()
    g.keys = np.ascontiguousarray(sorted_keys[starts])
    g.group_ptr = np.append(starts, flat.size).astype(np.intp) * n_fan
    g.rows = []
    for arr in arrays:
        carry_off = axis_offsets(keys.shape, arr.strides, carry).ravel()[order]
        fan_off = axis_offsets(lead_shape, arr.strides, fan).ravel()
        g.rows.append(np.ascontiguousarray((carry_off[:, None] + fan_off[None, :]).ravel()))
    return g


def balanced_chunks(group_ptr, n_chunks):
    """Split groups into at most n_chunks contiguous runs of about equal row count."""
    n_groups = group_ptr.shape[0] - 1
    n_chunks = max(1, min(n_chunks, n_groups))
    targets = np.linspace(0, group_ptr[-1], n_chunks + 1)
    bounds = np.searchsorted(group_ptr, targets, side="left")
    bounds[0], bounds[-1] = 0, n_groups
    return np.unique(bounds).astype(np.intp)
