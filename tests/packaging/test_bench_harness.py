"""The pytest-benchmark suite in bench/ runs against the installed fastpe,
as the README's commands leave it: `pytest bench` from the repository root
(in CI a fresh clone whose fastpe/ folder holds no compiled kernels, so an
import of the sources beside it would fail). Timing is off: this checks
that the harness and its cases run, not their speed."""

import os
import subprocess
import sys

import pytest
from util import REPO_ROOT

SELECTED = ("(test_fused_add and 1x16x64 and (fastpe or numpy or probe or reference)) "
            "or (test_rotary_decode_step and default and not compile)")


def test_the_bench_harness_runs_against_the_installed_package():
    if not os.path.isdir(os.path.join(REPO_ROOT, "bench")):
        pytest.skip("bench/ is not beside the tests (an installed test tree)")
    # -I: like the `pytest` command, nothing puts the current folder (the repository root) on sys.path
    command = [sys.executable, "-I", "-m", "pytest", "bench", "-q", "-p", "no:cacheprovider", "--benchmark-disable",
               "-k", SELECTED]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
