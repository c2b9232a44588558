"""Fork safety: no OpenMP team in a child forked after one was started.

GNU libgomp keeps its worker threads in a pool; fork() copies the pool's
bookkeeping but not the threads, so the child's next parallel region waits
for workers that do not exist and hangs for ever (PyTorch DataLoader workers
and multiprocessing's "fork" start method are such children). fastpe notes
when it first starts a team; a child forked after that runs every kernel
serially, on the calling thread, whatever num_threads asks. Children made by
"spawn" or "forkserver" start a fresh runtime and are not affected.
"""

import os

_state = {"team_started": False, "serial_only": False}


def note_team_started():
    _state["team_started"] = True


def serial_only():
    """True in a process forked after this one (or an ancestor) ran a team."""
    return _state["serial_only"]


def _after_fork_in_child():
    if _state["team_started"]:
        _state["serial_only"] = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
