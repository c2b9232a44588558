"""Build and runtime facts (show_config) and the plan cache's controls."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

import numpy as np

from . import _kernels, _runtime
from ._version import __version__
from ._frontdoor import CACHE, CacheInfo
from ._typing import Int
from ._validation.scalars import check_bool, check_count


def _openmp_runtime():
    """The OpenMP runtime loaded in this process, when threadpoolctl can tell.
    With several (torch ships its own), the one a repaired wheel vendors next
    to fastpe (fastpe.libs, .dylibs) comes first."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    runtimes = [lib for lib in threadpool_info() if lib.get("user_api") == "openmp"]
    if not runtimes:
        return None
    site = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ours = os.path.join(site, "fastpe")
    runtimes.sort(key=lambda lib: not str(lib.get("filepath", "")).startswith(ours))
    lib = runtimes[0]
    name = " ".join(str(part) for part in (lib.get("internal_api"), lib.get("version")) if part)
    return f"{name} at {lib.get('filepath')}"


def _distribution_version(name):
    """The installed version of a distribution, or None (without importing it)."""
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:
        return None
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def config() -> dict[str, Any]:
    """The facts show_config prints, as a dict."""

    build = _kernels.build_info()
    return {
        "fastpe": __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "platform": platform.platform(),
        "openmp": _kernels.openmp_enabled(),
        "openmp_version": _kernels.openmp_version(),
        "openmp_runtime": _openmp_runtime(),
        "max_threads": _kernels.omp_max_threads(),
        "serial_after_fork": _runtime.serial_only(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "simd": _kernels.simd_level(),
        "16-bit rows": _kernels.half_simd(),
        # bfloat16 storage needs ml_dtypes; asking for its version imports nothing.
        "ml_dtypes": _distribution_version("ml_dtypes"),
        "compiler": build["compiler"],
        "compile_args": build["compile_args"],
        "link_args": build["link_args"],
        "native": build["native"],
        "sanitize": build["sanitize"],
        "cache": cache_info()._asdict(),
    }


def show_config(print_out: bool = True) -> dict[str, Any]:
    """Print and return the facts of this build and process.

    The versions of fastpe, Python and NumPy; whether OpenMP is compiled in,
    its version and (with threadpoolctl installed) the runtime library the
    process loaded; the default thread count; whether this process was
    forked from one that had imported fastpe (``serial_after_fork``: then
    every kernel runs serially, whoever ran OpenMP in the parent); the SIMD
    level of the kernels and of the 16-bit rows; the installed ml_dtypes
    (not imported); the compiler and flags; the cache's counters.

    Parameters
    ----------
    print_out : bool, optional
        Print one ``key : value`` line per fact (default True).

    Returns
    -------
    config : dict
        The same facts, keyed as printed.

    See Also
    --------
    cache_info : the cache's counters alone.

    Examples
    --------
    >>> import fastpe
    >>> config = fastpe.show_config(print_out=False)
    >>> config["fastpe"] == fastpe.__version__
    True
    >>> sorted(k for k in config if k.startswith("openmp"))
    ['openmp', 'openmp_runtime', 'openmp_version']
    """
    print_out = check_bool("print_out", print_out)
    info = config()
    if print_out:
        width = max(map(len, info))
        for key, value in info.items():
            print(f"{key:<{width}} : {value}")
    return info


def cache_info() -> CacheInfo:
    """The counters of fastpe's cache of frequency plans, grid tables and rows.

    Each call needs the frequencies of its encoding and their one-step
    rotations, each grid call its table, and a small common `add_sinusoidal`
    call reads rows of the encoding in blocks of 256 positions (fastpe.torch
    adds its tables on other devices and the rows its compiled graphs are
    built from); they are kept in one bounded, thread-safe LRU cache keyed by
    everything they depend on.
    An entry is a pure function of its key, so the cache never changes a
    result.

    Returns
    -------
    info : CacheInfo
        A named tuple ``(hits, misses, entries, nbytes, limit)``.

    See Also
    --------
    cache_clear, set_cache_limit

    Examples
    --------
    >>> import fastpe
    >>> fastpe.cache_clear()
    >>> _ = fastpe.sinusoidal_table(4, 64)
    >>> _ = fastpe.sinusoidal_table(8, 64)          # the same frequencies
    >>> info = fastpe.cache_info()
    >>> info.misses, info.hits, info.entries
    (1, 1, 1)
    """
    return CACHE.info()


def cache_clear() -> None:
    """Empty fastpe's cache and reset its counters.

    See Also
    --------
    cache_info, set_cache_limit

    Examples
    --------
    >>> import fastpe
    >>> _ = fastpe.sinusoidal_table(4, 64)
    >>> fastpe.cache_clear()
    >>> tuple(fastpe.cache_info())[:4]
    (0, 0, 0, 0)
    """
    CACHE.clear()


def set_cache_limit(nbytes: Int) -> None:
    """Bound fastpe's cache to `nbytes` bytes.

    The least recently used entries are dropped to fit. The limit at import
    is the environment variable ``FASTPE_CACHE_BYTES`` (default 128 MiB).

    Parameters
    ----------
    nbytes : int
        The new limit; 0 disables caching.

    Raises
    ------
    TypeError
        A non-integer `nbytes` (a bool or a float included).
    ValueError
        A negative `nbytes`.

    See Also
    --------
    cache_info, cache_clear

    Examples
    --------
    >>> import fastpe
    >>> before = fastpe.cache_info().limit
    >>> fastpe.set_cache_limit(1 << 20)
    >>> fastpe.cache_info().limit
    1048576
    >>> fastpe.set_cache_limit(before)
    """
    CACHE.set_limit(check_count("nbytes", nbytes))
