"""Lazy Dask versions of every fastpe function that adds into an array, and of the tables.

Import it explicitly (``import fastpe.dask``); ``import fastpe`` never imports
Dask. Every block is computed by the eager kernel into a new buffer (input
blocks may be shared by other tasks, so they are never written), and holds
the bits the eager call on the whole array gives. Arguments are checked when
the graph is built, by the eager checks on zero-size stand-ins of the Dask
arrays; only the values inside Dask offsets, positions and tables wait for
the compute (each block's eager call checks the values it reads).
"""

try:
    import dask.array  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "fastpe.dask needs Dask: pip install fastpe[dask] (installs dask[array] and distributed)"
    ) from exc

from ._sinusoid import add_sinusoidal, make_positions, sinusoidal_encode, sinusoidal_table
from ._bias import add_alibi, add_relative_bias
from ._rotary import apply_rotary
from ._tables import add_sincos_2d, add_sinusoidal_nd, add_table

__all__ = ["add_alibi", "add_relative_bias", "add_sincos_2d", "add_sinusoidal", "add_sinusoidal_nd", "add_table",
           "apply_rotary", "make_positions", "sinusoidal_encode", "sinusoidal_table"]
