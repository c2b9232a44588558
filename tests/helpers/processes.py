"""Processes: fresh interpreters, forked children and their checks.

Numerical comparisons reuse util.py (add_tolerance, assert_within,
contract_atol): this module only adds what the process tests (fork, memory,
setup, the subprocess checks of other folders) need on top, and functions
that must be importable by name in child processes (multiprocessing pickles
functions by module and name, so they cannot live in a test module imported
by pytest's importlib mode). run_python and run_command put this folder on
the child's PYTHONPATH.
"""

import json
import os
import subprocess
import tempfile
import sys

import numpy as np

import fastpe
from fastpe import reference
from util import add_tolerance

# An add_sinusoidal input big enough (>= 2**15 output elements) that
# num_threads=2 really starts an OpenMP team.
TEAM_SHAPE = (4, 1024, 64)
TEAM_OFFSETS = np.array([0, 5, 1000, -7])


def team_input(dtype=np.float32, seed=0):
    x = np.random.default_rng(seed).uniform(-2.0, 2.0, TEAM_SHAPE).astype(dtype)
    assert x.size >= fastpe._runtime.SERIAL_BELOW
    return x


def os_thread_count():
    """Threads of this process according to the kernel, or None where /proc is missing."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


def check_team_call(dtype=np.float32, num_threads=2, seed=0):
    """Run a team-sized add_sinusoidal and compare it with the reference.

    Returns a dict (picklable, so it can come back from a child process) with
    'ok', the max error, and the process facts the fork tests look at."""
    x = team_input(dtype, seed)
    expected = reference.add_sinusoidal(x.copy(), offset=TEAM_OFFSETS)
    got = fastpe.add_sinusoidal(x.copy(), offset=TEAM_OFFSETS, num_threads=num_threads)
    pmax = float(np.abs(TEAM_OFFSETS).max() + TEAM_SHAPE[-2])
    tol = add_tolerance(dtype, pmax, np.abs(x.astype(np.float64)))
    err = np.abs(got.astype(np.float64) - expected.astype(np.float64))
    return {
        "ok": bool(got.shape == expected.shape and np.all(err <= tol)),
        "max_err": float(err.max()),
        "pid": os.getpid(),
        "serial_after_fork": fastpe.show_config(print_out=False)["serial_after_fork"],
        "teams_allowed": fastpe._kernels.teams_allowed(),
        "threads": os_thread_count(),
    }


def pool_job(seed):
    """multiprocessing worker: one team-sized call of each dtype, checked against the reference."""
    results = [check_team_call(dtype, 2, seed) for dtype in (np.float32, np.float64)]
    table = fastpe.sinusoidal_table(40000, 3, offset=seed, num_threads=2)
    expected = reference.sinusoidal_table(40000, 3, offset=seed)
    table_ok = bool(np.all(np.abs(table.astype(np.float64) - expected) <= add_tolerance(np.float32, 40000 + seed, 0.0)))
    return {
        "ok": all(r["ok"] for r in results) and table_ok,
        "max_err": max(r["max_err"] for r in results),
        "pid": os.getpid(),
        "serial_after_fork": results[0]["serial_after_fork"],
        "threads": os_thread_count(),
    }


def run_python(code, timeout=120, env=None):
    """Run code in a fresh interpreter that imports the same fastpe as this one."""
    return run_command([sys.executable, "-c", code], timeout=timeout, env=env)


def script_report(code, timeout=120):
    """Run code in a fresh interpreter (run_python); it must exit 0, and its
    last line of output is a JSON report, returned as a dict."""
    res = run_python(code, timeout=timeout)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def forked_child_report(code, timeout=120):
    """script_report of a script that prints forks.fork_and_report's result:
    the child's own report, once it finished in time (exit 0)."""
    out = script_report(code, timeout)
    assert out["code"] == 0, f"the forked child hung (killed), crashed or failed: {out}"
    return out["child"]


def run_command(argv, timeout=120, env=None):
    """Run argv (a fresh interpreter, the fastpe script) from a temporary
    directory, importing the same fastpe as this process."""
    full_env = dict(os.environ)
    fastpe_root = os.path.dirname(os.path.dirname(os.path.abspath(fastpe.__file__)))
    full_env["PYTHONPATH"] = os.pathsep.join(
        [fastpe_root, os.path.dirname(os.path.abspath(__file__))]
        + ([full_env["PYTHONPATH"]] if full_env.get("PYTHONPATH") else [])
    )
    if env:
        full_env.update(env)
    # `python -c` puts the working directory first on sys.path; from the
    # repository root that would import the uncompiled sources.
    with tempfile.TemporaryDirectory() as cwd:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd)


def rss_bytes():
    """Resident set size of this process, or None where it cannot be read."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


# The call a forked child hung in (a (16, 2048, 512) float32 batch): big
# enough for a team on any machine.
REPRODUCER_SHAPE = (16, 2048, 512)


def check_reproducer_call(num_threads=None):
    """add_sinusoidal on zeros of REPRODUCER_SHAPE, every sequence compared
    with the reference's table; a dict like check_team_call's, with the
    threads the call added to the process (None where /proc is missing)."""
    before = os_thread_count()
    x = fastpe.add_sinusoidal(np.zeros(REPRODUCER_SHAPE, np.float32), num_threads=num_threads)
    after = os_thread_count()
    T, D = REPRODUCER_SHAPE[-2:]
    expected = reference.sinusoidal_table(T, D, dtype=np.float64)
    err = float(np.abs(x.astype(np.float64) - expected).max())
    return {
        "ok": bool(err <= add_tolerance(np.float32, T, 0.0)),
        "max_err": err,
        "pid": os.getpid(),
        "serial_after_fork": fastpe.show_config(print_out=False)["serial_after_fork"],
        "teams_allowed": fastpe._kernels.teams_allowed(),
        "threads_added": None if before is None else after - before,
    }


def run_torch_parallel_region():
    """What the user's parent process did: a torch op large enough for torch's
    OpenMP team (on 2 threads at least)."""
    import torch

    torch.set_num_threads(max(2, torch.get_num_threads()))
    return float(torch.sin(torch.randn(10**7)).sum())


class ReproducerDataset:
    """A map-style dataset whose items run check_reproducer_call in a DataLoader
    worker (num_threads as given) and return its report."""

    def __init__(self, n_items, num_threads):
        self.n_items, self.num_threads = n_items, num_threads

    def __len__(self):
        return self.n_items

    def __getitem__(self, index):
        report = check_reproducer_call(self.num_threads)
        report["index"] = index
        return report
