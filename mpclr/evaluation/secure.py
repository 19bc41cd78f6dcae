"""Secure evaluation of the encrypted cross-validation models: encrypted scores, encrypted comparisons,
and only agreed aggregates, switched to the researcher's own key.

Steps (each timed in `SecureEvaluation.seconds`)
-------------------------------------------------
1. rows. Every hospital encrypts its rows once more, densely, in the evaluation layout
   (mpclr.evaluation.layout): each row in the lane of the fold that tests it (in every copy of it where a
   fold fits a lane several times), as the standardized features divided by D = 2R (with the training's
   mean and std) and the label. The server adds the hospitals' ciphertexts (each has zeros where it holds
   no row). 49,152 x 10 takes 6 ciphertexts per column instead of the training layout's 10 copies of
   every row.
   rotation_keys: the collective Galois keys of the final rotate-and-sums (m, 2m, ... per group).
2. scores: a weight ciphertext holds its model's weight in every slot of its lane, the same value in every
   slot: the training's last refresh averaged each weight over its lane's copies (a rotate-and-sum on its
   exact integers; where the training packed features that the evaluation takes one per ciphertext, over its
   segment's copies, broadcast over the lane: mpclr.training.layout), so each fold model is one weight
   vector, the one `EncryptedCV.decrypt_models` reports, and identical rows get identical scores (up to the
   refresh's fresh encryption error, 2^-36).
   (A refresh round that averaged the weights again here cost each hospital 33 MB of the small default
   study and 24 MB at paper scale; it is gone.)
   s / D = sum_j x_j W_j + [row] W_0 / D, slot by slot with the weight ciphertexts (same group
   layout, so no rotation): one level, one relinearization per ciphertext (a block shared by two groups
   takes a second product and a mask), then a plaintext product by 2^-10: the rows are encrypted 2^10
   larger, so this divides the product's noise (up to 2^13 in the coefficients: the rows' encryption
   noise times the weights, over the features) down to a rescale's rounding. They are not refreshed: a
   refresh's smudging (sized to hide the noise it refreshes, README "Smudging and masks") would blur
   every score by about the transition's width; the first comparison cycle starts at their level.
3. comparison passes. For thresholds theta (per fold and copy), x = (s - theta) / D lies in [-1, 1];
   h = (1 + F(x)) / 2 with the composite sign F of mpclr.evaluation.comparison, refreshed (projected on the reals)
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
  (mpclr.evaluation.comparison), with every refresh's smudging inside the design (each refresh adds at most 6
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

import math
import time

import numpy as np

from ..errors import ParameterError, ProtocolError
from ..protocols.refresh import RefreshProtocol
from ..seal.format import CiphertextData, galois_elt_from_step
from ..training.blocks import Enc
from ..training.cv import Upload, upload_together
from ..training.party import blocks_per_round
from ..training.spool import Spool
from ..training.workers import _dump, _load
from .comparison import LadderOps, SignComposite, design_sign, narrowest_transition
from .constants import (
    COARSE_BITS,
    DEFAULT_GRID,
    DEFAULT_REFINE,
    DEFAULT_REFINE_ROUNDS,
    FINE_BITS,
    SCORE_HEADROOM_BITS,
    SMALL_PER_PASS,
    SMALL_REFINE_ROUNDS,
)
from .layout import EvalLayout
from .packer import Packer
from .passes import ComparisonPasses
from .pool import ComparisonPool
from .refinement import FoldView, _logit, fill_shape
from .results import EvaluationResults

__all__ = ["SecureEvaluation", "evaluate_encrypted_cv"]


class SecureEvaluation(ComparisonPasses, EvaluationResults):
    """Secure evaluation of an EncryptedCV's fold models at the server, with the key holders and the
    researcher. `run()` performs every step and returns the JSON-able result of `evaluate_encrypted_cv`.

    score_bound: public R with |score| <= R (the comparison domain is [-2R, 2R]).
    cutoff: predicted probability of the confusion matrix (score logit(cutoff)).
    resolution / roc_resolution: transition half-widths delta in score units of the cutoff pass and of
        the ROC passes (default D 2^-18; ROC: the same where folds fit a lane twice or more, else D 2^-8).
    spool: bytes of the hospitals' rows kept in memory before they go to disk (mpclr.training.spool), or a
        Spool to fill.
    grid: public grid thresholds per fold where a fold fills a lane (elsewhere max(copies, 16) - 1 beside the
        cutoff); refine_rounds: researcher-chosen rounds (default 2 where folds fit a lane twice or more,
        else 1); refine_thresholds: thresholds per fold and round (default: max(copies, 16) where folds fit
        a lane several times, else 6).
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
        spool: int | Spool | None = None,
    ):
        self.fed, self.cv = fed, cv
        self.server = fed.server
        # key holders of every round: as given, or (None) whoever of them answers, round by round, so
        # a key holder that drops out is left behind while t remain; sized for the set known now
        self._by = None if participants is None else self.server.participants(participants)
        self._setup(fed.ctx, cv.fold_of_row, cv.layout.folds, len(cv.mean), self.server.participants(participants),
                    packed=cv.layout.features is not None,
                    score_bound=score_bound, cutoff=cutoff, resolution=resolution, roc_resolution=roc_resolution,
                    grid=grid, refine_rounds=refine_rounds, refine_thresholds=refine_thresholds, error=error,
                    workers=workers)
        top = self.ctx.top_level
        he = self.server.evaluator.he
        self.ops = LadderOps(he, self.ctx.primes, self.ctx.scale_ladder, top, self.ctx.params.slots)
        self.ops.rotate_level = self.refresh_level  # the counts' rotate-and-sums run below it
        self.seconds: dict[str, float] = {}
        self.revealed: list[dict] = []
        self.passes: list[dict] = []
        self.view = {
            k: FoldView(k, int(n_k)) for k, n_k in enumerate(np.bincount(cv.fold_of_row, minlength=cv.layout.folds))
        }
        # (block, column) -> the hospitals' ciphertexts, in memory or on disk (spool: a threshold or a Spool)
        self.data = spool if isinstance(spool, Spool) else Spool(spool, name="evaluation-rows")
        self.scores: dict[int, Enc] = {}  # block -> s / D
        self.labels: dict[tuple[int, int], Enc] = {}  # (block, group) -> y (masked in a shared block), level 2
        self.masks: dict[tuple[int, int], np.ndarray] = {}  # (block, group) -> the group's slots, shared blocks
        self._pool: ComparisonPool | None = None
        self._refreshes = 0
        self._refresh_seconds = 0.0

    @classmethod
    def planned(cls, ctx, fold_of_row, folds: int, features: int, key_holders, **options) -> SecureEvaluation:
        """The evaluation's public shape only, with no federation and no ciphertext: what
        mpclr.manifest counts to make a study's manifest before the study starts."""
        ev = cls.__new__(cls)
        ev.fed = ev.cv = ev.server = ev.ops = None
        ev._by = None
        names = options.pop("participants", None) or list(key_holders)
        ev._setup(ctx, fold_of_row, folds, features, list(names), **options)
        return ev

    def _setup(self, ctx, fold_of_row, folds, features, participants, *, score_bound=16.0, cutoff=0.5,
               resolution=None, roc_resolution=None, grid=DEFAULT_GRID, refine_rounds=None, refine_thresholds=None,
               error=1e-6, workers="auto", packed=True) -> None:
        """The public shape: layout, composites, passes (checked options). packed: the training's layout
        packs features side by side where folds are small (mpclr.training.layout), as the study's does."""
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
        self.layout = EvalLayout(self.ctx.params.slots, fold_of_row, folds, int(features) + 1 if packed else None)
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
        # labels are first used at level 2 (the label product), or 3 where a shared block masks them first:
        # hospitals encrypt them there (fewer primes, fewer bytes)
        self.label_level = 3 if any(self.layout.shared(b) for b in range(len(self.layout.blocks))) else 2
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
        default_rounds = SMALL_REFINE_ROUNDS if self.small else DEFAULT_REFINE_ROUNDS
        self.refine_rounds = default_rounds if refine_rounds is None else int(refine_rounds)
        self.refine_thresholds = refine_thresholds
        self.workers = workers

    def _noise_bound(self, parties: int) -> float:
        """A bound (comparison-domain units, per slot) on the smudging a refresh adds to a value: every
        key holder's Gaussian of sigma 2^refresh_smudging_bits per coefficient (with its shares' rounding on
        the wire: RefreshProtocol.noise_sigma) is, in a slot, a Gaussian of sigma sqrt(parties N / 2) sigma /
        Delta; six of those (exceeded with probability 2e-9 per slot). The scores carry only their CKKS noise
        (below 2^-28) into the first cycle."""
        params = self.ctx.params
        delta = min(self.ctx.scale_ladder[self.refresh_level :])
        sigma = RefreshProtocol(self.ctx).noise_sigma(self.refresh_level)
        return 6.0 * sigma * math.sqrt(parties * params.n / 2) / delta

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
        once per federation (keys already there are skipped). Sums inside a refresh need no key. The
        rotate-and-sums run on the comparisons' results, below the refresh level, so the keys are made for
        levels up to it only: a sixth of the full keys' bytes at 'train'."""
        if "rotation_keys" not in self.seconds:
            t0 = time.perf_counter()
            steps, level = self.rotation_key_set()
            self.fed.generate_rotation_keys(steps, by=self._by, level=level)
            self.seconds["rotation_keys"] = time.perf_counter() - t0

    def rotation_key_set(self) -> tuple[list[int], int]:
        """(steps, level) of the evaluation's rotation keys, for a study that makes them with others
        (Federation.generate_rotation_key_sets) and then sets seconds["rotation_keys"]."""
        return sorted({step for g in self.layout.groups for step in g.rotate_sum_steps()}), self.refresh_level

    def _column(self, block: int, column: int) -> Enc:
        """A column of a data block: the hospitals' ciphertexts of it added up (read from the spool's
        file when the rows are on disk)."""
        he = self.server.evaluator.he
        cts = [self.ctx.load_ciphertext(he, raw, "evaluation rows") for raw in self.data[(block, column)]]
        for ct in cts[1:]:
            he.add(cts[0], ct)
        return Enc(cts[0], self._column_level(column))

    def _column_level(self, column: int) -> int:
        """The level a column arrives at: the labels (column d) where they are first used, the rest the top."""
        return self.label_level if column == self.features else self.ctx.top_level

    def _refresh_bytes(self, items):
        fresh = self._refresh([Enc(_load(self.server.evaluator.he, raw), level) for raw, level in items])
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
        upload_together(self.server, [self.rows_upload()])
        self.rows_done(time.perf_counter() - t0)

    def rows_upload(self) -> Upload:
        """The evaluation rows' upload (lr.encrypt_eval), to run alone (encrypt_rows) or in the rounds of
        the training rows' (encrypt_study's `also`); rows_done() checks it is complete afterwards."""
        request = {
            "layout": self.layout.describe(),
            "mean": np.asarray(self.cv.mean, dtype=np.float64).tolist(),
            "std": np.asarray(self.cv.std, dtype=np.float64).tolist(),
            "scale": self.D / 2.0**SCORE_HEADROOM_BITS,
            "label_level": self.label_level,
        }
        blocks = len(self.layout.blocks)
        # every hospital, not just the key holders of this evaluation: a missing one's rows would count
        # as all-zero rows; one that does not answer stops the evaluation with its name
        hospitals = [p.name for p in self.fed.hospitals]
        data = self.data  # the hospitals' ciphertexts, added up when used

        def take(p, reply):
            what = f"{p}'s evaluation rows"
            for b, j, raw in reply["ciphertexts"]:
                key = (int(b), int(j))
                if not 0 <= key[0] < blocks or key[1] not in self.layout.columns(key[0], self.features):
                    raise ProtocolError(f"{p} sent an evaluation ciphertext for an unknown block or column {key}")
                raw = self.server.uploads.load(raw, what, p)  # every residue checked; share-keyed: switched
                level = self.ctx.level_of(CiphertextData.from_bytes(raw, what).parms_id, what)
                expected = self._column_level(key[1])
                if level != expected:
                    raise ProtocolError(f"{p} sent evaluation rows (column {key[1]}) at level {level}, not {expected}")
                data.add(key, raw)

        per_round = blocks_per_round(self.ctx.params, self.layout.block_ciphertexts(self.features))
        return Upload("lr.encrypt_eval", request, hospitals, per_round, take)

    def rows_done(self, seconds: float = 0.0) -> None:
        blocks = len(self.layout.blocks)
        missing = [(b, j) for b in range(blocks) for j in self.layout.columns(b, self.features)
                   if (b, j) not in self.data]
        if missing:
            raise ProtocolError(f"no hospital sent evaluation rows for block and column {missing[:3]}")
        self.seconds["encrypt_rows"] = seconds

    # ------------------------------------------------------------------ step 2: scores
    def _weights(self) -> dict[tuple[int, int], Enc]:
        raw = getattr(self.cv, "weights", None)
        if not raw:
            trainer = getattr(self.cv, "trainer", None)
            if trainer is None or not trainer.W:
                raise ProtocolError("the fold models have not been trained yet")
            raw = {k: v.ct.to_bytes(compr_mode="none") for k, v in trainer.W.items()}
        return {
            k: Enc(self.ctx.load_ciphertext(self.server.evaluator.he, bytes(v), "fold model"), self.ctx.top_level)
            for k, v in raw.items()
        }

    def compute_scores(self) -> None:
        self.rotation_keys()
        W = self._weights()  # lane-averaged by the training's last refresh (mpclr.training.encrypted)
        t0 = time.perf_counter()
        ops, d = self.ops, self.features
        for b, members in enumerate(self.layout.blocks):
            # one block's ciphertexts at a time (features, or chunks of them in a packed group, then the label)
            columns = {j: self._column(b, j) for j in self.layout.columns(b, d)}
            parts = []
            if self.layout.groups[members[0].group].segments > 1:
                self.scores[b] = self._packed_score(b, members[0].group, W, columns)
                members = ()
            for mem in members:
                g = mem.group
                dot = ops.dot([(columns[j], W[(g, j + 1)]) for j in range(d)])
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
            if parts:
                self.scores[b] = ops.down(ops.total(parts), self.score_level)
            for g in self.layout.groups_of(b):
                y = columns[d]
                mask = self.masks.get((b, g))
                self.labels[(b, g)] = ops.down(y, 2) if mask is None else ops.cmul(y, mask, 2, key=("mask", b, g))
        self.seconds["scores"] = time.perf_counter() - t0

    def _packed_score(self, b: int, g: int, W, columns: dict) -> Enc:
        """s / D of a block whose group packs k features side by side (mpclr.evaluation.layout): chunk c's rows
        times weight ciphertext c, slot by slot (feature c k + f in segment f; the intercept's "1" is the
        server's, a plaintext in segment 0), a rotate-and-sum over the segments that leaves every copy with its
        row's whole score, then 2^-10 (as below), which divides the rotations' key-switching noise away too
        (after the product it would reach the first comparison refresh: measured 2^12.5, above what the
        smudging hides)."""
        ops, grp = self.ops, self.layout.groups[g]
        chunks = self.layout.columns(b, self.features)[:-1]
        dot = ops.dot([(columns[c], W[(g, c)]) for c in chunks])
        occupied = self.layout.occupied(b, copies=grp.copies // grp.segments).astype(np.float64)
        intercept = ops.cmul(W[(g, 0)], occupied * 2.0**SCORE_HEADROOM_BITS / self.D, dot.level, key=("intercept", b))
        ct, he = ops.add(dot, intercept).ct, ops.he  # the training's keys (every level, mpclr.training.cv)
        for step in self.layout.train_layout.segment_steps(self.layout.train_layout.groups[g]):
            ct = he.add(ct, he.rotate(ct, int(step), in_new_ctxt=True), in_new_ctxt=True)
        score = ops.cmul(Enc(ct, dot.level), 2.0**-SCORE_HEADROOM_BITS, dot.level - 1)
        return ops.down(score, self.score_level)

    def _reveal(self, name: str, packer: Packer) -> int:
        """Every packed count ciphertext of a pass switched to the researcher's key, in one round."""
        total = 0
        packed = packer.finish()
        handles = [self.server.evaluator.put(ct.ct, self.ctx.params.slots, ct.level) for ct, _ in packed]
        try:
            received = self.fed.receive_many(handles, by=self._by,
                                             labels=[f"{name}: counts {i + 1}" for i in range(len(handles))])
        finally:
            self.server.forget(*handles)
        for i, ((_, entries), values) in enumerate(zip(packed, received)):
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

    def run(self, progress=None) -> dict:
        """Every step; progress(done, total) after each (rows, scores, then each comparison pass), as the
        trainer reports its iterations."""
        t_start = time.perf_counter()
        traffic0 = self.fed.traffic()
        steps = 3 + self.refine_rounds
        tick = (lambda done: progress(done, steps)) if progress is not None else (lambda done: None)
        try:
            self.encrypt_rows()
            tick(1)
            self.compute_scores()
            tick(2)
            # first pass: the cutoff (fine resolution) and P_k; where folds fit a lane several times the grid
            # fills the spare copies of the same comparison, elsewhere it follows at the coarse resolution
            self.run_pass("cutoff and grid", self._first_pass(), positives=True)
            tick(3)
            # refinement rounds: the researcher's thresholds, encrypted, in a fixed public shape
            for r in range(self.refine_rounds):
                per_fold = {}
                for grp in self.layout.groups:
                    budget = self._refine_budget(grp)
                    for k in grp.models:
                        per_fold[k] = self.view[k].refine(budget, -self.R, self.R, self.coarse.transition * self.D)
                chosen = fill_shape(self.layout, self._refine_shape(), self._thresholds_for(per_fold))
                self.run_pass(f"refinement {r + 1}", [(self.coarse, th) for th in chosen], encrypted=True)
                tick(4 + r)
        finally:
            self.close()
        self.seconds["total"] = time.perf_counter() - t_start
        return self.result(traffic0)

    # ------------------------------------------------------------------ output


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
