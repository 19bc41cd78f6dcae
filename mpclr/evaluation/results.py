"""What the secure evaluation reveals and reports: the per-fold metrics from the counts the researcher
received, and (in tests only) the scores decrypted. A mixin of mpclr.evaluation.secure.SecureEvaluation."""

from __future__ import annotations

import numpy as np

from ..errors import ProtocolError
from .constants import _TEST_SCALE_BITS


class EvaluationResults:
    """The result of a SecureEvaluation."""

    def result(self, traffic0: dict | None = None) -> dict:
        folds = [self.view[k].summary(self.cutoff) for k in sorted(self.view)]
        summary = {}
        for key in ("accuracy", "sensitivity", "specificity", "ppv", "npv", "auc"):
            vals = [f["auc"] if key == "auc" else f.get("metrics", {}).get(key) for f in folds]
            vals = [v for v in vals if v is not None]
            summary[key] = {
                "mean": float(np.mean(vals)) if vals else None,
                "sd": float(np.std(vals, ddof=1)) if len(vals) > 1 else None,
            }
        traffic = self.fed.traffic()
        delta = {}
        for t, v in traffic["by_type"].items():
            before = (traffic0 or {"by_type": {}})["by_type"].get(t, {"messages": 0, "bytes": 0})
            if v["messages"] > before["messages"]:
                delta[t] = {"messages": v["messages"] - before["messages"], "bytes": v["bytes"] - before["bytes"]}
        max_fraction = max(f["max_fraction"] for f in folds)
        return {
            "method": {
                "score_bound": self.R,
                "cutoff_score": self.cutoff,
                "comparison_domain": [-self.D, self.D],
                "resolution": {"cutoff": self.fine.transition * self.D, "roc": self.coarse.transition * self.D},
                "comparison_error": self.fine.error,
                "composites": {"cutoff": self.fine.describe(), "roc": self.coarse.describe()},
                "refresh_smudging_bits": self.ctx.params.refresh_smudging,
                "grid_thresholds": {g.index: len(self._grid_of(g)) for g in self.layout.groups},
                "thresholds_per_fold": {f["fold"]: f["thresholds"] for f in folds},
                "revealed_per_fold": "the fold's positives, and at every threshold (the cutoff, the public grid, the "
                                     "researcher's refinement) the rows and the positives scoring above it: "
                                     "1 + 2 x thresholds counts; the thresholds' number is public, the "
                                     "refinement's values are the researcher's (encrypted for the server)",
                "auc_estimate": "monotone cubic (PCHIP) through the revealed ROC points inside each cell holding both "
                                "classes, within the cell's range (auc); auc_trapezoid counts half of every cell's "
                                "pairs; auc_bound certifies |auc - exact AUC|",
                "refine_rounds": self.refine_rounds,
                "refine_thresholds_per_round": {g.index: self._refine_budget(g) for g in self.layout.groups},
                "layout": [
                    {
                        "models": list(g.models),
                        "positions": g.positions,
                        "copies": g.copies,
                        "ciphertexts": g.ciphertexts,
                    }
                    for g in self.layout.groups
                ],
                "data_ciphertexts": len(self.layout.blocks),
                "shared_ciphertexts": sum(self.layout.shared(b) for b in range(len(self.layout.blocks))),
            },
            "folds": folds,
            "summary": summary,
            "checks": {
                "max_fraction": max_fraction,
                "suspect_counts": sum(f["suspect_counts"] for f in folds),
                "counts_consistent": all(f["counts_consistent"] for f in folds),
            },
            "revealed": self.revealed,
            "revealed_values": sum(r["values"] for r in self.revealed),
            "passes": self.passes,
            "seconds": dict(self.seconds),
            "traffic": delta,
        }

    # ------------------------------------------------------------------ testing only
    def decrypt_scores_for_testing(self) -> np.ndarray:
        """TESTING ONLY: threshold-decrypts every score the comparisons saw (it reveals them to the
        researcher), in global row order; multiplied by 2^7 first (additions, no level) for precision."""
        if not self.scores:
            raise ProtocolError("compute the scores first")
        rows = np.arange(self.layout.n_rows)
        block, _, first = self.layout.place(rows)
        out = np.full(rows.size, np.nan)
        for b, s in self.scores.items():
            x = s
            for _ in range(_TEST_SCALE_BITS):
                x = self.ops.double(x)
            h = self.server.evaluator.put(x.ct, self.ctx.params.slots, x.level)
            try:
                # at the ciphertext's own level (it is below the top: the scores are not refreshed)
                values = self.fed.decrypt(
                    h, by=self._by, level=None, label=f"TESTING ONLY: scores of block {b}"
                )
            finally:
                self.server.forget(h)
            sel = block == b
            out[sel] = values[first[sel]] * (self.D / 2.0**_TEST_SCALE_BITS)
        return out
