# Stubs of the compiled module fastpe/_bias_kernels.pyx (keep in step with it:
# tests/packaging/test_typing.py compares these names with the built module's).
from typing import Any

import numpy.typing as npt


def openmp_enabled() -> bool: ...
HALF_SIMD_LEVELS: tuple[str, ...]

def half_simd() -> str: ...
def set_half_simd(name: str) -> str: ...
def add_bias_inplace(
    dst: npt.NDArray[Any], lut: npt.NDArray[Any], lut_start: npt.NDArray[Any], lut_hs: int, istep: int, block: int, n_threads: int,
) -> None: ...
def add_bias_to(
    dst: npt.NDArray[Any], src: npt.NDArray[Any], lut: npt.NDArray[Any], lut_start: npt.NDArray[Any], lut_hs: int, istep: int, block: int, n_threads: int,
) -> None: ...
