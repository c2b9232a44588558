"""The fork rule when another library ran OpenMP in the parent.

torch and fastpe share one GNU libgomp when torch's is loaded first (and
each has its own when both are loaded separately): a child forked after a
torch parallel region hung in fastpe's first parallel region, although
fastpe itself had never started a team. Every case here runs in a fresh
interpreter (so the import order and torch's state are the case's own),
forks the way real pipelines do, gives every child a deadline (a hang is
killed and fails the test), and checks the child's result against
fastpe.reference.
"""

import os

import pytest

from fastpe import _kernels
from optional import conformance_import
from processes import forked_child_report, script_report

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    pytest.mark.skipif(not _kernels.openmp_enabled(), reason="fastpe built without OpenMP: no team to hang"),
]

CHILD_TIMEOUT = 60
IMPORTS = {
    "torch first": "import torch\nimport fastpe",
    "fastpe first": "import fastpe\nimport torch",
}


@pytest.fixture(autouse=True, scope="module")
def _torch():
    conformance_import("torch")


def _check_children(reports):
    for report in reports:
        assert report["ok"], f"a forked child computed wrong numbers: {report}"
        assert report["serial_after_fork"] is True and report["teams_allowed"] is False, report
        # Serial: fastpe's call started no OpenMP worker in the child.
        assert report["threads_added"] in (None, 0), f"the forked child started threads: {report}"


_OS_FORK = r"""
import json
{imports}
from forks import fork_and_report
from processes import check_reproducer_call, run_torch_parallel_region
run_torch_parallel_region()
print(json.dumps(fork_and_report(lambda: check_reproducer_call({num_threads}), {timeout})))
"""


@pytest.mark.parametrize("num_threads", [None, 2])
@pytest.mark.parametrize("order", list(IMPORTS))
def test_regression_fork_after_torch_parallel_region(order, num_threads):
    """torch.sin(torch.randn(10**7)); os.fork(); then in the child
    add_sinusoidal(np.zeros((16, 2048, 512), np.float32)) hung for ever."""
    code = _OS_FORK.format(imports=IMPORTS[order], num_threads=num_threads, timeout=CHILD_TIMEOUT)
    _check_children([forked_child_report(code, timeout=4 * CHILD_TIMEOUT)])


_FORK_POOL = r"""
import json, multiprocessing
{imports}
from processes import check_reproducer_call, run_torch_parallel_region
run_torch_parallel_region()
with multiprocessing.get_context("fork").Pool(2) as pool:
    pending = pool.map_async(check_reproducer_call, [None, 2, None, 2])
    try:
        reports = pending.get(timeout={timeout})
    except multiprocessing.TimeoutError:
        pool.terminate()
        reports = None
print(json.dumps({{"reports": reports}}))
"""


@pytest.mark.parametrize("order", list(IMPORTS))
def test_regression_fork_pool_after_torch_parallel_region(order):
    """multiprocessing's "fork" pool after torch ran a parallel region: its
    workers hung in fastpe's first team."""
    out = script_report(_FORK_POOL.format(imports=IMPORTS[order], timeout=CHILD_TIMEOUT), 4 * CHILD_TIMEOUT)
    assert out["reports"] is not None, f"fork-pool workers did not finish within {CHILD_TIMEOUT} s (hang)"
    assert len(out["reports"]) == 4
    _check_children(out["reports"])


_DATALOADER = r"""
import json
{imports}
from torch.utils.data import DataLoader
from processes import ReproducerDataset, run_torch_parallel_region
run_torch_parallel_region()
loader = DataLoader(ReproducerDataset(4, {num_threads}), batch_size=None, num_workers=2,
                    multiprocessing_context="fork", timeout={timeout})
try:
    reports = [dict(r) for r in loader]
except RuntimeError as exc:  # DataLoader's timeout: a worker did not answer
    reports = repr(exc)
print(json.dumps({{"reports": reports}}, default=int))
"""


@pytest.mark.parametrize("num_threads", [None, 2])
@pytest.mark.parametrize("order", list(IMPORTS))
def test_regression_dataloader_workers_after_torch_use(order, num_threads):
    """DataLoader(num_workers=2) workers, forked after the parent used torch,
    calling fastpe under the default team size and num_threads=2: they hung."""
    out = script_report(_DATALOADER.format(imports=IMPORTS[order], num_threads=num_threads, timeout=CHILD_TIMEOUT),
                        4 * CHILD_TIMEOUT)
    assert isinstance(out["reports"], list), f"DataLoader workers did not answer (hang): {out['reports']}"
    assert sorted(r["index"] for r in out["reports"]) == [0, 1, 2, 3]
    _check_children(out["reports"])
