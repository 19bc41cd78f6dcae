"""Comparison passes of the secure evaluation: thresholds into batches, the researcher's encrypted
thresholds, jobs shared among the server's worker processes, and the packed counts revealed. A mixin of
mpclr.evaluation.secure.SecureEvaluation."""

from __future__ import annotations

import os
import time

import numpy as np

from ..roles.evaluator import Ciphertext
from ..seal.format import pack_ciphertext
from ..training.blocks import Enc
from ..training.workers import _dump, _load
from .comparison import SignComposite
from .constants import _MIN_JOBS_FOR_WORKERS, _PAD
from .packer import Packer
from .pool import ComparisonPool, _Comparer
from .refinement import thresholds_per_fold


class ComparisonPasses:
    """The passes and the worker pool of a SecureEvaluation."""

    # ------------------------------------------------------------------ passes
    def _thresholds_for(self, per_fold: dict[int, list[float]]) -> list[dict[int, np.ndarray]]:
        """Batches {group: (lanes, copies) thresholds (NaN: unused)} holding each fold's list: batch b
        holds thresholds b * copies ... of every fold, so one comparison per block serves all groups."""
        batches = []
        for grp in self.layout.groups:
            count = max((len(per_fold.get(k, [])) for k in grp.models), default=0)
            for i, start in enumerate(range(0, count, grp.copies)):
                th = np.full((grp.lanes, grp.copies), np.nan)
                for j, k in enumerate(grp.models):
                    vals = per_fold.get(k, [])[start : start + grp.copies]
                    th[j, : len(vals)] = vals
                if i == len(batches):
                    batches.append({})
                batches[i][grp.index] = th
        return batches

    def _encrypt_thresholds(self, vectors: list[np.ndarray]) -> list[Enc]:
        """The researcher encrypts threshold vectors under the collective key and uploads them."""
        r = self.fed.researcher
        he = self.ctx.pyfhel()
        he.from_bytes_public_key(r.public_key)
        out = []
        for v in vectors:
            ct = he.encryptFrac(np.ascontiguousarray(v, dtype=np.float64), scale=2.0**self.ctx.params.scale_bits)
            slots = self.ctx.params.slots
            reply = r.call(self.server.name, "ct.upload", ciphertext=pack_ciphertext(ct.to_bytes(compr_mode="none")),
                           length=slots)
            h = Ciphertext(int(reply["id"]), slots, int(reply["level"]), float(reply["scale"]))
            out.append(Enc(self.server.evaluator.get(h).ct, h.level))
            self.server.forget(h)
        return out

    def run_pass(
        self, name: str, batches: list[tuple[SignComposite, dict]], *, encrypted: bool = False, positives: bool = False
    ) -> None:
        """Compare every score with each batch's thresholds ({group: (lanes, copies)} in score units, NaN:
        unused) through the batch's composite, and reveal to the researcher, per fold and threshold, the
        rows and the positives above it (and with `positives`, the positives P_k of every fold)."""
        t0 = time.perf_counter()
        refreshes0, refresh_s0 = self._refreshes, self._refresh_seconds
        busy0 = self._pool.busy_seconds if self._pool is not None else 0.0
        owners = self._owners(batches)
        thetas = [{g: np.where(np.isnan(t), _PAD, t / self.D) for g, t in th.items()} for _, th in batches]
        vectors = [self.layout.threshold_vector(block, thetas[i], _PAD) for i, block in owners]
        t1 = time.perf_counter()
        operands = self._encrypt_thresholds(vectors) if encrypted else vectors
        t_enc = time.perf_counter() - t1
        items: dict[int, list] = {}
        for (i, block), op in zip(owners, operands):
            items.setdefault(i, []).append((block, "cipher" if encrypted else "plain", op))
        n_workers = self._worker_count(len(owners))
        shares = self._shares(items, batches, n_workers, self.server.network.coalesce_rounds)
        steps = {g.index: g.rotate_sum_steps() for g in self.layout.groups}
        jobs = []
        for share in shares:
            parts = []
            for i, its in sorted(share.items()):
                comp, th = batches[i]
                groups = {blk: [g for g in self.layout.groups_of(blk) if g in th] for blk, _, _ in its}
                cycles = [[list(c) for c in cycle] for cycle in comp.cycles]
                parts.append({"batch": i, "items": its, "groups": groups, "cycles": cycles})
            if parts:
                jobs.append({"parts": parts, "steps": steps})
        t2 = time.perf_counter()
        outputs = self._run_jobs(jobs, n_workers)
        t3 = time.perf_counter()
        sums: dict[tuple[int, int], list[Enc]] = {}
        for out in outputs:
            for key, (rows, pos) in out.items():
                sums[key] = (
                    [self.ops.add(sums[key][0], rows), self.ops.add(sums[key][1], pos)] if key in sums else [rows, pos]
                )
        packer = Packer(self.ops, self.layout)
        for (i, g), (rows, pos) in sorted(sums.items()):
            th = batches[i][1][g]
            grp = self.layout.groups[g]
            # every (copy, lane) of the batch is decrypted, so the shape of what the key holders switch
            # never depends on the data; unused ones compare with a threshold above all scores (zero)
            entries = [
                (beta, j, None if np.isnan(th[j, beta]) else th[j, beta])
                for beta in range(grp.copies)
                for j in range(grp.lanes)
            ]
            packer.add(g, [(rows, "rows", entries), (pos, "positives_above", entries)])
        if positives:
            for grp in self.layout.groups:
                ys = []
                for b in range(len(self.layout.blocks)):
                    if grp.index in self.layout.groups_of(b):
                        y, mask = self._column(b, self.features), self.masks.get((b, grp.index))
                        ys.append(
                            self.ops.down(y, 1)
                            if mask is None
                            else self.ops.cmul(y, mask, 1, key=("mask", b, grp.index))
                        )
                y = self.ops.rotate_sum(self.ops.total(ys), grp.rotate_sum_steps())
                packer.add(grp.index, [(y, "positives", [(0, j, None) for j in range(grp.lanes)])])
        t4 = time.perf_counter()
        revealed = self._reveal(name, packer)
        t5 = time.perf_counter()
        self.passes.append(
            {
                "name": name,
                "resolutions": sorted({comp.transition * self.D for comp, _ in batches}),
                "composites": [comp.describe() for comp in {id(c): c for c, _ in batches}.values()],
                "thresholds_per_fold": thresholds_per_fold([th for _, th in batches]),
                "comparison_ciphertexts": len(owners),
                "refresh_rounds": self._refreshes - refreshes0,
                "refresh_seconds": self._refresh_seconds - refresh_s0,
                "worker_compute_seconds": (self._pool.busy_seconds - busy0) if self._pool is not None else None,
                "workers": n_workers,
                "revealed_values": revealed,
                "seconds": {
                    "researcher_encrypts_thresholds": t_enc,
                    "comparisons": t3 - t2,
                    "aggregation": t4 - t3,
                    "results_to_researcher": t5 - t4,
                    "total": t5 - t0,
                },
            }
        )
        self.seconds[name] = t5 - t0

    def _owners(self, batches) -> list[tuple[int, int]]:
        """(batch, block) of every comparison ciphertext of a pass: each block holding a group the batch tests."""
        return [
            (i, block)
            for i, (_, th) in enumerate(batches)
            for block in range(len(self.layout.blocks))
            if any(g in th for g in self.layout.groups_of(block))
        ]

    @staticmethod
    def _shares(items: dict[int, list], batches, n_workers: int, coalesce: bool) -> list[dict[int, list]]:
        """The comparison items of a pass dealt into jobs ({batch: items}), one job per worker or more."""
        if n_workers and not coalesce:
            # about two jobs per worker, each of one batch, longest first: a worker's refresh is served
            # while the others compute, and the short jobs balance the load at the end
            chunk = max(1, -(-sum(len(its) for its in items.values()) // (2 * n_workers)))
            shares = [{i: its[k : k + chunk]} for i, its in sorted(items.items()) for k in range(0, len(its), chunk)]
            shares.sort(key=lambda sh: -sum(len(batches[i][0].cycles) * len(its) for i, its in sh.items()))
            return shares
        # over a transport with costly rounds (or in this process), one job per worker, the items dealt
        # round-robin across batches so that every job has about as many per cycle: the workers ask
        # for their refreshes at about the same moment and are served in one round per cycle
        shares = [{} for _ in range(max(n_workers, 1))]
        k = 0
        for i in sorted(items):
            for it in items[i]:
                shares[k % len(shares)].setdefault(i, []).append(it)
                k += 1
        return shares

    def _worker_count(self, items: int) -> int:
        if self.workers == "auto":
            return (os.cpu_count() or 1) if items >= _MIN_JOBS_FOR_WORKERS else 0
        return max(0, int(self.workers))

    def _run_jobs(self, jobs: list[dict], n_workers: int) -> list[dict[int, tuple[Enc, Enc]]]:
        if n_workers == 0 or len(jobs) < 2:
            engine = _Comparer(self.ops, self._refresh)
            engine.scores, engine.labels, engine.masks = self.scores, self.labels, self.masks
            return [engine.run(job) for job in jobs]
        if self._pool is None or len(self._pool.conns) != n_workers:
            self.close()
            he = self.server.evaluator.he
            init = {
                "context": self.ctx._context_bytes,
                "public_key": self.server.public_key,
                "relin_key": he.to_bytes_relin_key(compr_mode="none"),
                "rotate_key": he.to_bytes_rotate_key(compr_mode="none"),
                "primes": list(self.ctx.primes),
                "ladder": list(self.ctx.scale_ladder),
                "top": self.ctx.top_level,
                "slots": self.ctx.params.slots,
                "rotate_level": self.ops.rotate_level,
            }
            self._pool = ComparisonPool(n_workers, init, self._refresh_bytes, self.server.network.coalesce_rounds)
            self._pool.inputs(
                (
                    {b: _dump(x) for b, x in self.scores.items()},
                    {k: _dump(x) for k, x in self.labels.items()},
                    self.masks,
                )
            )
        wire = []
        for job in jobs:
            parts = [dict(p, items=[(b, kind, op if kind == "plain" else _dump(op)) for b, kind, op in p["items"]])
                     for p in job["parts"]]
            wire.append(dict(job, parts=parts))
        done = self._pool.run(wire)
        he = self.server.evaluator.he
        return [
            {key: (Enc(_load(he, a[0]), a[1]), Enc(_load(he, b[0]), b[1])) for key, (a, b) in done[i].items()}
            for i in range(len(jobs))
        ]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    # ------------------------------------------------------------------ results to the researcher
