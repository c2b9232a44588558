# Stubs of the compiled module fastpe/_kernels.pyx (keep in step with it:
# tests/packaging/test_typing.py compares these names with the built module's).
from typing import Any

import numpy.typing as npt

MODE_STORE: int
MODE_ADD_INPLACE: int
MODE_ADD_TO: int
STORAGE_NATIVE: int
STORAGE_F16: int
STORAGE_BF16: int
SEED_GRID: int

def openmp_enabled() -> bool: ...
def openmp_version() -> int: ...
def omp_max_threads() -> int: ...
def build_info() -> dict[str, Any]: ...
def simd_level() -> str: ...
HALF_SIMD_LEVELS: tuple[str, ...]

def half_simd() -> str: ...
def set_half_simd(name: str) -> str: ...
def sinusoid_grid(
    dst: npt.NDArray[Any], src: npt.NDArray[Any], plan: Any,
    p0: npt.NDArray[Any], seq_ptr: npt.NDArray[Any],
    dst_rows: npt.NDArray[Any], src_rows: npt.NDArray[Any],
    T: int, block: int, tile_direct: int, tile_shared: int,
    dst_rs: int, dst_cs: int, src_rs: int, src_cs: int,
    scale: float, mode: int, zero_pos: float, kind: int, n_threads: int,
) -> None: ...
def sinusoid_grouped(
    dst: npt.NDArray[Any], src: npt.NDArray[Any], plan: Any,
    positions: npt.NDArray[Any], group_ptr: npt.NDArray[Any],
    dst_rows: npt.NDArray[Any], src_rows: npt.NDArray[Any], chunk_ptr: npt.NDArray[Any],
    dst_cs: int, src_cs: int,
    scale: float, mode: int, zero_pos: float, kind: int, n_threads: int,
) -> None: ...
def table_add(
    dst: npt.NDArray[Any], src: npt.NDArray[Any], table: npt.NDArray[Any], grid: bool,
    p0: npt.NDArray[Any], seq_ptr: npt.NDArray[Any], T: int, block: int, tile: int,
    positions: npt.NDArray[Any], group_ptr: npt.NDArray[Any], chunk_ptr: npt.NDArray[Any],
    dst_rows: npt.NDArray[Any], src_rows: npt.NDArray[Any],
    dst_rs: int, dst_cs: int, src_rs: int, src_cs: int,
    scale: float, mode: int, kind: int, n_items: int, n_threads: int,
) -> None: ...
def rotate_rows(
    dst: npt.NDArray[Any], src: npt.NDArray[Any], dst_rows: npt.NDArray[Any], src_rows: npt.NDArray[Any],
    table_idx: npt.NDArray[Any], cos_table: npt.NDArray[Any], sin_table: npt.NDArray[Any],
    n_pairs: int, first_col: int, second_col: int, col_step: int,
    dst_cs: int, src_cs: int, mode: int, kind: int, n_threads: int,
) -> None: ...
def probe(x: npt.NDArray[Any], value: float, fill: bool, n_threads: int) -> None: ...
