"""Length-prefixed pickle frames between a process and the worker processes it starts itself (a server's
training and evaluation workers, a hospital's encryption processes): never between hospitals, the server
and the researcher, whose messages go through the network (mpclr.wire, mpclr.network).

The life of every such worker, on both ends: `start` it, `expect` its ("ready", pid), send it work;
the worker runs its loop under `run_worker` (a failure goes back as ("error", traceback), which `expect`
raises) until `stop` sends ("stop",), which it answers ("ok",)."""

from __future__ import annotations

import pickle
import select
import struct
import subprocess
import sys
import traceback

from ..errors import ProtocolError

__all__ = ["Pipe", "start", "expect", "stop", "run_worker"]


class Pipe:
    """Frames over a pair of byte streams: a process and its own worker only."""

    def __init__(self, rfile, wfile):
        self.rfile, self.wfile = rfile, wfile

    def send(self, obj) -> None:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        self.wfile.write(struct.pack("<Q", len(data)))
        self.wfile.write(data)
        self.wfile.flush()

    def recv(self):
        head = self.rfile.read(8)
        if len(head) < 8:
            raise EOFError("worker pipe closed")
        (size,) = struct.unpack("<Q", head)
        data = self.rfile.read(size)
        if len(data) < size:
            raise EOFError("worker pipe closed mid-message")
        return pickle.loads(data)

    def poll(self, timeout: float) -> bool:
        return bool(select.select([self.rfile], [], [], timeout)[0])


def start(module: str, pass_fds=()) -> tuple[subprocess.Popen, Pipe]:
    """`python -m module` with a pipe to it (not multiprocessing: scripts and notebooks without a
    `__main__` guard are never re-executed in the child), and the descriptors `pass_fds` open in it."""
    proc = subprocess.Popen([sys.executable, "-m", module], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            pass_fds=tuple(pass_fds))
    return proc, Pipe(proc.stdout, proc.stdin)


def serve_stdio() -> Pipe:
    """The worker's end: its stdin and stdout."""
    return Pipe(sys.stdin.buffer, sys.stdout.buffer)


def expect(conn: Pipe, kind: str, label: str):
    """The worker's next message, which must be a `kind` one; a worker's ("error", traceback) is raised as a
    ProtocolError naming the worker (`label`)."""
    msg = conn.recv()
    if msg[0] == "error":
        raise ProtocolError(f"{label} failed:\n{msg[1]}")
    if msg[0] != kind:
        raise ProtocolError(f"{label} answered {msg[0]!r}, expected {kind!r}")
    return msg


def stop(proc: subprocess.Popen, conn: Pipe, timeout: float = 5.0) -> None:
    """Ask a worker to stop (it answers ("ok",) and ends). One already gone is fine; one that does not end
    within `timeout` seconds is killed."""
    try:
        conn.send(("stop",))
        if conn.poll(timeout):
            conn.recv()
    except (OSError, EOFError, ValueError):
        pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_worker(main) -> None:  # pragma: no cover - runs in a child process (covered through its parent)
    """A worker process's life: `main(conn)` on its pipe to the parent (its stdin and stdout) until it
    returns (on ("stop",)). A closed pipe (the parent is gone) ends it quietly; any other failure goes to
    the parent as ("error", traceback)."""
    conn = serve_stdio()
    try:
        main(conn)
    except EOFError:
        return
    except BaseException:
        try:
            conn.send(("error", traceback.format_exc()))
        except Exception:
            pass
