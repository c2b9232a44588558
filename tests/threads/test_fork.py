"""Fork safety (the fork rule of fastpe/_runtime.py).

GNU libgomp's worker pool does not survive fork(): a child forked after the
parent ran an OpenMP parallel region hangs in its next parallel region. Every
child forked from a process that had imported fastpe runs every kernel
serially, whatever num_threads asks. These tests fork for real (os.fork and
multiprocessing's "fork" context), check the child's numbers against
fastpe.reference inside the child, and never wait for a child without a
timeout: a hang is killed and reported as a failure. Forks after another
library's OpenMP (torch's) are in test_fork_after_openmp.py.

Children leave with os._exit: the pytest process may have other threads, and
its atexit handlers and buffers belong to the parent.
"""

import json
import multiprocessing
import os

import numpy as np
import pytest

import fastpe
from fastpe import _kernels, reference
from forks import fork_and_report
from processes import (
    TEAM_OFFSETS,
    check_team_call,
    forked_child_report,
    os_thread_count,
    pool_job,
    run_python,
    team_input,
)
from util import add_tolerance, assert_within

HAS_FORK = hasattr(os, "fork")
needs_fork = pytest.mark.skipif(not HAS_FORK, reason="needs os.fork")
needs_openmp = pytest.mark.skipif(not _kernels.openmp_enabled(), reason="fastpe built without OpenMP: no team to fork from")
# Python 3.12+ warns when fork() is called in a process with threads (the
# pytest process has libgomp's pool threads after a team ran); forking is the
# point of these tests.
fork_warning_ok = pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")

CHILD_TIMEOUT = 60.0


def _start_team_in_parent():
    """A call that certainly uses 2 threads; checked, so the parent itself is right."""
    res = check_team_call(np.float32, num_threads=2)
    assert res["ok"], f"parent's own team call is wrong: max error {res['max_err']:.3e}"
    assert res["teams_allowed"] and not res["serial_after_fork"]
    return res


def _fork_and_check(child_body, timeout=CHILD_TIMEOUT):
    """forks.fork_and_report, failing the test when the child was killed.
    Returns (exit code, the child's dict or None)."""
    out = fork_and_report(child_body, timeout)
    if out["code"] is None:
        pytest.fail(f"forked child did not finish within {timeout:.0f} s and was killed "
                    f"(an OpenMP team after fork hangs); it reported {out['child']!r}")
    return out["code"], out["child"]


def _child_calls():
    """In the child: team-sized calls of every public function with num_threads=2 (and
    None), each checked against the reference; plus the process facts."""
    checks = [check_team_call(dtype, nt) for dtype in (np.float32, np.float64) for nt in (2, None)]
    table = fastpe.sinusoidal_table(50000, 2, offset=-3, dtype=np.float64, num_threads=2)
    table_ok = bool(np.all(np.abs(table - reference.sinusoidal_table(50000, 2, offset=-3, dtype=np.float64))
                           <= add_tolerance(np.float64, 50000, 0.0)))
    pos = np.arange(20000).reshape(100, 200) * 3 - 7
    enc = fastpe.sinusoidal_encode(pos, 4, num_threads=2)
    enc_ok = bool(np.all(np.abs(enc.astype(np.float64) - reference.sinusoidal_encode(pos, 4))
                         <= add_tolerance(np.float32, 60000, 0.0)))
    return {
        "ok": all(c["ok"] for c in checks) and table_ok and enc_ok,
        "checks": checks,
        "table_ok": table_ok,
        "encode_ok": enc_ok,
        "serial_after_fork": fastpe.show_config(print_out=False)["serial_after_fork"],
        "threads": os_thread_count(),
    }


@needs_fork
@needs_openmp
@fork_warning_ok
def test_os_fork_child_after_team_is_serial_and_correct():
    report = _serial_child_after_team(_child_calls)
    assert report["serial_after_fork"] is True, report


def _serial_child_after_team(child_body):
    """Start a team, fork, run child_body in the child; it must succeed and stay
    on one thread. Returns the child's report."""
    _start_team_in_parent()
    code, report = _fork_and_check(child_body)
    assert code == 0, f"child failed (exit {code}): {report}"
    # Serial means no OpenMP worker threads were created in the child: a forked
    # process starts with one thread and a serial kernel adds none.
    if report["threads"] is not None:
        assert report["threads"] == 1, f"the forked child has {report['threads']} threads: it started a team"
    return report


@needs_fork
@needs_openmp
@fork_warning_ok
def test_show_config_in_forked_child_reports_serial_after_fork():
    _start_team_in_parent()
    assert fastpe.show_config(print_out=False)["serial_after_fork"] is False

    def body():
        before = fastpe.show_config(print_out=False)["serial_after_fork"]
        return {"ok": before is True, "serial_after_fork": before}

    code, report = _fork_and_check(body)
    assert code == 0 and report["serial_after_fork"] is True, (code, report)
    # the parent is unaffected by its child
    assert fastpe.show_config(print_out=False)["serial_after_fork"] is False


@needs_fork
@needs_openmp
@fork_warning_ok
def test_grandchild_of_forked_child_stays_serial():
    """A serial child that forks again: the grandchild inherits serial mode (its
    libgomp state is the same broken copy) and computes correctly."""
    _start_team_in_parent()

    def child():
        inner = _fork_and_check(_child_calls, timeout=CHILD_TIMEOUT / 2)
        code, report = inner
        return {"ok": code == 0 and report["serial_after_fork"] is True, "grandchild": report, "code": code}

    code, report = _fork_and_check(child)
    assert code == 0, f"grandchild check failed: {report}"


@needs_fork
@needs_openmp
@fork_warning_ok
def test_parent_keeps_its_team_after_forking():
    _start_team_in_parent()
    code, _ = _fork_and_check(lambda: {"ok": True})
    assert code == 0
    res = check_team_call(np.float64, num_threads=2)
    assert res["ok"], res
    assert res["serial_after_fork"] is False
    if res["threads"] is not None:
        assert res["threads"] >= 2, "the parent stopped using OpenMP threads after a fork"


@needs_fork
@needs_openmp
@fork_warning_ok
def test_multiprocessing_fork_pool():
    _start_team_in_parent()
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        pending = pool.map_async(pool_job, range(6))
        try:
            results = pending.get(timeout=CHILD_TIMEOUT)
        except multiprocessing.TimeoutError:
            pool.terminate()
            pytest.fail(f"fork-context pool workers did not finish in {CHILD_TIMEOUT:.0f} s (hang after fork)")
    assert len(results) == 6
    for r in results:
        assert r["pid"] != os.getpid()
        assert r["ok"], f"wrong numbers in pool worker {r['pid']}: max error {r['max_err']:.3e}"
        assert r["serial_after_fork"] is True, r
        assert r["threads"] in (None, 1), f"pool worker {r['pid']} has {r['threads']} threads"
    # the parent's result is still right after its workers are gone
    x = team_input(np.float32)
    got = fastpe.add_sinusoidal(x.copy(), offset=TEAM_OFFSETS, num_threads=2)
    assert_within(got, reference.add_sinusoidal(x.copy(), offset=TEAM_OFFSETS),
                  add_tolerance(np.float32, 2100, np.abs(x)), "parent after pool")


@needs_openmp
def test_spawn_child_is_not_serial_only():
    """A spawned interpreter has a fresh OpenMP runtime: it must run teams."""
    _start_team_in_parent()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        pending = pool.apply_async(check_team_call, (np.float32, 2, 3))
        try:
            r = pending.get(timeout=120)
        except multiprocessing.TimeoutError:
            pool.terminate()
            pytest.fail("spawn-context child did not answer in 120 s")
    assert r["pid"] != os.getpid()
    assert r["ok"], f"spawned child computed wrong numbers: max error {r['max_err']:.3e}"
    assert r["serial_after_fork"] is False, "a spawned child must not be serial-only"
    assert r["teams_allowed"] is True, "the spawned child may not start a team"
    if r["threads"] is not None and not os.environ.get("OMP_THREAD_LIMIT"):
        assert r["threads"] >= 2, f"the spawned child ran with {r['threads']} thread(s): no OpenMP team"


_FORK_BEFORE_TEAM = r"""
import json
import numpy as np
import fastpe
from forks import fork_and_report
from processes import check_team_call
# only serial work before the fork: fastpe never started a team in this process
small = fastpe.add_sinusoidal(np.zeros((4, 8)), num_threads=2)
print(json.dumps(fork_and_report(lambda: check_team_call(np.float32, 2, 1), 60)))
"""


@needs_fork
@needs_openmp
def test_regression_child_forked_before_any_fastpe_team_is_serial():
    """Whether a team ran in the parent is not fastpe's to know (another library
    may have run one on the same runtime): a child forked before fastpe's
    first team is serial too, and correct."""
    child = forked_child_report(_FORK_BEFORE_TEAM)
    assert child["serial_after_fork"] is True and child["teams_allowed"] is False, child
    if child["threads"] is not None:
        assert child["threads"] == 1, child


@pytest.mark.slow
@needs_fork
@needs_openmp
def test_premise_libgomp_child_hangs_without_serial_mode():
    """Why fastpe needs the fork rule: a forked child that enters a 2-thread
    parallel region anyway (the bandwidth probe's kernel, which takes its team
    size as given) never returns (GNU libgomp). Skipped where the runtime
    survives fork (e.g. LLVM's libomp). Runs in a separate interpreter, child
    killed after 10 s."""
    code = r"""
import json, os
import numpy as np
import fastpe
from forks import wait_child
from processes import check_team_call
check_team_call(np.float32, 2)
pid = os.fork()
if pid == 0:
    fastpe._kernels.probe(np.zeros(1 << 20), 1.0, True, 2)
    os._exit(0)
code, elapsed = wait_child(pid, 10)
print(json.dumps({"code": code, "elapsed": elapsed}))
"""
    res = run_python(code, timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    if out["code"] == 0:
        pytest.skip("this OpenMP runtime runs teams in a forked child: serial mode is only a precaution here")
    assert out["code"] is None, f"child without serial mode crashed instead of hanging: {out}"


def _child_common_call():
    """In the child: a team-sized common call (scalar offset, default threads),
    which takes the compiled fast path, checked against the reference."""
    from fastpe import _frontdoor

    x = team_input(np.float32, seed=3)
    before = _frontdoor.sinusoid_calls()
    got = fastpe.add_sinusoidal(x.copy(), offset=11)
    expected = reference.add_sinusoidal(x.copy(), offset=11)
    tol = add_tolerance(np.float32, 11 + x.shape[-2], np.abs(x.astype(np.float64)))
    return {
        "ok": bool(np.all(np.abs(got.astype(np.float64) - expected.astype(np.float64)) <= tol)),
        "fast_path": _frontdoor.sinusoid_calls() == before + 1,
        "threads": os_thread_count(),
    }


@needs_fork
@needs_openmp
@fork_warning_ok
def test_fast_path_in_forked_child_after_team_is_serial_and_correct():
    """The fast path takes its team size from _runtime.resolve_threads, so the fork rule holds for it too."""
    report = _serial_child_after_team(_child_common_call)
    assert report["fast_path"], report


_IMPORT_IN_CHILD = r"""
import json, sys
from forks import fork_and_report


def child():
    import numpy as np
    from processes import check_team_call
    return check_team_call(np.float32, 2, 2)


out = fork_and_report(child, 60)
assert "fastpe" not in sys.modules, "the parent imported fastpe"
print(json.dumps(out))
"""


@needs_fork
@needs_openmp
def test_fastpe_first_imported_in_a_forked_child_runs_teams():
    """The documented limit of the fork rule (docs/threads.rst): a fork made
    before fastpe's import is invisible to it, so a child that imports fastpe
    first (its parent never did, nor ran OpenMP) is not serial-only."""
    child = forked_child_report(_IMPORT_IN_CHILD)
    assert child["serial_after_fork"] is False and child["teams_allowed"] is True, child
