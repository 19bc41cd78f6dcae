"""The worker-process plumbing every worker shares (mpclr.roles.pipe): a worker's error is raised in its
parent naming the worker, a worker that answers something else is refused, and `stop` ends a worker that
is gone or hangs instead of waiting on it."""

import os
import subprocess
import sys
import time

import pytest

from mpclr.errors import ProtocolError
from mpclr.roles.pipe import Pipe, expect, stop


def _loopback() -> Pipe:
    r, w = os.pipe()
    return Pipe(os.fdopen(r, "rb"), os.fdopen(w, "wb"))


def test_expect_raises_a_workers_error_and_refuses_the_wrong_answer():
    conn = _loopback()
    conn.send(("ready", 123))
    assert expect(conn, "ready", "test worker") == ("ready", 123)
    conn.send(("error", "Traceback: boom"))
    with pytest.raises(ProtocolError, match="test worker failed:\nTraceback: boom"):
        expect(conn, "ready", "test worker")
    conn.send(("done", []))
    with pytest.raises(ProtocolError, match="test worker answered 'done', expected 'ok'"):
        expect(conn, "ok", "test worker")


def test_stop_kills_a_worker_that_does_not_answer_and_accepts_one_already_gone():
    hung = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    t0 = time.perf_counter()
    stop(hung, Pipe(hung.stdout, hung.stdin), timeout=0.5)
    assert hung.returncode is not None and time.perf_counter() - t0 < 5
    gone = subprocess.Popen([sys.executable, "-c", "pass"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    gone.wait()
    stop(gone, Pipe(gone.stdout, gone.stdin), timeout=0.5)  # a closed pipe: nothing to ask, nothing raised
    assert gone.returncode == 0
