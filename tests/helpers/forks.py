"""Forked children with a deadline, for the fork tests and their scripts.

It imports nothing of fastpe, so a script can fork before fastpe is ever
imported (the child imports it first). A child that does not finish in time
is killed: a hang fails a test instead of blocking it.
"""

import json
import os
import time


def wait_child(pid, timeout):
    """Wait for a forked child without blocking for ever: poll with WNOHANG,
    SIGKILL it after `timeout` seconds. Returns (exit code or None if killed, elapsed)."""
    start = time.monotonic()
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return os.waitstatus_to_exitcode(status), time.monotonic() - start
        if time.monotonic() - start > timeout:
            try:
                os.kill(pid, 9)
            finally:
                os.waitpid(pid, 0)
            return None, time.monotonic() - start
        time.sleep(0.01)


def fork_and_report(body, timeout):
    """Fork; the child runs body() (a JSON-able dict with 'ok') and sends the
    dict through a pipe, exiting 0 if ok, 1 if not, 2 on an exception (then
    the dict holds it). Returns {"code": the exit code, or None when the
    child was killed at the deadline, "child": its dict or None}.

    The child leaves with os._exit: the parent's other threads, atexit
    handlers and buffers are not its own."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 2
        try:
            os.close(read_fd)
            try:
                report = body()
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                report = {"ok": False, "exception": f"{type(exc).__name__}: {exc}"}
            code = 0 if report.get("ok") else (1 if "exception" not in report else 2)
            with os.fdopen(write_fd, "w") as fh:
                fh.write(json.dumps(report))
        finally:
            os._exit(code)
    os.close(write_fd)
    code, _ = wait_child(pid, timeout)
    with os.fdopen(read_fd) as fh:
        text = fh.read()
    return {"code": code, "child": json.loads(text) if text else None}
