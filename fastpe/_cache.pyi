# Stubs of the compiled module fastpe/_cache.pyx (keep in step with it:
# tests/packaging/test_typing.py compares these names with the built module's).
from typing import Any, Callable, NamedTuple

class CacheInfo(NamedTuple):
    hits: int
    misses: int
    entries: int
    nbytes: int
    limit: int

class BoundedCache:
    hits: int
    misses: int
    def __init__(self, limit: int) -> None: ...
    def get(self, key: Any, build: Callable[[], Any]) -> Any: ...
    def clear(self) -> None: ...
    def set_limit(self, nbytes: int) -> None: ...
    def keys(self) -> list[Any]: ...
    def info(self) -> CacheInfo: ...
