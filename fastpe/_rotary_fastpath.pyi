# Stubs of the compiled module fastpe/_rotary_fastpath.pyx (keep in step with it:
# tests/packaging/test_typing.py compares these names with the built module's).
from typing import Any, Optional

import numpy.typing as npt

ROWS_PER_BLOCK: int

def fast_calls() -> int: ...
def cos_sin_table(
    positions: npt.NDArray[Any], freq: npt.NDArray[Any], freq_lo: npt.NDArray[Any], attention_factor: float,
    num_threads: Optional[int] = ...,
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]: ...
def scaling_key(scaling: Any) -> Optional[tuple[Any, ...]]: ...
def cached_scaled_frequencies(
    width: Optional[int], rotary_dim: Optional[int], base: float, scaling: Any, inv_freq: Any,
    seq_len: Optional[int],
) -> tuple[npt.NDArray[Any], float, int, npt.NDArray[Any]]: ...
def apply_rotary_common(
    arrays: tuple[Any, ...], offset: Any, positions: Any, base: Any, layout: Any, rotary_dim: Any,
    inv_freq: Any, scaling: Any, seq_axis: Any, out: Any, num_threads: Any,
) -> Optional[Any]: ...
