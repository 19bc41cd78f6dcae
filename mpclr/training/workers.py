"""Server-side worker processes for encrypted training: one BlockEngine per core.

Pyfhel holds the GIL, so the server uses processes, as a multi-core server would. Each worker receives
the public and relinearization keys and its shard of data blocks once (or, for rows spooled on disk, where
they are in the spool file, which it reads block by block every iteration); per iteration it gets the
weights and returns its part of the gradient. Workers are the server's own processes (it trusts them with nothing but
ciphertexts and public keys); they talk to it over their stdin/stdout pipes, never to other parties.
They are started as `python -m mpclr.training.workers`, not with multiprocessing, so that scripts and
notebooks without a `__main__` guard are never re-executed in the children.
"""

from __future__ import annotations

import os
from functools import partial

from ..errors import ProtocolError
from ..roles.pipe import expect, run_worker, start, stop
from .blocks import BlockEngine, Enc
from .layout import Layout
from .spool import release_memory


def _load(he, raw: bytes):
    from Pyfhel import PyCtxt

    ct = PyCtxt(pyfhel=he)
    ct.from_bytes(raw, scheme="ckks")
    return ct


def _read_block(fd: int, where: dict, compact: bool, key) -> list[bytes]:
    from .spool import read_at

    return read_at(fd, where[key], compact)


def _dump(x: Enc) -> tuple[bytes, int]:
    return x.ct.to_bytes(compr_mode="none"), x.level


def _worker_main(conn) -> None:  # pragma: no cover - runs in a child process (covered by tests through the pool)
    from Pyfhel import Pyfhel

    init = conn.recv()
    he = Pyfhel()
    he.from_bytes_context(init["context"])
    he.from_bytes_public_key(init["public_key"])
    he.from_bytes_relin_key(init["relin_key"])
    if init.get("rotate_key"):
        he.from_bytes_rotate_key(init["rotate_key"])
    spec = init["layout"]

    def refresh(items):
        conn.send(("refresh", [_dump(x) for x in items]))
        reply = conn.recv()
        return [Enc(_load(he, raw), level) for raw, level in reply]

    engine = BlockEngine(
        he,
        init["primes"],
        init["top"],
        Layout.from_description(spec),
        init["features"],
        init["q_coeffs"],
        init["refresh_level"],
        refresh,
    )
    stream = init.get("spool")
    fd = stream["fd"] if stream else None  # the server's spool file, handed over at start (pass_fds)
    conn.send(("ready", os.getpid()))
    while True:
        msg = conn.recv()
        kind = msg[0]
        if kind == "locations":  # streamed: where this shard's blocks are in the server's spool file
            where = msg[1]
            engine.stream_from(partial(_read_block, fd, where, stream.get("compact", False)),
                               {(g, b) for g, b, _ in where},
                               keep=stream.get("keep", 0))
            conn.send(("ok",))
        elif kind == "block":  # streamed one at a time, no reply: the pipe paces the sender
            _, g, b, j, raws = msg
            for raw in raws:
                engine.add_block(g, b, j, _load(he, raw))
        elif kind == "blocks-done":
            conn.send(("ok",))
        elif kind == "prepare":
            engine.prepare(msg[1])
            release_memory()
            conn.send(("done", {}))
        elif kind == "gradient":
            import time

            t0 = time.perf_counter()
            V = {k: Enc(_load(he, raw), level) for k, (raw, level) in msg[1].items()}
            msg = None  # the weights' bytes (one ciphertext per weight): not held through the gradient
            t1 = time.perf_counter()
            waited = engine.read_wait
            grad = engine.gradient_part(V)
            t2 = time.perf_counter()
            out = {k: _dump(v) for k, v in grad.items()}
            t3 = time.perf_counter()
            conn.send(("done", out, {"load_s": t1 - t0, "compute_s": t2 - t1, "dump_s": t3 - t2,
                                     "read_wait_s": engine.read_wait - waited}))
        elif kind == "stop":
            engine.close()
            conn.send(("ok",))
            return


class ProcessPool:
    """`count` server worker processes (`python -m <module>`), each sent `init` and expected to answer
    ("ready",). Shared by the training and the evaluation workers; both ask the server for collective
    refreshes while they compute, served by `refresh` (list[(bytes, level)] -> list[(bytes, level)]).

    With `coalesce` (a transport whose rounds cost a fixed time, see mpclr.network.Network), refresh
    requests are held until every busy worker waits on one, then served together in one collective
    round: workers given equal shares of the same steps ask at about the same moment, so the study pays
    one round per refresh point instead of one per worker. Without it each request is served as it
    comes, and the other workers keep computing meanwhile."""

    label = "worker"

    def __init__(self, module: str, count: int, init: dict, refresh=None, coalesce: bool = False, pass_fds=()):
        self.refresh = refresh
        self.coalesce = bool(coalesce)
        self._held: dict[int, list] = {}  # worker -> its refresh request, not yet served
        self.procs, self.conns = [], []
        for _ in range(count):
            proc, conn = start(module, pass_fds)
            self.procs.append(proc)
            self.conns.append(conn)
        for conn in self.conns:
            conn.send(init)
        for conn in self.conns:
            self._expect(conn, "ready")

    def _expect(self, conn, kind: str):
        return expect(conn, kind, self.label)

    def _poll(self, busy, timeout: float) -> list[tuple[int, tuple]]:
        """The busy workers' messages other than refresh requests, as (worker, message), waiting at most
        `timeout` on each; a worker's error is raised. Refresh requests are served as they come, or,
        with `coalesce`, together once every busy worker that has not just finished waits on one."""
        out = []
        for w in sorted(busy):
            if w in self._held or not self.conns[w].poll(timeout):
                continue
            msg = self.conns[w].recv()
            if msg[0] == "refresh":
                self._held[w] = msg[1]
                if not self.coalesce:
                    self._serve_held([w])
            elif msg[0] == "error":
                raise ProtocolError(f"{self.label} failed:\n{msg[1]}")
            else:
                out.append((w, msg))
        computing = set(busy) - {w for w, _ in out}
        if self._held and computing <= set(self._held):
            self._serve_held(sorted(self._held))
        return out

    def _serve_held(self, workers: list[int]) -> None:
        items = [x for w in workers for x in self._held[w]]
        fresh = self.refresh(items)
        if len(fresh) != len(items):
            raise ProtocolError(f"internal: {len(items)} ciphertexts sent to refresh, {len(fresh)} came back")
        start = 0
        for w in workers:
            n = len(self._held.pop(w))
            self.conns[w].send(fresh[start : start + n])
            start += n

    def close(self) -> None:
        for conn, proc in zip(self.conns, self.procs):
            stop(proc, conn)
        self.conns, self.procs = [], []


class WorkerPool(ProcessPool):
    label = "training worker"

    def __init__(self, count: int, init: dict, refresh, coalesce: bool = False, pass_fds=()):
        self.timings: list[dict] = []
        super().__init__("mpclr.training.workers", count, init, refresh, coalesce, pass_fds)

    def send_blocks(self, shards: list[list]) -> None:
        """Stream the blocks round-robin, one per message: each worker loads one block while the next
        goes to another, instead of every shard being pickled whole and sent one worker after another."""
        longest = max((len(sh) for sh in shards), default=0)
        for i in range(longest):
            for conn, shard in zip(self.conns, shards):
                if i < len(shard):
                    conn.send(("block", *shard[i]))
        for conn in self.conns:
            conn.send(("blocks-done",))
        for conn in self.conns:
            self._expect(conn, "ok")

    def send_locations(self, shards: list[dict]) -> None:
        """Streamed blocks: each worker gets where its shard's blocks are in the server's spool file (which
        it opened at start) and reads them itself, block by block, every iteration."""
        for conn, where in zip(self.conns, shards):
            conn.send(("locations", where))
        for conn in self.conns:
            self._expect(conn, "ok")

    def _round(self, messages: list, sent=None) -> list[dict]:
        """Send one message per worker, serve their refresh requests, collect their results (`sent` is called
        once every message is sent)."""
        for conn, msg in zip(self.conns, messages):
            conn.send(msg)
        if sent is not None:
            sent()
        results: list[dict | None] = [None] * len(self.conns)
        pending = set(range(len(self.conns)))
        while pending:
            for i, msg in self._poll(pending, 0.005):
                if msg[0] == "done":
                    results[i] = msg[1]
                    if len(msg) > 2:
                        self.timings.append(msg[2])
                    pending.discard(i)
        return results  # type: ignore[return-value]

    def prepare(self, masks_per_worker: list[dict]) -> list[dict]:
        return self._round([("prepare", m) for m in masks_per_worker])

    def gradient(self, V: dict) -> list[dict]:
        """V (weight -> (bytes, level)) is emptied once sent: one ciphertext per weight, not held while the
        workers compute."""
        return self._round([("gradient", V)] * len(self.conns), sent=V.clear)

if __name__ == "__main__":  # pragma: no cover - the worker process
    run_worker(_worker_main)
