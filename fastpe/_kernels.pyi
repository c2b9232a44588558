# Stubs of the compiled module fastpe/_kernels.pyx (keep in step with it:
# tests/packaging/test_typing.py compares these names with the built module's).
from typing import Any

import numpy.typing as npt

SEED_GRID: int

def openmp_enabled() -> bool: ...
def openmp_version() -> int: ...
def omp_max_threads() -> int: ...
def forked_child() -> bool: ...
def teams_allowed() -> bool: ...
def build_info() -> dict[str, Any]: ...
def simd_level() -> str: ...
HALF_SIMD_LEVELS: tuple[str, ...]

def half_simd() -> str: ...
def set_half_simd(name: str) -> str: ...
def sinusoid_grid_store(
    dst: npt.NDArray[Any], dst_rows: npt.NDArray[Any], dst_rs: int, dst_cs: int,
    plan: Any, p0: npt.NDArray[Any], seq_ptr: npt.NDArray[Any], T: int, block: int, tile_direct: int, tile_shared: int,
    zero_pos: float, n_threads: int,
) -> None: ...
def sinusoid_grid_add_inplace(
    dst: npt.NDArray[Any], dst_rows: npt.NDArray[Any], dst_rs: int, dst_cs: int, scale: float,
    plan: Any, p0: npt.NDArray[Any], seq_ptr: npt.NDArray[Any], T: int, block: int, tile_direct: int, tile_shared: int,
    zero_pos: float, n_threads: int,
) -> None: ...
def sinusoid_grid_add_to(
    dst: npt.NDArray[Any], dst_rows: npt.NDArray[Any], dst_rs: int, dst_cs: int,
    src: npt.NDArray[Any], src_rows: npt.NDArray[Any], src_rs: int, src_cs: int, scale: float,
    plan: Any, p0: npt.NDArray[Any], seq_ptr: npt.NDArray[Any], T: int, block: int, tile_direct: int, tile_shared: int,
    zero_pos: float, n_threads: int,
) -> None: ...
def sinusoid_grouped_store(
    dst: npt.NDArray[Any], dst_rows: npt.NDArray[Any], dst_cs: int, plan: Any,
    positions: npt.NDArray[Any], group_ptr: npt.NDArray[Any], chunk_ptr: npt.NDArray[Any], zero_pos: float, n_threads: int,
) -> None: ...
def sinusoid_grouped_add_inplace(
    dst: npt.NDArray[Any], dst_rows: npt.NDArray[Any], dst_cs: int, scale: float, plan: Any,
    positions: npt.NDArray[Any], group_ptr: npt.NDArray[Any], chunk_ptr: npt.NDArray[Any], zero_pos: float, n_threads: int,
) -> None: ...
def sinusoid_grouped_add_to(
    dst: npt.NDArray[Any], dst_rows: npt.NDArray[Any], dst_cs: int,
    src: npt.NDArray[Any], src_rows: npt.NDArray[Any], src_cs: int, scale: float, plan: Any,
    positions: npt.NDArray[Any], group_ptr: npt.NDArray[Any], chunk_ptr: npt.NDArray[Any], zero_pos: float, n_threads: int,
) -> None: ...
def table_add_grid_inplace(
    dst: npt.NDArray[Any], dst_rows: npt.NDArray[Any], dst_rs: int, dst_cs: int, scale: float,
    table: npt.NDArray[Any], p0: npt.NDArray[Any], seq_ptr: npt.NDArray[Any], T: int, block: int, tile: int, n_threads: int,
) -> None: ...
def table_add_grid_to(
    dst: npt.NDArray[Any], dst_rows: npt.NDArray[Any], dst_rs: int, dst_cs: int,
    src: npt.NDArray[Any], src_rows: npt.NDArray[Any], src_rs: int, src_cs: int, scale: float,
    table: npt.NDArray[Any], p0: npt.NDArray[Any], seq_ptr: npt.NDArray[Any], T: int, block: int, tile: int, n_threads: int,
) -> None: ...
def table_add_grouped_inplace(
    dst: npt.NDArray[Any], dst_rows: npt.NDArray[Any], dst_cs: int, scale: float,
    table: npt.NDArray[Any], positions: npt.NDArray[Any], group_ptr: npt.NDArray[Any], chunk_ptr: npt.NDArray[Any], n_threads: int,
) -> None: ...
def table_add_grouped_to(
    dst: npt.NDArray[Any], dst_rows: npt.NDArray[Any], dst_cs: int, src: npt.NDArray[Any], src_rows: npt.NDArray[Any], src_cs: int, scale: float,
    table: npt.NDArray[Any], positions: npt.NDArray[Any], group_ptr: npt.NDArray[Any], chunk_ptr: npt.NDArray[Any], n_threads: int,
) -> None: ...
def rotate_rows_inplace(
    dst: npt.NDArray[Any], dst_rows: npt.NDArray[Any], dst_cs: int, table_idx: npt.NDArray[Any], cos_table: npt.NDArray[Any], sin_table: npt.NDArray[Any],
    n_pairs: int, first_col: int, second_col: int, col_step: int, n_threads: int,
) -> None: ...
def rotate_rows_to(
    dst: npt.NDArray[Any], dst_rows: npt.NDArray[Any], dst_cs: int, src: npt.NDArray[Any], src_rows: npt.NDArray[Any], src_cs: int,
    table_idx: npt.NDArray[Any], cos_table: npt.NDArray[Any], sin_table: npt.NDArray[Any],
    n_pairs: int, first_col: int, second_col: int, col_step: int, n_threads: int,
) -> None: ...
def probe(x: npt.NDArray[Any], value: float, fill: bool, n_threads: int) -> None: ...
