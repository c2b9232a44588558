"""fastpe for PyTorch: the encodings as torch operators and modules.

Out-of-place functions return new tensors; their in-place twins end with an
underscore, write the caller's tensor, bump its version counter and return
it. Every function is a ``torch.library`` custom operator (namespace
``fastpe``) with a fake implementation and a gradient, so it works under
autograd, ``torch.compile(fullgraph=True)`` and ``torch.export``. CPU tensors
go through fastpe's kernels, tensors on other devices through the same
computation in torch operations; float32, float64, float16 and bfloat16
(without ml_dtypes). The arguments are those of fastpe's NumPy-facing
functions of the same names, checked by them. See docs/torch.rst.

Importing this module imports torch; ``import fastpe`` never does.
"""

try:
    import torch as _torch  # noqa: F401
except ImportError as exc:  # pragma: no cover (the tests run with torch, or skip this module)
    raise ImportError("fastpe.torch needs PyTorch: pip install 'fastpe[torch]' (torch>=2.13)") from exc

from . import _ops  # noqa: F401  (registers the torch.ops.fastpe operators)
from ._functions import (
    add_alibi,
    add_alibi_,
    add_relative_bias,
    add_relative_bias_,
    add_sinusoidal,
    add_sinusoidal_,
    add_table,
    add_table_,
    apply_rotary,
    apply_rotary_,
    apply_rotary_cos_sin,
    apply_rotary_cos_sin_,
    make_positions,
)
from ._modules import ALiBi, LearnedPositionalEmbedding, RotaryEmbedding, SinusoidalPositionalEmbedding, T5RelativeBias
from ._tables import rotary_cos_sin, sinusoidal_table

__all__ = [
    "ALiBi",
    "LearnedPositionalEmbedding",
    "RotaryEmbedding",
    "SinusoidalPositionalEmbedding",
    "T5RelativeBias",
    "add_alibi",
    "add_alibi_",
    "add_relative_bias",
    "add_relative_bias_",
    "add_sinusoidal",
    "add_sinusoidal_",
    "add_table",
    "add_table_",
    "apply_rotary",
    "apply_rotary_",
    "apply_rotary_cos_sin",
    "apply_rotary_cos_sin_",
    "make_positions",
    "rotary_cos_sin",
    "sinusoidal_table",
]
