"""Secure evaluation of the encrypted cross-validation models: encrypted scores, encrypted comparisons,
and only agreed aggregates, switched to the researcher's own key.

Steps (each timed in `SecureEvaluation.seconds`)
-------------------------------------------------
1. rows. Every hospital encrypts its rows once more, densely, in the evaluation layout
   (mpclr.lr.eval_layout): each row in the lane of the fold that tests it (in every copy of it where a
   fold fits a lane several times), as the standardized features divided by D = 2R (with the training's
   mean and std) and the label. The server adds the hospitals' ciphertexts (each has zeros where it holds
   no row). 49,152 x 10 takes 6 ciphertexts per column instead of the training layout's 10 copies of
   every row.
   rotation_keys: the collective Galois keys of the final rotate-and-sums (m, 2m, ... per group).
2. average_models: a weight ciphertext holds its model's weight in every slot of its lane, each slot with
   its own CKKS noise; one collective refresh replaces each slot by its lane's mean (a rotate-and-sum
   the refresh applies to its exact integers: no key, no level). Each fold model is then one weight
   vector, the one `EncryptedCV.decrypt_models` reports, and identical rows get identical scores.
   scores: s / D = sum_j x_j W_j + [row] W_0 / D, slot by slot with the weight ciphertexts (same group
   layout, so no rotation): one level, one relinearization per ciphertext (a block shared by two groups
   takes a second product and a mask), then a plaintext product by 2^-10: the rows are encrypted 2^10
   larger, so this divides the product's noise (up to 2^13 in the coefficients: the rows' encryption
   noise times the weights, over the features) down to a rescale's rounding. They are not refreshed: a
   refresh's smudging (sized to hide the noise it refreshes, README "Smudging and masks") would blur
   every score by about the transition's width; the first comparison cycle starts at their level.
3. comparison passes. For thresholds theta (per fold and copy), x = (s - theta) / D lies in [-1, 1];
   h = (1 + F(x)) / 2 with the composite sign F of mpclr.lr.comparison, refreshed (projected on the reals)
   between cycles; then
   per fold and threshold A = sum h (rows above) and B = sum y h (positives above): the label product
   takes one level, a rotate-and-sum the positions of a copy, and a plaintext mask keeps exactly the
   agreed counts (one level), packed into as few ciphertexts as possible. Comparisons run in the
   server's worker processes, one per core; the server serves their refreshes with the key holders
   (over a remote transport the workers' requests of one cycle together, in one round).
   - first pass: the cutoff (probability 1/2: score 0) at the fine resolution for the confusion
     matrix, the positives P_k = sum y per fold, and a public grid uniform in predicted probability
     (where a fold fits a lane several times, in the spare copies of the same comparison; elsewhere at
     the coarse resolution);
   - refinement rounds (a fixed, public number and shape): thresholds chosen by the researcher from the
     counts revealed so far, splitting the ROC cells that hold both positives and negatives, encrypted
     by the researcher, so the server never learns where the researcher looks.
4. results. Each packed count ciphertext is key-switched by the key holders to the researcher's own key
   (`Federation.receive`): the server hands out the ciphertext; the shares go to the researcher only.
5. metrics (researcher, in the clear, from counts only): confusion matrix at the cutoff (accuracy,
   sensitivity, specificity, PPV, NPV), the ROC points (FPR, TPR) at every threshold plus (0, 0) and
   (1, 1), the AUC by the trapezoid rule, per fold and mean +/- sd (ddof = 1) across folds.

Error bounds
------------
- Comparison: |F(x) - sign(x)| <= alpha (1e-6) for |x| >= eps, F monotone in [0, 1] inside
  (mpclr.lr.comparison), with every refresh's smudging inside the design (each refresh adds at most 6
  sigma of it to a value: `design_sign`'s noise). The smudging sets the fine resolution: the narrowest
  eps such a design certifies (train, 3 hospitals: 2^-11, D 2^-11 = 0.016 in score units for R = 16;
  2^-10 where a block is shared by two groups, as at paper scale; before issue 12 sized the smudging,
  2^-18). With delta = D eps the transition half-width in score units (coarse: D 2^-8 = 0.125, or the
  fine one if wider), a count at theta is exact after rounding when
  n alpha < 1/2 and at most one row of it scores within delta of theta (that row adds a fraction on its
  own side of 1/2); two or more such rows can round to a neighbouring integer. The researcher sees
  each count's distance to the nearest integer: `suspect_counts` counts those farther than 0.1 (a row
  inside a transition, almost always alone).
- ROC points: TPR(theta) and FPR(theta) are exact under the same condition; otherwise off by at most
  (#positives within delta of theta) / P and (#negatives within delta) / N.
- AUC: the trapezoid over exact ROC points equals the Mann-Whitney AUC except that every
  (positive, negative) pair inside one cell between consecutive thresholds counts 1/2 (ties count 1/2
  in the Mann-Whitney AUC as well). So |AUC_trapezoid - AUC| <= sum_cells p_c n_c / (2 P N), where p_c,
  n_c are the cell's positives and negatives: computable from the revealed counts alone
  (`auc_bound`). Refinement shrinks exactly those cells; cells narrower than 2 delta are not split
  (their pairs are ties or near-ties at the comparison's resolution).
- Scores must satisfy |s| <= R (public `score_bound`, default 16: predicted probabilities within 1.1e-7
  of 0 or 1); beyond it the polynomials diverge and the counts come out out of range or not monotone
  in the threshold, which `checks.counts_consistent` reports.

What is revealed to whom
------------------------
Public to all: the layout, the fold id of every row, the score bound, the cutoff, the grid thresholds,
the number of refinement rounds and of thresholds per round (so the shape of every pass is fixed in
advance), and the composite polynomials.

| step | server sees | each hospital sees | researcher learns |
|---|---|---|---|
| rows | the hospitals' ciphertexts | its own rows | nothing |
| scores, comparisons | ciphertexts only | refresh requests (c1 halves) | nothing |
| rotation keys | key shares (RLWE samples) | nothing new | nothing |
| refinement thresholds | ciphertexts (researcher's encryption) | nothing | its own choice |
| results | the counts' ciphertexts (it hands them out) | key-switch requests (c1) | see below |
| testing only | ciphertexts | decryption shares | every test score |

The researcher learns, per fold: P_k (positives) and, at every threshold of every pass, the number of
rows and of positives scoring above it: the confusion matrix at the cutoff and the ROC points, nothing
else (the other slots of each decrypted ciphertext are masked to zero; `revealed` lists every
decryption with its count of values). Those ROC points are what the key holders agree to: with
thresholds of its choice the researcher learns how positives and negatives interleave along the
scores, for a small fold down to the order of every row (that is what its exact ROC curve is); the
number of thresholds per fold is the public budget grid + rounds x thresholds per round.
"""

from __future__ import annotations

import heapq
import math
import os
import sys
import time
import traceback

import numpy as np

from ..errors import ParameterError, ProtocolError
from ..protocols.refresh import RefreshProtocol
from ..roles.server import Ciphertext
from ..seal.format import CiphertextData, galois_elt_from_step, pack_ciphertext, unpack_ciphertext
from .blocks import Enc
from .comparison import LadderOps, SignComposite, design_sign, narrowest_transition
from .eval_layout import EvalLayout
from .workers import ProcessPool, _dump, _load, _Pipe

__all__ = ["SecureEvaluation", "evaluate_encrypted_cv", "roc_from_counts", "confusion_metrics"]

FINE_BITS = 18  # the finest transition tried: 2^-18; the refreshes' smudging leaves 2^-11 at train (see above)
# 2^-8: 0.125 in score units for R = 16, 5 refresh cycles instead of 6 for 2^-10. At paper scale the AUC error
# is the grid's (4 + 4 thresholds: 0.0049 with 2^-8, 0.0048 with 2^-10, measured on the clear scores with the
# composites in float64), and counts move by at most 8 rows of about 4,900.
COARSE_BITS = 8
# Folds larger than a lane (one copy per ciphertext): each threshold costs a full comparison pass over the
# scores, so a small public grid is refined where positives and negatives overlap. On the paper-scale study
# (49,152 x 10), max |AUC error| over folds with exact counts: 12 grid points 0.0035, 8 grid points 0.0074,
# 4 + 4 refined 0.0047, 4 + 4 + 4 refined 0.0022; encrypted, 4 + 4 + 4: 0.0024 in 43 s, 4 + 4: 0.0047 in 33 s.
DEFAULT_GRID = 4
DEFAULT_REFINE = 4
# Folds that fit a lane several times get at least this many thresholds per fold and pass (one more
# comparison ciphertext when the copies are fewer): the ROC of a small fold needs every positive and
# negative score told apart, which takes 3 or 4 rounds of 16 on the shared data sets.
SMALL_PER_PASS = 16
_PAD = 0.5  # threshold / D at slots without a row: above every score, so they count 0
# Hospitals encrypt their evaluation rows 2^10 larger, and the scores come down by 2^-10 in a plaintext
# product (one level): that divides the noise of the scores' product (their encryption noise times the
# weights, summed over the features, up to 2^13) down to a rescale's rounding (2^6), so the first refresh
# after them has little to hide (README, "Smudging and masks").
SCORE_HEADROOM_BITS = 10
# scores are multiplied by 2^7 (by additions) before a testing decryption: their noise (a rescale's rounding,
# below 2^7.5) times 2^7 stays 2^14 under the decryption's smudging (2^29 at train), as for every decryption
_TEST_SCALE_BITS = 7
WEIGHT_BOUND_BITS = 6  # public bound 2^6 on |weight| (the training plan's default), for the masks of the averaging
_MIN_JOBS_FOR_WORKERS = 2


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


# ================================================================================================
# metrics from counts (the researcher's side, in the clear)
def roc_from_counts(thresholds, tp, fp, positives: int, negatives: int) -> dict:
    """ROC points and trapezoid AUC from the positives (tp) and negatives (fp) above each threshold.

    Adds (1, 1) below every threshold and (0, 0) above; auc_bound = sum over cells of p_c n_c / (2 P N)."""
    order = np.argsort(np.asarray(thresholds, dtype=np.float64))
    th = np.asarray(thresholds, dtype=np.float64)[order]
    tp = np.asarray(tp, dtype=np.float64)[order]
    fp = np.asarray(fp, dtype=np.float64)[order]
    TP = np.r_[positives, tp, 0.0]
    FP = np.r_[negatives, fp, 0.0]
    tpr = TP / positives if positives else np.full(TP.shape, np.nan)
    fpr = FP / negatives if negatives else np.full(FP.shape, np.nan)
    auc = float(np.sum((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2.0))
    p_c, n_c = TP[:-1] - TP[1:], FP[:-1] - FP[1:]
    bound = float(np.sum(np.maximum(p_c, 0) * np.maximum(n_c, 0)) / (2.0 * positives * negatives))
    return {
        "thresholds": [None, *th.tolist(), None],
        "fpr": fpr.tolist(),
        "tpr": tpr.tolist(),
        "auc": auc,
        "auc_bound": bound,
    }


def confusion_metrics(tp: int, fp: int, tn: int, fn: int) -> dict:
    def ratio(a, b):
        return float(a / b) if b else None

    return {
        "accuracy": ratio(tp + tn, tp + fp + tn + fn),
        "sensitivity": ratio(tp, tp + fn),
        "specificity": ratio(tn, tn + fp),
        "ppv": ratio(tp, tp + fp),
        "npv": ratio(tn, tn + fn),
    }


class _FoldView:
    """What the researcher knows about one fold: its public size and the counts revealed so far."""

    def __init__(self, fold: int, n: int):
        self.fold, self.n = fold, n
        self.positives: int | None = None
        self.above: dict[float, list] = {}  # theta -> [rows above, positives above]
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
        heaviest (p_c n_c / splits) first, evenly inside each cell."""
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
            lo, hi = edges[i], edges[i + 1]
            out += [float(lo + (hi - lo) * k / (s + 1)) for k in range(1, s + 1)]
        return [t for t in out if t not in self.above]

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
        roc = roc_from_counts(th, tp, fp, P, N)
        out["roc"] = {"thresholds": roc["thresholds"], "fpr": roc["fpr"], "tpr": roc["tpr"]}
        out["auc"] = roc["auc"]
        out["auc_bound"] = roc["auc_bound"]
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


# ================================================================================================
# the comparison engine: runs in the server process or in its worker processes
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

    try:
        init = conn.recv()
        he = Pyfhel()
        he.from_bytes_context(init["context"])
        he.from_bytes_public_key(init["public_key"])
        he.from_bytes_relin_key(init["relin_key"])
        he.from_bytes_rotate_key(init["rotate_key"])
        ops = LadderOps(he, init["primes"], init["ladder"], init["top"], init["slots"])

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
    except BaseException:
        try:
            conn.send(("error", traceback.format_exc()))
        except Exception:
            pass


class _Pool(ProcessPool):
    """Comparison workers: `python -m mpclr.lr.evaluation` processes, fed jobs from a queue; their refresh
    requests are served by the server (this process) while the other workers keep computing."""

    label = "evaluation worker"

    def __init__(self, count: int, init: dict, refresh_bytes, coalesce: bool = False):
        self.busy_seconds = 0.0  # the workers' own computing (waits for refreshes excluded)
        super().__init__("mpclr.lr.evaluation", count, init, refresh_bytes, coalesce)

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


# ================================================================================================
class SecureEvaluation:
    """Secure evaluation of an EncryptedCV's fold models at the server, with the key holders and the
    researcher. `run()` performs every step and returns the JSON-able result of `evaluate_encrypted_cv`.

    score_bound: public R with |score| <= R (the comparison domain is [-2R, 2R]).
    cutoff: predicted probability of the confusion matrix (score logit(cutoff)).
    resolution / roc_resolution: transition half-widths delta in score units of the cutoff pass and of
        the ROC passes (default D 2^-18; ROC: the same where folds fit a lane twice or more, else D 2^-8).
    grid: public grid thresholds per fold where a fold fills a lane (elsewhere max(copies, 16) - 1 beside the
        cutoff); refine_rounds: researcher-chosen rounds (default 4 where folds fit a lane twice or more,
        else 2); refine_thresholds: thresholds per fold and round (default: max(copies, 16) where folds fit
        a lane several times, else 4).
    """

    def __init__(
        self,
        fed,
        cv,
        *,
        score_bound: float = 16.0,
        cutoff: float = 0.5,
        resolution: float | None = None,
        roc_resolution: float | None = None,
        grid: int = DEFAULT_GRID,
        refine_rounds: int | None = None,
        refine_thresholds: int | None = None,
        error: float = 1e-6,
        participants=None,
        workers: int | str = "auto",
    ):
        self.fed, self.cv = fed, cv
        self.server = fed.server
        # key holders of every round: as given, or (None) whoever of them answers, round by round, so
        # a key holder that drops out is left behind while t remain; sized for the set known now
        self._by = None if participants is None else self.server.participants(participants)
        self._setup(fed.ctx, cv.fold_of_row, cv.layout.folds, len(cv.mean), self.server.participants(participants),
                    score_bound=score_bound, cutoff=cutoff, resolution=resolution, roc_resolution=roc_resolution,
                    grid=grid, refine_rounds=refine_rounds, refine_thresholds=refine_thresholds, error=error,
                    workers=workers)
        top = self.ctx.top_level
        self.ops = LadderOps(self.server._he, self.ctx.primes, self.ctx.scale_ladder, top, self.ctx.params.slots)
        self.seconds: dict[str, float] = {}
        self.revealed: list[dict] = []
        self.passes: list[dict] = []
        self.view = {
            k: _FoldView(k, int(n_k)) for k, n_k in enumerate(np.bincount(cv.fold_of_row, minlength=cv.layout.folds))
        }
        self.data: dict[tuple[int, int], Enc] = {}  # (block, column)
        self.scores: dict[int, Enc] = {}  # block -> s / D
        self.labels: dict[tuple[int, int], Enc] = {}  # (block, group) -> y (masked in a shared block), level 2
        self.masks: dict[tuple[int, int], np.ndarray] = {}  # (block, group) -> the group's slots, shared blocks
        self._pool: _Pool | None = None
        self._refreshes = 0
        self._refresh_seconds = 0.0

    @classmethod
    def planned(cls, ctx, fold_of_row, folds: int, features: int, key_holders, **options) -> SecureEvaluation:
        """The evaluation's public shape only, with no federation and no ciphertext: what
        mpclr.lr.manifest counts to make a study's manifest before the study starts."""
        ev = cls.__new__(cls)
        ev.fed = ev.cv = ev.server = ev.ops = None
        ev._by = None
        names = options.pop("participants", None) or list(key_holders)
        ev._setup(ctx, fold_of_row, folds, features, list(names), **options)
        return ev

    def _setup(self, ctx, fold_of_row, folds, features, participants, *, score_bound=16.0, cutoff=0.5,
               resolution=None, roc_resolution=None, grid=DEFAULT_GRID, refine_rounds=None, refine_thresholds=None,
               error=1e-6, workers="auto") -> None:
        """The public shape: layout, composites, passes (checked options)."""
        if not 0.0 < score_bound <= 1e6:
            raise ParameterError(f"parameter score_bound must be positive, got {score_bound!r}")
        if not 0.0 < cutoff < 1.0:
            raise ParameterError(f"parameter cutoff must be a probability in (0, 1), got {cutoff!r}")
        self.ctx = ctx
        self.participants = participants
        self.R = float(score_bound)
        self.D = 2.0 * self.R
        self.cutoff = _logit(cutoff)
        if abs(self.cutoff) >= self.R:
            raise ParameterError(f"the cutoff's score {self.cutoff:.3g} lies outside the score bound {self.R}")
        self.layout = EvalLayout(self.ctx.params.slots, fold_of_row, folds)
        self.features = int(features)
        top = self.ctx.top_level
        proto = RefreshProtocol(self.ctx)
        n = len(self.participants)
        self.refresh_level = proto.min_level(1, n)
        if top - self.refresh_level < 2 or top < 4:
            raise ParameterError(
                f"parameter set {self.ctx.params.name!r} has too few levels for encrypted comparisons "
                f"(top level {top}, refresh level {self.refresh_level}); use the 'train' preset"
            )
        self.small = all(g.copies >= 2 for g in self.layout.groups)
        # scores: a product and a plaintext product below the top, never refreshed
        self.score_level = top - 2
        if self.score_level - self.refresh_level < 2:
            raise ParameterError(
                f"parameter set {self.ctx.params.name!r} has too few levels for encrypted comparisons "
                f"(scores at level {self.score_level}, refresh level {self.refresh_level}); use the 'train' preset"
            )
        self.refresh_noise = self._noise_bound(n)
        if resolution is None:
            middle, last, first = self._design_levels()
            finest = 2.0**-FINE_BITS
            fine = self.D * narrowest_transition(error, middle, last, self.refresh_noise, 0.0, finest, first)
        else:
            fine = float(resolution)
        if roc_resolution is None:
            coarse = fine if self.small else max(fine, self.D * 2.0**-COARSE_BITS)
        else:
            coarse = float(roc_resolution)
        self.fine = self._composite(fine, error)
        self.coarse = self._composite(float(coarse), error)
        self.grid = int(grid)
        self.refine_rounds = (4 if self.small else 2) if refine_rounds is None else int(refine_rounds)
        self.refine_thresholds = refine_thresholds
        self.workers = workers

    def _noise_bound(self, parties: int) -> float:
        """A bound (comparison-domain units, per slot) on the smudging a refresh adds to a value: every
        key holder's Gaussian of sigma 2^refresh_smudging_bits per coefficient is, in a slot, a Gaussian
        of sigma sqrt(parties N / 2) 2^bits / Delta; six of those (exceeded with probability 2e-9 per
        slot). The scores carry only their CKKS noise (below 2^-28) into the first cycle."""
        params = self.ctx.params
        delta = min(self.ctx.scale_ladder[self.refresh_level :])
        return 6.0 * 2.0**params.refresh_smudging * math.sqrt(parties * params.n / 2) / delta

    def _design_levels(self) -> tuple[int, int, int]:
        """(levels of a middle cycle, of the last cycle, of the first cycle): refreshed values start at the
        top, the scores at `score_level`; every cycle ends at the refresh level, the last at level 2."""
        top = self.ctx.top_level
        return top - self.refresh_level, top - 2, self.score_level - self.refresh_level

    def _composite(self, delta: float, error: float) -> SignComposite:
        eps = delta / self.D
        if not 0.0 < eps < 0.25:
            raise ParameterError(f"resolution {delta} must lie in (0, {self.D / 4}) for score bound {self.R}")
        middle, last, first = self._design_levels()
        return design_sign(eps, error, middle, last, self.refresh_noise, 0.0, first_levels=first)

    # ------------------------------------------------------------------ refresh
    def _refresh(
        self, items: list[Enc], sums=None, bound_bits: int = 1, scales=None, purpose: str = "evaluation/comparisons"
    ) -> list[Enc]:
        """One collective refresh round for a batch, each output the real part (x + conj(x)) / 2 of its
        input: the refresh applies the conjugation (Galois element 2N - 1) to the lifted values and the
        masks, with no key switching and no level, so imaginary noise never accumulates across cycles.
        sums[k]: Galois elements input k is rotated-and-summed over first; scales[k]: a public factor."""
        t0 = time.perf_counter()
        conj = 2 * self.ctx.n - 1
        sums = sums or [()] * len(items)
        scales = scales or [1.0] * len(items)
        cts = self.server.refresh_raw(
            [x.ct for x in items],
            [x.level for x in items],
            [[(k, 0.5 * scales[k], (*sums[k], conj))] for k in range(len(items))],
            self._by,
            bound_bits=bound_bits,
            purpose=purpose,
        )
        self._refreshes += 1
        self._refresh_seconds += time.perf_counter() - t0
        return [Enc(ct, self.ctx.top_level) for ct in cts]

    def _elements(self, steps) -> tuple[int, ...]:
        return tuple(galois_elt_from_step(int(step), self.ctx.n) for step in steps)

    def rotation_keys(self) -> None:
        """The collective Galois keys of the final rotate-and-sums (m, 2m, ..., (P / 2) m per group), made
        once per federation (keys already there are skipped). Sums inside a refresh need no key."""
        if "rotation_keys" not in self.seconds:
            t0 = time.perf_counter()
            steps = sorted({step for g in self.layout.groups for step in g.rotate_sum_steps()})
            self.fed.generate_rotation_keys(steps, by=self._by)
            self.seconds["rotation_keys"] = time.perf_counter() - t0

    def _refresh_bytes(self, items):
        fresh = self._refresh([Enc(_load(self.server._he, raw), level) for raw, level in items])
        return [_dump(x) for x in fresh]

    # ------------------------------------------------------------------ step 1: rows
    def encrypt_rows(self) -> None:
        """Every hospital encrypts its rows in the evaluation layout. Needs every hospital (not t key
        holders: their rows are theirs), so a study can call it right after `encrypt_study`, before
        training, and then evaluate with any t key holders even if a hospital drops out meanwhile.
        Done once; `run()` skips it when it has been done."""
        if self.data:
            return
        t0 = time.perf_counter()
        s = self.server
        request = {
            "layout": self.layout.describe(),
            "mean": np.asarray(self.cv.mean, dtype=np.float64).tolist(),
            "std": np.asarray(self.cv.std, dtype=np.float64).tolist(),
            "scale": self.D / 2.0**SCORE_HEADROOM_BITS,
        }
        top = self.ctx.top_level
        blocks = len(self.layout.blocks)
        # every hospital, not just the key holders of this evaluation: a missing one's rows would count
        # as all-zero rows; one that does not answer stops the evaluation with its name
        hospitals = [p.name for p in self.fed.parties]
        data: dict[tuple[int, int], Enc] = {}
        replies = s.call_many("lr.encrypt_eval", {p: request for p in hospitals})  # they encrypt in parallel
        for p in hospitals:
            for b, j, raw in replies[p]["ciphertexts"]:
                key = (int(b), int(j))
                if not 0 <= key[0] < blocks or not 0 <= key[1] <= self.features:
                    raise ProtocolError(f"{p} sent an evaluation ciphertext for an unknown block or column {key}")
                raw = unpack_ciphertext(raw, f"{p}'s evaluation rows")  # checked on the next line
                level = self.ctx.check_ciphertext(CiphertextData.from_bytes(raw, "evaluation rows"), "evaluation rows")
                if level != top:
                    raise ProtocolError(f"{p} sent evaluation rows below the top level")
                ct = self.ctx.load_ciphertext(s._he, raw, "evaluation rows")
                if key in data:
                    s._he.add(data[key].ct, ct)
                else:
                    data[key] = Enc(ct, top)
        missing = [(b, j) for b in range(blocks) for j in range(self.features + 1) if (b, j) not in data]
        if missing:
            raise ProtocolError(f"no hospital sent evaluation rows for block and column {missing[:3]}")
        self.data = data
        self.seconds["encrypt_rows"] = time.perf_counter() - t0

    # ------------------------------------------------------------------ step 2: scores
    def _weights(self) -> dict[tuple[int, int], Enc]:
        raw = getattr(self.cv, "weights", None)
        if not raw:
            trainer = getattr(self.cv, "trainer", None)
            if trainer is None or not trainer.W:
                raise ProtocolError("the fold models have not been trained yet")
            raw = {k: v.ct.to_bytes(compr_mode="none") for k, v in trainer.W.items()}
        return {
            k: Enc(self.ctx.load_ciphertext(self.server._he, bytes(v), "fold model"), self.ctx.top_level)
            for k, v in raw.items()
        }

    def average_models(self, W: dict[tuple[int, int], Enc]) -> dict[tuple[int, int], Enc]:
        """Each weight ciphertext holds its model's weight in every slot of its lane, each slot with its own
        CKKS noise. One refresh round replaces every slot by the mean over its lane (a rotate-and-sum done
        inside the refresh: no key, no level), so each fold model is one weight vector, the one
        `decrypt_models` reports, and rows with identical features get identical scores."""
        t0 = time.perf_counter()
        keys = sorted(W)
        slots = self.ctx.params.slots
        sums, scales = [], []
        for g, _ in keys:
            m = self.layout.groups[g].m
            sums.append(self._elements([m << i for i in range(int(math.log2(slots // m)))]))
            scales.append(m / slots)  # the sum over slots / m copies, back to one weight
        fresh = self._refresh([W[key] for key in keys], sums, bound_bits=WEIGHT_BOUND_BITS, scales=scales,
                              purpose="evaluation/models")
        self.seconds["average_models"] = time.perf_counter() - t0
        return dict(zip(keys, fresh))

    def compute_scores(self) -> None:
        self.rotation_keys()
        W = self.average_models(self._weights())
        t0 = time.perf_counter()
        ops, d = self.ops, self.features
        for b, members in enumerate(self.layout.blocks):
            parts = []
            for mem in members:
                g = mem.group
                dot = ops.dot([(self.data[(b, j)], W[(g, j + 1)]) for j in range(d)])
                occupied = self.layout.occupied(b, group=g).astype(np.float64) * 2.0**SCORE_HEADROOM_BITS / self.D
                score = ops.add(dot, ops.cmul(W[(g, 0)], occupied, dot.level, key=("intercept", b, g)))
                # 2^SCORE_HEADROOM_BITS s / D down to s / D: the product's noise (the rows' encryption noise
                # times the weights, summed over the features) divided away; in a block two groups share,
                # with the mask that keeps each group's rows with its own group's weights
                down = 2.0**-SCORE_HEADROOM_BITS
                if self.layout.shared(b):
                    self.masks[(b, g)] = self.layout.occupied(b, group=g).astype(np.float64)
                    score = ops.cmul(score, self.masks[(b, g)] * down, score.level - 1, key=("scaled mask", b, g))
                else:
                    score = ops.cmul(score, down, score.level - 1)
                parts.append(score)
            # not refreshed: a refresh's smudging would blur every score by about the transition's width,
            # while their CKKS noise is 2^-30; the first comparison cycle starts at the scores' level
            self.scores[b] = ops.down(ops.total(parts), self.score_level)
            for g in self.layout.groups_of(b):
                y = self.data[(b, d)]
                mask = self.masks.get((b, g))
                self.labels[(b, g)] = ops.down(y, 2) if mask is None else ops.cmul(y, mask, 2, key=("mask", b, g))
        self.seconds["scores"] = time.perf_counter() - t0

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
            out.append(Enc(self.server._get(h).ct, h.level))
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
        packer = _Packer(self.ops, self.layout)
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
                        y, mask = self.data[(b, self.features)], self.masks.get((b, grp.index))
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
                "thresholds_per_fold": _thresholds_per_fold([th for _, th in batches]),
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
            he = self.server._he
            init = {
                "context": self.ctx._context_bytes,
                "public_key": self.server.public_key,
                "relin_key": he.to_bytes_relin_key(compr_mode="none"),
                "rotate_key": he.to_bytes_rotate_key(compr_mode="none"),
                "primes": list(self.ctx.primes),
                "ladder": list(self.ctx.scale_ladder),
                "top": self.ctx.top_level,
                "slots": self.ctx.params.slots,
            }
            self._pool = _Pool(n_workers, init, self._refresh_bytes, self.server.network.coalesce_rounds)
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
        he = self.server._he
        return [
            {key: (Enc(_load(he, a[0]), a[1]), Enc(_load(he, b[0]), b[1])) for key, (a, b) in done[i].items()}
            for i in range(len(jobs))
        ]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    # ------------------------------------------------------------------ results to the researcher
    def _reveal(self, name: str, packer: _Packer) -> int:
        total = 0
        for i, (ct, entries) in enumerate(packer.finish()):
            h = self.server._put(ct.ct, self.ctx.params.slots, ct.level)
            try:
                values = self.fed.receive(h, by=self._by, label=f"{name}: counts {i + 1}")
            finally:
                self.server.forget(h)
            kinds: dict[str, int] = {}
            for slot, fold, kind, theta in entries:
                if kind != "positives" and theta is None:
                    kind = "unused (threshold above every score: 0)"
                    self.view[fold].check_zero(float(values[slot]))
                else:
                    self.view[fold].record(kind, theta, float(values[slot]))
                kinds[kind] = kinds.get(kind, 0) + 1
            self.revealed.append(
                {
                    "name": f"{name}: counts {i + 1}",
                    "to": "researcher",
                    "path": "key switch",
                    "values": len(entries),
                    "by_kind": kinds,
                }
            )
            total += len(entries)
        return total

    # ------------------------------------------------------------------ the whole evaluation
    def _refine_budget(self, grp) -> int:
        if self.refine_thresholds is not None:
            return int(self.refine_thresholds)
        return max(grp.copies, SMALL_PER_PASS) if grp.copies > 1 else DEFAULT_REFINE

    def _grid_of(self, grp) -> list[float]:
        return self.grid_thresholds(self.grid if grp.copies == 1 else max(grp.copies, SMALL_PER_PASS) - 1)

    def grid_thresholds(self, size: int) -> list[float]:
        """size thresholds at predicted probabilities t / (size + 1), inside the score bound."""
        out = [_logit(t / (size + 1)) for t in range(1, size + 1)]
        if any(abs(t - self.cutoff) < 1e-12 for t in out):  # the cutoff is counted anyway: shift the grid
            out = [_logit(t / (size + 2)) for t in range(1, size + 2)]
        return [t for t in out if abs(t) < self.R and abs(t - self.cutoff) >= 1e-12][:size]

    def _first_pass(self) -> list[tuple[SignComposite, dict]]:
        """The cutoff (fine resolution) and, where folds fit a lane several times, the grid in the spare
        copies of the same comparison; elsewhere the grid follows at the coarse resolution."""
        first, rest = {}, {}
        for grp in self.layout.groups:
            grid = self._grid_of(grp)
            first.update({k: [self.cutoff, *grid[: grp.copies - 1]] for k in grp.models})
            rest.update({k: grid[grp.copies - 1 :] for k in grp.models})
        batches = [(self.fine, th) for th in self._thresholds_for(first)]
        return batches + [(self.coarse, th) for th in self._thresholds_for(rest)]

    def _refine_shape(self) -> dict[int, int]:
        """Batches per group of every refinement round (public: the same whatever the counts say)."""
        return {grp.index: -(-self._refine_budget(grp) // grp.copies) for grp in self.layout.groups}

    def run(self) -> dict:
        t_start = time.perf_counter()
        traffic0 = self.fed.traffic()
        try:
            self.encrypt_rows()
            self.compute_scores()
            # first pass: the cutoff (fine resolution) and P_k; where folds fit a lane several times the grid
            # fills the spare copies of the same comparison, elsewhere it follows at the coarse resolution
            self.run_pass("cutoff and grid", self._first_pass(), positives=True)
            # refinement rounds: the researcher's thresholds, encrypted, in a fixed public shape
            for r in range(self.refine_rounds):
                per_fold = {}
                for grp in self.layout.groups:
                    budget = self._refine_budget(grp)
                    for k in grp.models:
                        per_fold[k] = self.view[k].refine(budget, -self.R, self.R, self.coarse.transition * self.D)
                chosen = _fill_shape(self.layout, self._refine_shape(), self._thresholds_for(per_fold))
                self.run_pass(f"refinement {r + 1}", [(self.coarse, th) for th in chosen], encrypted=True)
        finally:
            self.close()
        self.seconds["total"] = time.perf_counter() - t_start
        return self.result(traffic0)

    # ------------------------------------------------------------------ output
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
            h = self.server._put(x.ct, self.ctx.params.slots, x.level)
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


def _thresholds_per_fold(batches: list[dict]) -> int:
    """The most thresholds any one fold is compared with in a pass."""
    per_lane: dict[tuple[int, int], int] = {}
    for th in batches:
        for g, t in th.items():
            for j in range(t.shape[0]):
                per_lane[(g, j)] = per_lane.get((g, j), 0) + int(np.sum(~np.isnan(t[j])))
    return max(per_lane.values(), default=0)


def _fill_shape(layout, shape: dict[int, int], batches: list[dict]) -> list[dict]:
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


class _Packer:
    """Places count ciphertexts (level 1, after the rotate-and-sum) into as few ciphertexts as possible
    and masks everything else to zero (level 0), so that a decryption reveals exactly the agreed counts.

    Groups whose folds fill a lane (one copy): every slot of a lane holds the lane's count, so results
    are masked into consecutive blocks of one shared ciphertext, no rotation. Groups with copies: the
    counts sit at position 0 of each copy; up to 1 + log2(P) results share a ciphertext, the i-th rotated
    left by 2^(i-1) m to position P - 2^(i-1) of the copy before (keys of the rotate-and-sum)."""

    def __init__(self, ops: LadderOps, layout: EvalLayout):
        self.ops, self.layout = ops, layout
        self.block = max(g.m for g in layout.groups)
        self.shared: list[tuple[Enc | None, list]] = []
        self.shared_used = 0
        self.own: list[tuple[Enc, list]] = []

    def add(self, group: int, results: list[tuple[Enc, str, list]]) -> None:
        """results: (ciphertext, kind, [(copy, lane, theta)]) of one group."""
        grp = self.layout.groups[group]
        slots = self.layout.slots
        if grp.copies == 1:
            for enc, kind, entries in results:
                if not self.shared or self.shared_used + self.block > slots:
                    self.shared.append((None, []))
                    self.shared_used = 0
                base = self.shared_used
                self.shared_used += self.block
                mask = np.zeros(slots)
                acc, table = self.shared[-1]
                for _, j, theta in entries:
                    mask[base + j] = 1.0
                    table.append((base + j, grp.models[j], kind, theta))
                if enc is not None:  # None: counting only (mpclr.lr.manifest)
                    part = self.ops.cmul(enc, mask, 0)
                    self.shared[-1] = (part if acc is None else self.ops.add(acc, part), table)
            return
        offsets = [0] + [1 << i for i in range(int(math.log2(grp.positions)))]
        span = grp.copies * grp.positions
        for start in range(0, len(results), len(offsets)):
            table, acc = [], None
            for (enc, kind, entries), off in zip(results[start : start + len(offsets)], offsets):
                mask = np.zeros(slots)
                for beta, j, theta in entries:
                    slot = ((beta * grp.positions - off) % span) * grp.m + j
                    mask[slot] = 1.0
                    table.append((slot, grp.models[j], kind, theta))
                if enc is not None:
                    part = self.ops.cmul(self.ops.rotate(enc, off * grp.m) if off else enc, mask, 0)
                    acc = part if acc is None else self.ops.add(acc, part)
            self.own.append((acc, table))

    def finish(self) -> list[tuple[Enc, list]]:
        return [(ct, table) for ct, table in self.shared if table] + self.own


def evaluate_encrypted_cv(fed, cv, **options) -> dict:
    """Secure evaluation of every fold model of `cv` (an EncryptedCV with trained models): see
    SecureEvaluation for the options. Returns a JSON-able dict:

    - folds: per fold n, positives, negatives, the confusion matrix at the cutoff and its metrics
      (accuracy, sensitivity, specificity, ppv, npv), roc (thresholds, fpr, tpr, with (1, 1) and (0, 0)),
      auc, auc_bound (its certified grid error), max_fraction (distance of the counts to integers);
    - summary: mean and sd (ddof = 1) of every metric across folds;
    - revealed: every decryption to the researcher: name, number of values, their kinds, path;
    - method, checks, passes (per pass timing, ciphertexts, refresh rounds), seconds, traffic."""
    ev = SecureEvaluation(fed, cv, **options)
    return ev.run()


if __name__ == "__main__":  # pragma: no cover - a comparison worker process
    _worker_main(_Pipe(sys.stdin.buffer, sys.stdout.buffer))
