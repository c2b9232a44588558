# Stubs of the compiled module fastpe/_kernels.pyx (keep in step with it:
# tests/packaging/test_typing.py compares these names with the built module's).
from typing import Any, Optional

import numpy as np
import numpy.typing as npt

SEED_GRID: int
EXACT_INTEGERS: int
ITEMS_PER_CALL: int
MIN_BLOCK: int
SWEEP_GROUP_SEQUENCES: int
HALF_SIMD_LEVELS: tuple[str, ...]
PAIR_LAYOUTS: tuple[str, ...]

class Plan:
    freq: npt.NDArray[np.float64]
    freq_lo: npt.NDArray[np.float64]
    step_cos: npt.NDArray[np.float64]
    step_sin: npt.NDArray[np.float64]
    zero_cols: npt.NDArray[np.intp]
    n_cols: int
    n_sin: int
    n_cos: int
    sin_col: int
    cos_col: int
    col_step: int
    nbytes: int
    def __init__(self, freq: npt.ArrayLike, freq_lo: npt.ArrayLike, n_cols: int, *, sin_col: int, cos_col: int,
                 col_step: int, n_sin: int, n_cos: int) -> None: ...

def openmp_enabled() -> bool: ...
def openmp_version() -> int: ...
def omp_max_threads() -> int: ...
def forked_child() -> bool: ...
def teams_allowed() -> bool: ...
def build_info() -> dict[str, Any]: ...
def simd_level() -> str: ...
def half_simd() -> str: ...
def set_half_simd(name: str) -> str: ...
def pair_columns(layout: str, rotary_dim: int) -> tuple[int, int, int]: ...
def has_internal_overlap(a: npt.NDArray[Any]) -> bool: ...
def row_offsets(a: npt.NDArray[Any], n_axes: int) -> npt.NDArray[np.intp]: ...
def sequence_index(shape: tuple[int, ...], seq_axis: int) -> npt.NDArray[np.intp]: ...
def sinusoid_grid_rows(
    dst: npt.NDArray[Any], dst_rows: npt.NDArray[np.intp], plan: Plan, p0: npt.NDArray[np.float64],
    seq_ptr: npt.NDArray[np.intp], T: int, *, src: Optional[npt.NDArray[Any]] = ...,
    src_rows: Optional[npt.NDArray[np.intp]] = ..., store: bool = ..., scale: float = ...,
    zero_position: float = ..., n_threads: int = ...,
) -> None: ...
def sinusoid_grouped_rows(
    dst: npt.NDArray[Any], dst_rows: npt.NDArray[np.intp], plan: Plan, positions: npt.NDArray[np.float64],
    group_ptr: npt.NDArray[np.intp], chunk_ptr: npt.NDArray[np.intp], *, src: Optional[npt.NDArray[Any]] = ...,
    src_rows: Optional[npt.NDArray[np.intp]] = ..., store: bool = ..., scale: float = ...,
    zero_position: float = ..., n_threads: int = ...,
) -> None: ...
def table_grid_rows(
    dst: npt.NDArray[Any], dst_rows: npt.NDArray[np.intp], table: npt.NDArray[Any], p0: npt.NDArray[np.intp],
    seq_ptr: npt.NDArray[np.intp], T: int, *, src: Optional[npt.NDArray[Any]] = ...,
    src_rows: Optional[npt.NDArray[np.intp]] = ..., scale: float = ..., n_threads: int = ...,
) -> None: ...
def table_grouped_rows(
    dst: npt.NDArray[Any], dst_rows: npt.NDArray[np.intp], table: npt.NDArray[Any],
    positions: npt.NDArray[np.float64], group_ptr: npt.NDArray[np.intp], chunk_ptr: npt.NDArray[np.intp], *,
    src: Optional[npt.NDArray[Any]] = ..., src_rows: Optional[npt.NDArray[np.intp]] = ..., scale: float = ...,
    n_threads: int = ...,
) -> None: ...
def rotate_vector_rows(
    dst: npt.NDArray[Any], dst_rows: npt.NDArray[np.intp], table_idx: npt.NDArray[np.intp],
    cos: npt.NDArray[np.float64], sin: npt.NDArray[np.float64], layout: str, n_pairs: int, *,
    src: Optional[npt.NDArray[Any]] = ..., src_rows: Optional[npt.NDArray[np.intp]] = ..., n_threads: int = ...,
) -> None: ...
def add_bias(
    dst: npt.NDArray[Any], lut: npt.NDArray[Any], lut_start: npt.NDArray[np.intp], lut_hs: int, istep: int,
    block: int, n_threads: int, *, src: Optional[npt.NDArray[Any]] = ...,
) -> None: ...
def probe(x: npt.NDArray[Any], value: float, fill: bool, n_threads: int) -> None: ...
