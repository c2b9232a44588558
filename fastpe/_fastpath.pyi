# Stubs of the compiled module fastpe/_fastpath.pyx (keep in step with it:
# tests/packaging/test_typing.py compares these names with the built module's).
from typing import Any, Optional

ROWS_MAX_BYTES: int

def fast_calls() -> int: ...
def row_calls() -> int: ...
def add_sinusoidal_common(
    x: Any, offset: Any, positions: Any, scale: Any, base: Any, layout: Any, out: Any, num_threads: Any,
    inv_freq: Any, preset: Any, padding_idx: Any, min_timescale: Any, max_timescale: Any,
) -> Optional[Any]: ...
