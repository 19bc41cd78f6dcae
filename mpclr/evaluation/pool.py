"""The comparison engine and its worker processes: `python -m mpclr.evaluation.pool` runs one worker, fed
jobs by the server, whose refreshes the server serves with the key holders."""

from __future__ import annotations

import os
import time

import numpy as np

from ..errors import ProtocolError
from ..roles.pipe import run_worker
from ..training.blocks import Enc
from ..training.workers import ProcessPool, _dump, _load
from .comparison import LadderOps


class _Comparer:
    """h = (1 + F((s - theta) / D)) / 2 for a job's data blocks, then per group and lane (and copy) the
    sums of h and of y h (rotate-and-sum). Refreshes go through a callback to the server.

    scores[block] is s / D at the top level; labels[(block, group)] is y (times the group's mask in a shared
    block) at level 2; masks[(block, group)] the group's slots of a shared block (absent otherwise)."""

    def __init__(self, ops: LadderOps, refresh):
        self.ops = ops
        self.refresh = refresh
        self.scores: dict[int, Enc] = {}
        self.labels: dict[tuple[int, int], Enc] = {}
        self.masks: dict[tuple[int, int], np.ndarray] = {}

    def run(self, job: dict) -> dict[tuple[int, int], tuple[Enc, Enc]]:
        """A job's parts (one per threshold batch, each with its composite's cycles) advance cycle by
        cycle together, so one refresh serves every part still running: a job pays max(cycles) - 1
        refreshes, not their sum. Returns {(batch, group): (rows above, positives above)}."""
        ops = self.ops
        parts = job["parts"]
        xs = []
        for part in parts:
            row = []
            for block, kind, theta in part["items"]:
                s = self.scores[block]
                row.append(ops.add_plain(s, -np.asarray(theta)) if kind == "plain" else ops.sub(s, theta))
            xs.append(row)
        for i in range(max(len(p["cycles"]) for p in parts)):
            live = [k for k, p in enumerate(parts) if i < len(p["cycles"])]
            if i:
                fresh = self.refresh([x for k in live for x in xs[k]])
                for k in live:
                    xs[k], fresh = fresh[: len(xs[k])], fresh[len(xs[k]) :]
            for k in live:
                cycles = parts[k]["cycles"]
                for j, coef in enumerate(cycles[i]):
                    if i == len(cycles) - 1 and j == len(cycles[i]) - 1:
                        coef = [a / 2.0 for a in coef]  # h = F / 2 + 1/2
                    xs[k] = [ops.chebyshev_odd(x, coef) for x in xs[k]]
        out = {}
        for part, row in zip(parts, xs):
            for g, sums in self._sums(part, [ops.add_plain(x, 0.5) for x in row], job["steps"]).items():
                out[(part["batch"], g)] = sums
        return out

    def _sums(self, part: dict, hs: list[Enc], steps: dict) -> dict[int, tuple[Enc, Enc]]:
        ops = self.ops
        level = hs[0].level
        if level < 2:
            raise ProtocolError(f"internal: comparison landed at level {level}, two levels are needed after it")
        rows: dict[int, list[Enc]] = {}
        pairs: dict[int, list] = {}
        for (block, _, _), h in zip(part["items"], hs):
            for g in part["groups"][block]:
                mask = self.masks.get((block, g))
                if mask is None:
                    rows.setdefault(g, []).append(ops.down(h, level - 1))
                else:
                    rows.setdefault(g, []).append(ops.cmul(h, mask, level - 1, key=("mask", block, g)))
                label = self.labels[(block, g)]  # at level 2: below h when the last cycle used fewer levels
                at = min(level, label.level)
                pairs.setdefault(g, []).append((ops.down(label, at), ops.down(h, at)))
        return {
            g: (ops.rotate_sum(ops.total(rows[g]), steps[g]), ops.rotate_sum(ops.dot(pairs[g]), steps[g])) for g in rows
        }


def _worker_main(conn) -> None:  # pragma: no cover - runs in a child process (covered through the pool)
    from Pyfhel import Pyfhel

    init = conn.recv()
    he = Pyfhel()
    he.from_bytes_context(init["context"])
    he.from_bytes_public_key(init["public_key"])
    he.from_bytes_relin_key(init["relin_key"])
    he.from_bytes_rotate_key(init["rotate_key"])
    ops = LadderOps(he, init["primes"], init["ladder"], init["top"], init["slots"])
    ops.rotate_level = init.get("rotate_level")

    waited = [0.0]

    def refresh(items):
        t0 = time.perf_counter()
        conn.send(("refresh", [_dump(x) for x in items]))
        msg = conn.recv()
        out = [Enc(_load(he, raw), level) for raw, level in msg]
        waited[0] += time.perf_counter() - t0
        return out

    engine = _Comparer(ops, refresh)
    conn.send(("ready", os.getpid()))
    while True:
        msg = conn.recv()
        if msg[0] == "inputs":
            scores, labels, masks = msg[1]
            engine.scores = {b: Enc(_load(he, raw), level) for b, (raw, level) in scores.items()}
            engine.labels = {k: Enc(_load(he, raw), level) for k, (raw, level) in labels.items()}
            engine.masks = dict(masks)
            conn.send(("ok",))
        elif msg[0] == "job":
            job = dict(msg[2])
            job["parts"] = [
                dict(part, items=[(c, kind, theta if kind == "plain" else Enc(_load(he, theta[0]), theta[1]))
                                  for c, kind, theta in part["items"]])
                for part in job["parts"]
            ]
            t0, waited[0] = time.perf_counter(), 0.0
            out = {key: (_dump(a), _dump(b)) for key, (a, b) in engine.run(job).items()}
            conn.send(("done", msg[1], out, time.perf_counter() - t0 - waited[0]))
        elif msg[0] == "stop":
            conn.send(("ok",))
            return


class ComparisonPool(ProcessPool):
    """Comparison workers: `python -m mpclr.evaluation.pool` processes, fed jobs from a queue; their refresh
    requests are served by the server (this process) while the other workers keep computing."""

    label = "evaluation worker"

    def __init__(self, count: int, init: dict, refresh_bytes, coalesce: bool = False):
        self.busy_seconds = 0.0  # the workers' own computing (waits for refreshes excluded)
        super().__init__("mpclr.evaluation.pool", count, init, refresh_bytes, coalesce)

    def inputs(self, payload) -> None:
        for conn in self.conns:
            conn.send(("inputs", payload))
        for conn in self.conns:
            self._expect(conn, "ok")

    def run(self, jobs: list[dict]) -> dict[int, tuple]:
        queue = list(enumerate(jobs))
        busy: dict[int, int] = {}
        results: dict[int, tuple] = {}
        while queue or busy:
            for w in range(len(self.conns)):
                if w not in busy and queue:
                    jid, job = queue.pop(0)
                    self.conns[w].send(("job", jid, job))
                    busy[w] = jid
            for w, msg in self._poll(set(busy), 0.002):
                if msg[0] == "done":
                    results[msg[1]] = msg[2]
                    self.busy_seconds += msg[3]
                    del busy[w]
        return results


if __name__ == "__main__":  # pragma: no cover - a comparison worker process
    run_worker(_worker_main)
