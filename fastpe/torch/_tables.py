"""fastpe's tables as tensors: the sinusoid table and Hugging Face's rotary cos/sin.

The values are fastpe's (float64 angles, each value rounded once to the
table's dtype); bfloat16 tables need no ml_dtypes. ``dtype=None`` is torch's
default dtype (``torch.get_default_dtype()``, float32 unless changed), as for
torch's own factory functions; ``device`` is where the table is put.
"""

import numpy as np
import torch

from .. import _sinusoid
from .._rotary import rotary_cos_sin as _numpy_rotary_cos_sin
from .._validation import check_count
from ._tensors import numpy_dtype, view


def _dtype(dtype):
    return torch.get_default_dtype() if dtype is None else dtype


def _rounded(table64, dtype):
    """A float64 table as a tensor of `dtype`, each value rounded once."""
    if dtype != torch.bfloat16:
        return torch.from_numpy(table64.astype(numpy_dtype(dtype)))
    rounded = torch.zeros(table64.shape, dtype=torch.bfloat16)
    # fastpe's fused add forms 0 + value in float64 and rounds it once (torch would round through float32).
    _sinusoid.add_table(view(rounded), table64)
    return rounded


def sinusoidal_table(n_positions, dim, *, offset=0, base=None, layout=None, inv_freq=None, preset=None,
                     padding_idx=None, min_timescale=None, max_timescale=None, num_threads=None, dtype=None,
                     device=None):
    """`fastpe.sinusoidal_table` as a tensor of `dtype` on `device`.

    >>> import torch, fastpe.torch
    >>> fastpe.torch.sinusoidal_table(4096, 512, dtype=torch.bfloat16).dtype
    torch.bfloat16
    """
    dtype = _dtype(dtype)
    options = dict(offset=offset, base=base, layout=layout, inv_freq=inv_freq, preset=preset, padding_idx=padding_idx,
                   min_timescale=min_timescale, max_timescale=max_timescale, num_threads=num_threads)
    if dtype == torch.bfloat16:
        table = torch.empty((check_count("n_positions", n_positions), check_count("dim", dim)), dtype=dtype)
        _sinusoid.sinusoidal_table(n_positions, dim, out=view(table), **options)
    else:
        table = torch.from_numpy(_sinusoid.sinusoidal_table(n_positions, dim, dtype=numpy_dtype(dtype), **options))
    return table.to(device) if device is not None else table


def rotary_cos_sin(n_positions, rotary_dim, *, offset=0, base=10000.0, scaling=None, layout="half", dtype=None,
                   device=None):
    """`fastpe.rotary_cos_sin` as two tensors (cos, sin) of `dtype` on `device`.

    >>> import torch, fastpe.torch
    >>> cos, sin = fastpe.torch.rotary_cos_sin(2048, 128, base=500000.0)
    >>> cos.shape, cos.dtype
    (torch.Size([2048, 128]), torch.float32)
    """
    dtype = _dtype(dtype)
    tables = _numpy_rotary_cos_sin(n_positions, rotary_dim, offset=offset, base=base, scaling=scaling,
                                   layout=layout, dtype=np.float64)
    tables = tuple(_rounded(t, dtype) for t in tables)
    return tables if device is None else tuple(t.to(device) for t in tables)
