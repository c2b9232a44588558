"""Build and runtime facts (show_config) and the plan cache's controls."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

import numpy as np

from . import _forksafe, _kernels
from ._plan import CACHE, CacheInfo
from ._typing import Int


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
    from . import __version__

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
        "serial_after_fork": _forksafe.serial_only(),
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
    """Print (and return) the version, OpenMP status, thread count, SIMD level and build flags."""
    info = config()
    if print_out:
        width = max(map(len, info))
        for key, value in info.items():
            print(f"{key:<{width}} : {value}")
    return info


def cache_info() -> CacheInfo:
    """CacheInfo(hits, misses, entries, nbytes, limit) of the frequency-plan cache."""
    return CACHE.info()


def cache_clear() -> None:
    """Empty the plan cache and reset its counters."""
    CACHE.clear()


def set_cache_limit(nbytes: Int) -> None:
    """Bound the plan cache to nbytes (0 disables caching). Also FASTPE_CACHE_BYTES."""
    import numbers

    if isinstance(nbytes, bool) or not isinstance(nbytes, numbers.Integral) or nbytes < 0:
        raise ValueError(f"nbytes must be a non-negative integer, got {nbytes!r}")
    CACHE.set_limit(int(nbytes))
