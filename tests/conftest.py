"""Test configuration of fastpe.

* Refuses to run without the compiled extension: a source tree whose
  fastpe/_kernels was never built would otherwise fail every test with an
  ImportError deep in fastpe/__init__, or (worse) be skipped.
* Puts tests/helpers on sys.path so test modules in every feature folder can
  `from util import ...` under --import-mode=importlib (which does not add
  test directories). Only helpers/ goes there, not tests/ itself: a feature
  folder such as tests/dask/ would otherwise be importable as a namespace
  package named `dask`, and `pytest.importorskip("dask")` would find it
  instead of skipping where dask is not installed.
* Restores the cache's limit after every test that changes it; `fresh_cache`
  gives a test an empty cache.
* With FASTPE_TESTS_NO_SKIPS=1 (CI, where every optional library is
  installed), a run that skipped any test fails, except the skips of a
  level of vector instructions this CPU does not have (their reason starts
  with CPU_SKIP_PREFIX): no install brings an instruction set, and CI runs
  on whatever x86-64 machine it gets. Those are counted and named in the
  summary.
"""

import importlib.machinery
import importlib.util
import os
import sys

import pytest

_HELPERS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helpers")
if _HELPERS_DIR not in sys.path:
    sys.path.insert(0, _HELPERS_DIR)

_INSTALL_HINT = (
    "fastpe's compiled extension fastpe._kernels cannot be imported: {error}. "
    "These tests check the compiled kernels: install fastpe "
    "(pip install \".[test]\") or build it in place (pip install -e \".[test]\") "
    "before running pytest."
)


def _import_kernels():
    """(fastpe, None) or (None, why the compiled extension is unusable)."""
    spec = importlib.util.find_spec("fastpe")  # locates the package without running it
    if spec is None:
        return None, "fastpe is not installed"
    where = list(spec.submodule_search_locations or [])
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    if not any(os.path.exists(os.path.join(d, "_kernels" + sfx)) for d in where for sfx in suffixes):
        return None, f"no built _kernels extension in {', '.join(where)} (an unbuilt source tree?)"
    try:
        import fastpe
        import fastpe._kernels  # noqa: F401
    except ImportError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    return fastpe, None


_fastpe, _import_error = _import_kernels()


def pytest_sessionstart(session):
    if _import_error is not None:
        pytest.exit(_INSTALL_HINT.format(error=_import_error), returncode=pytest.ExitCode.USAGE_ERROR)


def pytest_report_header(config):
    if _fastpe is None:
        return None
    from fastpe import _kernels

    return (
        f"fastpe {_fastpe.__version__} from {os.path.dirname(_fastpe.__file__)}; "
        f"openmp={_kernels.openmp_enabled()} max_threads={_kernels.omp_max_threads()} "
        f"simd={_kernels.simd_level()}"
    )


@pytest.fixture(autouse=True)
def _restore_cache_limit():
    """Tests may shrink or disable the plan cache; put the limit back afterwards."""
    limit = _fastpe.cache_info().limit
    yield
    _fastpe.set_cache_limit(limit)


@pytest.fixture
def fresh_cache():
    """An empty cache with zeroed counters, emptied again afterwards."""
    _fastpe.cache_clear()
    yield
    _fastpe.cache_clear()


_NO_SKIPS = os.environ.get("FASTPE_TESTS_NO_SKIPS") == "1"
# The reason of a skip for a CPU without some vector instructions (see helpers/optional.py).
CPU_SKIP_PREFIX = "this CPU lacks"


def _skip_reason(report):
    longrepr = report.longrepr
    return str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)


def _split_skips(stats):
    """(skips a missing install explains, skips of instructions this CPU lacks)."""
    skips = stats.get("skipped", [])
    cpu = [r for r in skips if CPU_SKIP_PREFIX in _skip_reason(r)]
    return len(skips) - len(cpu), len(cpu)


def _skipped(session):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    return _split_skips(reporter.stats)[0] if reporter is not None else 0


def pytest_sessionfinish(session, exitstatus):
    if _NO_SKIPS and exitstatus == pytest.ExitCode.OK and _skipped(session):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    skipped, cpu_skipped = _split_skips(terminalreporter.stats)
    if _NO_SKIPS and cpu_skipped:
        terminalreporter.write_line(
            f"FASTPE_TESTS_NO_SKIPS=1: {cpu_skipped} tests skipped because this CPU lacks the vector "
            "instructions they test (allowed: no install brings them)")
    if _NO_SKIPS and skipped:
        terminalreporter.write_line(
            f"FASTPE_TESTS_NO_SKIPS=1: {skipped} tests skipped, and this run must skip none "
            "(the short test summary below gives the reasons)",
            red=True,
        )
