"""Fork safety (the fork rule of fastpe/_runtime.py).

GNU libgomp's worker pool does not survive fork(): a child forked after the
parent ran an OpenMP parallel region hangs in its next parallel region. fastpe
notes when it first starts a team, and a child forked after that runs every
kernel serially, whatever num_threads asks. These tests fork for real (os.fork
and multiprocessing's "fork" context), check the child's numbers against
fastpe.reference inside the child, and never wait for a child without a
timeout: a hang is killed and reported as a failure.

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
from processes import (
    TEAM_OFFSETS,
    check_team_call,
    os_thread_count,
    pool_job,
    run_python,
    team_input,
    wait_child,
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
    assert res["team_started"], "a 2-thread call on a team-sized input did not start a team"
    assert not res["serial_after_fork"]
    return res


def _fork_and_check(child_body, timeout=CHILD_TIMEOUT):
    """Fork; run child_body() in the child (it returns a JSON-able dict with 'ok').

    The child sends the dict through a pipe and exits 0 if ok, 1 if not, 2 on an
    exception. Returns (exit code or None when killed, the child's dict or None)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 2
        try:
            os.close(read_fd)
            try:
                report = child_body()
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                report = {"ok": False, "exception": f"{type(exc).__name__}: {exc}"}
            code = 0 if report.get("ok") else (1 if "exception" not in report else 2)
            with os.fdopen(write_fd, "w") as fh:
                fh.write(json.dumps(report))
        finally:
            os._exit(code)
    os.close(write_fd)
    code, elapsed = wait_child(pid, timeout)
    with os.fdopen(read_fd) as fh:
        text = fh.read()
    report = json.loads(text) if text else None
    if code is None:
        pytest.fail(f"forked child {pid} did not finish within {timeout:.0f} s and was killed "
                    f"(an OpenMP team after fork hangs); it reported {report!r}")
    return code, report


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
    assert r["team_started"] is True, "the spawned child's 2-thread call did not start a team"
    if r["threads"] is not None and not os.environ.get("OMP_THREAD_LIMIT"):
        assert r["threads"] >= 2, f"the spawned child ran with {r['threads']} thread(s): no OpenMP team"


_FORK_BEFORE_TEAM = r"""
import json, os, sys, time
import numpy as np
import fastpe
from processes import check_team_call, wait_child
# only serial work before the fork: no team, no libgomp pool
small = fastpe.add_sinusoidal(np.zeros((4, 8)), num_threads=2)
assert fastpe._runtime._state["team_started"] is False
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    try:
        res = check_team_call(np.float32, 2, 1)
    except BaseException as exc:
        res = {"ok": False, "exception": repr(exc)}
    os.write(w, json.dumps(res).encode())
    os._exit(0)
os.close(w)
code, _ = wait_child(pid, 60)
data = b""
while True:
    chunk = os.read(r, 65536)
    if not chunk:
        break
    data += chunk
print(json.dumps({"code": code, "child": json.loads(data) if data else None}))
"""


@needs_fork
@needs_openmp
def test_child_forked_before_any_team_may_use_threads():
    """Serial mode is only for children of a process that started a team: a child
    forked before that has a usable OpenMP runtime and keeps its threads."""
    res = run_python(_FORK_BEFORE_TEAM, timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["code"] == 0, f"child hung or crashed: {out}"
    child = out["child"]
    assert child["ok"], child
    assert child["serial_after_fork"] is False, child
    assert child["team_started"] is True, child


@pytest.mark.slow
@needs_fork
@needs_openmp
def test_premise_libgomp_child_hangs_without_serial_mode():
    """Why fastpe needs the fork rule: switch serial mode off in a forked child and its
    next team never returns (GNU libgomp). Skipped where the runtime survives
    fork (e.g. LLVM's libomp). Runs in a separate interpreter, child killed after 10 s."""
    code = r"""
import json, os
import numpy as np
import fastpe
from processes import check_team_call, wait_child
check_team_call(np.float32, 2)
pid = os.fork()
if pid == 0:
    fastpe._runtime._state["serial_only"] = False
    res = check_team_call(np.float32, 2)
    os._exit(0 if res["ok"] else 1)
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
    from fastpe import _fastpath

    x = team_input(np.float32, seed=3)
    before = _fastpath.fast_calls()
    got = fastpe.add_sinusoidal(x.copy(), offset=11)
    expected = reference.add_sinusoidal(x.copy(), offset=11)
    tol = add_tolerance(np.float32, 11 + x.shape[-2], np.abs(x.astype(np.float64)))
    return {
        "ok": bool(np.all(np.abs(got.astype(np.float64) - expected.astype(np.float64)) <= tol)),
        "fast_path": _fastpath.fast_calls() == before + 1,
        "threads": os_thread_count(),
    }


@needs_fork
@needs_openmp
@fork_warning_ok
def test_fast_path_in_forked_child_after_team_is_serial_and_correct():
    """The fast path takes its team size from _runtime.resolve_threads, so the fork rule holds for it too."""
    report = _serial_child_after_team(_child_common_call)
    assert report["fast_path"], report
