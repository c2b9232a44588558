# Stubs of the compiled module fastpe/_bias_kernels.pyx (keep in step with it:
# tests/packaging/test_typing.py compares these names with the built module's).
from typing import Any

import numpy.typing as npt

MODE_ADD_INPLACE: int
MODE_ADD_TO: int

def openmp_enabled() -> bool: ...
HALF_SIMD_LEVELS: tuple[str, ...]

def half_simd() -> str: ...
def set_half_simd(name: str) -> str: ...
def add_bias(
    dst: npt.NDArray[Any], src: npt.NDArray[Any], mode: int, kind: int, lut: npt.NDArray[Any], lut_start: npt.NDArray[Any],
    lut_hs: int, istep: int, block: int, n_items: int, n_threads: int,
) -> None: ...
