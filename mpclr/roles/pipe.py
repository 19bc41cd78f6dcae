"""Length-prefixed pickle frames between a process and the worker processes it starts itself (a server's
training and evaluation workers, a hospital's encryption processes): never between parties, whose
messages go through the network (mpclr.wire, mpclr.network)."""

from __future__ import annotations

import pickle
import select
import struct
import subprocess
import sys

__all__ = ["Pipe", "start"]


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
