"""fastpe: positional encodings of Transformer models, fused into arrays in place.

The compiled kernels (OpenMP, float64 angles) sit behind a validation layer;
``fastpe.reference`` is a plain NumPy implementation of the same API.
"""

try:
    from . import _frontdoor, _kernels  # noqa: F401  (the compiled modules)
except ImportError:
    # A source folder that was never built (e.g. the repository root on
    # sys.path) would otherwise fail below with a misleading "partially
    # initialized module" message.
    from ._check_build import raise_if_unbuilt

    raise_if_unbuilt()
    raise

from . import reference
from ._bias import add_alibi, add_relative_bias, alibi_slopes, relative_position_bucket
from ._sinusoid import add_sinusoidal, add_table, make_positions, sinusoidal_encode, sinusoidal_table
from ._config import cache_clear, cache_info, set_cache_limit, show_config
from ._grids import add_sincos_2d, add_sinusoidal_nd, sincos_2d, sinusoidal_nd
from ._formulas import PRESETS
from ._rotary import apply_rotary, rope_inv_freq, rotary_cos_sin

from ._version import __version__  # noqa: E402

__all__ = [
    "PRESETS",
    "__version__",
    "add_alibi",
    "add_relative_bias",
    "add_sincos_2d",
    "add_sinusoidal",
    "add_sinusoidal_nd",
    "add_table",
    "alibi_slopes",
    "apply_rotary",
    "cache_clear",
    "cache_info",
    "make_positions",
    "reference",
    "relative_position_bucket",
    "rope_inv_freq",
    "rotary_cos_sin",
    "set_cache_limit",
    "show_config",
    "sincos_2d",
    "sinusoidal_encode",
    "sinusoidal_nd",
    "sinusoidal_table",
]

from ._dynamo import keep_out_of_traces

# torch.compile breaks its graph at these functions instead of tracing them (fastpe._dynamo).
keep_out_of_traces([function for function in [*(globals()[name] for name in __all__),
                                              *(getattr(reference, name) for name in reference.__all__)]
                    if callable(function)])
