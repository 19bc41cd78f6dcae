"""The refinement policy: per fold, the counts revealed so far and where the next thresholds go (cells of
the ROC holding both positives and negatives), and the public shape of every pass."""

from __future__ import annotations

import heapq
import math

import numpy as np

from ..errors import ProtocolError
from .counts import confusion_metrics, roc_from_counts


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _sigmoid(t: float) -> float:
    return 1.0 / (1.0 + math.exp(-t)) if t >= 0 else math.exp(t) / (1.0 + math.exp(t))



class FoldView:
    """What the researcher knows about one fold: its public size and the counts revealed so far."""

    def __init__(self, fold: int, n: int):
        self.fold, self.n = fold, n
        self.positives: int | None = None
        self.above: dict[float, list] = {}  # theta -> [rows above, positives above]
        self.fractions: dict[float, float] = {}  # theta -> the larger distance of its two counts to an integer
        self.max_fraction = 0.0
        self.suspects = 0  # counts farther than 0.1 from an integer: a row inside a transition

    def record(self, kind: str, theta, value: float) -> None:
        count = int(round(value))
        self.max_fraction = max(self.max_fraction, abs(value - count))
        self.suspects += abs(value - count) > 0.1
        if kind == "positives":
            self.positives = count
        else:
            self.above.setdefault(float(theta), [None, None])[0 if kind == "rows" else 1] = count
            self.fractions[float(theta)] = max(self.fractions.get(float(theta), 0.0), abs(value - count))

    def check_zero(self, value: float) -> None:
        self.max_fraction = max(self.max_fraction, abs(value))
        self.suspects += abs(value) > 0.1

    def table(self):
        th = sorted(t for t, (a, b) in self.above.items() if a is not None and b is not None)
        tp = np.array([self.above[t][1] for t in th], dtype=np.float64)
        fp = np.array([self.above[t][0] - self.above[t][1] for t in th], dtype=np.float64)
        return np.asarray(th), tp, fp

    def refine(self, budget: int, low: float, high: float, min_width: float) -> list[float]:
        """Up to `budget` new thresholds splitting the cells that hold both positives and negatives, the
        heaviest (p_c n_c / splits) first, each evenly in predicted probability (as the public grid is):
        where a calibrated model's scores are dense, not across an outer cell's empty tail up to the score
        bound (splitting in score units left a wide-score set's outer cells unresolved: AUC error 0.005,
        now 0.0008; paper scale unchanged, tests/evaluation)."""
        th, tp, fp = self.table()
        edges = np.r_[low, th, high]
        P, N = self.positives, self.n - self.positives
        TP, FP = np.r_[P, tp, 0.0], np.r_[N, fp, 0.0]
        weight = np.maximum(TP[:-1] - TP[1:], 0) * np.maximum(FP[:-1] - FP[1:], 0)
        heap = [(-w, i, 0) for i, w in enumerate(weight) if w > 0 and edges[i + 1] - edges[i] > 2 * min_width]
        heapq.heapify(heap)
        splits: dict[int, int] = {}
        for _ in range(budget):
            if not heap:
                break
            _, i, s = heapq.heappop(heap)
            splits[i] = s + 1
            if (edges[i + 1] - edges[i]) / (s + 2) > 2 * min_width:
                heapq.heappush(heap, (-weight[i] / (s + 2), i, s + 1))
        out = []
        for i, s in sorted(splits.items()):
            lo, hi = _sigmoid(edges[i]), _sigmoid(edges[i + 1])
            out += [_logit(lo + (hi - lo) * k / (s + 1)) for k in range(1, s + 1)]
        return [t for t in out if t not in self.above and low < t < high]

    def summary(self, cutoff: float) -> dict:
        th, tp, fp = self.table()
        P = self.positives
        N = self.n - P
        out = {"fold": self.fold, "n": self.n, "positives": P, "negatives": N}
        if cutoff in self.above:
            rows, pos = self.above[cutoff]
            cm = {"tp": pos, "fp": rows - pos, "tn": N - (rows - pos), "fn": P - pos}
            out["confusion"] = cm
            out["metrics"] = confusion_metrics(cm["tp"], cm["fp"], cm["tn"], cm["fn"])
            # rows inside the cutoff's transition add fractions: the counts' distance to an integer shows it
            out["cutoff_fraction"] = self.fractions.get(cutoff, 0.0)
        roc = roc_from_counts(th, tp, fp, P, N)
        out["roc"] = {"thresholds": roc["thresholds"], "fpr": roc["fpr"], "tpr": roc["tpr"]}
        for key in ("auc", "auc_trapezoid", "auc_bound", "auc_interval"):
            out[key] = roc[key]
        out["thresholds"] = len(th)
        out["max_fraction"] = self.max_fraction
        out["suspect_counts"] = int(self.suspects)
        counts_ok = bool(
            np.all(np.diff(tp) <= 0)
            and np.all(np.diff(fp) <= 0)
            and np.all((tp >= 0) & (tp <= P))
            and np.all((fp >= 0) & (fp <= N))
        )
        out["counts_consistent"] = counts_ok
        return out


def thresholds_per_fold(batches: list[dict]) -> int:
    """The most thresholds any one fold is compared with in a pass."""
    per_lane: dict[tuple[int, int], int] = {}
    for th in batches:
        for g, t in th.items():
            for j in range(t.shape[0]):
                per_lane[(g, j)] = per_lane.get((g, j), 0) + int(np.sum(~np.isnan(t[j])))
    return max(per_lane.values(), default=0)


def fill_shape(layout, shape: dict[int, int], batches: list[dict]) -> list[dict]:
    """The researcher's batches padded to a fixed public shape (shape[group] batches for every group), so
    that the number of comparisons of a round never depends on the data."""
    count = max(shape.values(), default=0)
    if len(batches) > count:  # pragma: no cover - the budget bounds the batches
        raise ProtocolError("internal: more refinement batches than the round's public shape")
    out = []
    for i in range(count):
        th = {}
        for grp in layout.groups:
            if i < shape.get(grp.index, 0):
                th[grp.index] = (
                    batches[i].get(grp.index)
                    if i < len(batches) and grp.index in batches[i]
                    else np.full((grp.lanes, grp.copies), np.nan)
                )
        out.append(th)
    return out
