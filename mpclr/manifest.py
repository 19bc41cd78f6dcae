"""A study's manifest (mpclr.roles.policy.Manifest), computed from its public plan before it starts.

Every count comes from the functions the study's own steps use to shape their requests: the training
layout, the trainer's refresh level, Nesterov terms and gradient refresh points
(mpclr.training.encrypted, mpclr.training.blocks), the secure evaluation's passes, jobs and packing
(`SecureEvaluation.planned`), the researcher's labels. So a study run stays within its manifest:

- exactly, budget by budget, when the coordinator runs as planned (same worker count, same transport),
  except the uploads of rows (lr.encrypt, lr.encrypt_eval): they go in rounds of a bounded size, and the
  budget is what a hospital holding every block would need; one holding part of the rows uses fewer
  (a study whose rows fit in one round, as the small ones, uses exactly one);
- over a transport that coalesces the workers' refreshes into one round (a Flower deployment, where
  `coalesce` is True and the plan counts that), or with fewer workers than planned: the same
  ciphertexts in no more rounds;
- a round redone without a key holder that stopped answering (t-out-of-n) is answered again by the
  others: each requester (server, researcher) redoes at most n - t rounds, so `Manifest.retries` =
  2 (n - t) extra rounds, each within its budget's per-round size. n-out-of-n studies have none.

The fold sizes (rows per fold) shape the secure evaluation's layout: they are public once the hospitals
have assigned their folds (lr.folds), and each hospital counts its own in advance with the secret fold
key it then keeps for the study (`mpclr.training.hospital.fold_sizes`; a hospital's bootstrap `folds` message).
The evaluation's scores are not refreshed and its fold models come lane-averaged from the training's last
refresh, so its refreshes are the rounds between comparison cycles; its rotation keys are made for the
levels below the refresh level only (smaller keys, the same count); the key ceremony includes the check of
the relinearization aggregate. The fold sizes also decide whether the training packs features side by side
(mpclr.training.layout): then its weight ciphertexts are fewer and its sum over features takes rotation keys
of its own, made before training.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .params import Params
from .roles.policy import Budget, Manifest, ceremony_budgets
from .seal.format import galois_elt_from_step
from .training.encrypted import TrainingPlan
from .training.layout import Layout
from .training.party import aggregate_length, block_ciphertexts, upload_rounds

__all__ = ["StudyPlan", "study_manifest"]

SCALING_LABEL = "pooled count, sums and cross-products"  # the researcher's label of the one scaling decryption
MODELS_LABEL = "fold models"


@dataclass(frozen=True)
class StudyPlan:
    """The public plan of an encrypted cross-validation study, as far as its requests to hospitals go.

    etas: the momentum of every iteration (the schedule's length, and its zeros, shape the refreshes);
    evaluation: SecureEvaluation options (score_bound, refine_rounds, ...) or None for no secure
    evaluation; fold_sizes: rows per fold, needed with an evaluation; rotation_steps: rotation keys made
    before the study (Federation(rotations=...), notebook 01); workers / coalesce: the coordinator's
    worker processes and whether its transport coalesces their refreshes (Network.coalesce_rounds);
    hospital_rows: each key holder's rows, in order (empty: an even split). A set whose upload mode is
    "auto" is resolved here, from the plan (mpclr.upload_mode), so the manifest records the concrete mode."""

    key_holders: tuple[str, ...]
    threshold: int
    params: Params
    rows: int
    features: int
    folds: int
    etas: tuple[float, ...]
    degree: int
    bound_bits: int = TrainingPlan.bound_bits
    evaluation: dict | None = None
    fold_sizes: tuple[int, ...] | None = None
    decrypt_models: bool = True
    workers: int | str = "auto"
    coalesce: bool = False
    rotation_steps: tuple[int, ...] = ()
    name: str = "encrypted cross-validation"
    extra: dict = field(default_factory=dict)  # more public facts to show in the manifest
    hospital_rows: tuple[int, ...] = ()

    def __post_init__(self):
        from .upload_mode import resolve

        object.__setattr__(self, "hospital_rows", tuple(int(r) for r in self.hospital_rows))
        if self.params.upload != (mode := resolve(self)):
            object.__setattr__(self, "params", self.params.with_(upload=mode))

    def describe(self) -> dict:
        return {
            "study": self.name,
            "key_holders": list(self.key_holders),
            "threshold": self.threshold,
            "preset": self.params.name,
            "upload": self.params.upload,
            "rows": self.rows,
            "features": self.features,
            "folds": self.folds,
            "fold_sizes": None if self.fold_sizes is None else [int(s) for s in self.fold_sizes],
            "iterations": len(self.etas),
            "degree": self.degree,
            "secure_evaluation": self.evaluation,
            "decrypt_models": self.decrypt_models,
            "coordinator": {"workers": self.workers, "coalesce": self.coalesce},
            **self.extra,
        }


def study_manifest(plan: StudyPlan) -> Manifest:
    from .seal.context import seal_context

    ctx = seal_context(plan.params)
    n, t = len(plan.key_holders), int(plan.threshold)
    d = int(plan.features)
    sizes = plan.fold_sizes if plan.folds > 1 else None  # features side by side where folds are small
    layout = Layout(plan.params.slots, int(plan.rows), int(plan.folds), sizes, d + 1)
    weights = sum(g.final_chunks(d + 1) for g in layout.groups)  # the trained models (mpclr.training.layout)
    budgets = ceremony_budgets(t < n, plan.params.upload == "share-keyed")  # upload keys only where they are used
    # the rows go up in rounds of a bounded size: a hospital holding every block needs the most
    pairs = sum(g.blocks for g in layout.groups)
    budgets += [Budget("lr.folds"), Budget("lr.aggregate"),
                Budget("lr.encrypt", rounds=upload_rounds(pairs, plan.params, block_ciphertexts(layout, d + 1)))]
    budgets.append(_fixed("decrypt.share", SCALING_LABEL, [1], values=aggregate_length(d)))
    budgets += _training(plan, ctx, layout)
    rotation_calls = [list(plan.rotation_steps)] if plan.rotation_steps else []
    training_steps = sorted({s for g in layout.groups for s in layout.segment_steps(g)})
    if training_steps:  # a packed layout's sums over features (EncryptedCV.rotation_keys)
        rotation_calls.append(training_steps)
    if plan.evaluation is not None:
        more, steps = _evaluation(plan, ctx)
        budgets += more
        rotation_calls.append(steps)
    if rotation_calls:
        budgets.append(_rotations(rotation_calls, ctx.n))
    if plan.decrypt_models:
        budgets.append(_fixed("decrypt.share", MODELS_LABEL, [weights], values=weights * plan.params.slots))
    return Manifest(plan.name, tuple(b for b in budgets if b.rounds), 2 * (n - t), plan.describe())


def _fixed(step: str, label: str, rounds: list[int], values: int = 0) -> Budget:
    """A budget for rounds of the given sizes (ciphertexts per round)."""
    return Budget(step, label, len(rounds), sum(rounds), max(rounds, default=0), values)


# ---------------------------------------------------------------------------------------- training
def _training(plan: StudyPlan, ctx, layout: Layout) -> list[Budget]:
    from .training.blocks import refresh_points
    from .training.encrypted import TrainingPlan, refresh_level, worker_count

    tplan = TrainingPlan(np.zeros(plan.degree + 1), [(1.0, float(e)) for e in plan.etas], bound_bits=plan.bound_bits)
    level = refresh_level(ctx, tplan, len(plan.key_holders))
    top = ctx.top_level
    keys = sum(g.chunks(plan.features + 1) for g in layout.groups)
    # the Nesterov update: one round per iteration and one for the final weights, each with one input per
    # weight (_first_update, _update, _materialize_weights)
    update = [keys] * (len(plan.etas) + 1)
    # refreshes inside the gradient (levels running out): per iteration after the first, per group, per
    # engine holding blocks of the group (each engine's requests are its own rounds unless coalesced)
    points = refresh_points(top, level, (plan.degree - 1) // 2)
    pairs = [(g.index, b) for g in layout.groups for b in range(g.blocks)]
    engines = max(worker_count(plan.workers, len(pairs)), 1)
    shards = [pairs[i::engines] for i in range(engines)]
    counts = [[sum(1 for gg, _ in shard if gg == g.index) for g in layout.groups] for shard in shards]
    groups = range(len(layout.groups))
    gradient = [m * c[g] for _ in plan.etas[1:] for g in groups for c in counts if c[g] for m in points]
    per_round = max(gradient, default=0)
    if plan.coalesce and engines > 1:  # requests of several engines may share a round: at most each one's largest
        per_round = sum(max(points, default=0) * max(c) for c in counts)
    return [_fixed("refresh.share", "training/update", update),
            Budget("refresh.share", "training/gradient", len(gradient), sum(gradient), per_round)]


# ---------------------------------------------------------------------------------------- evaluation
def _evaluation(plan: StudyPlan, ctx) -> tuple[list[Budget], list[int]]:
    from .evaluation.refinement import fill_shape
    from .evaluation.secure import SecureEvaluation

    if plan.fold_sizes is None or len(plan.fold_sizes) != plan.folds or sum(plan.fold_sizes) != plan.rows:
        raise ValueError(f"a secure evaluation's manifest needs the rows of each of the {plan.folds} folds "
                         f"(summing to {plan.rows}), got {plan.fold_sizes}")
    fold_of_row = np.repeat(np.arange(plan.folds), np.asarray(plan.fold_sizes, dtype=np.int64))
    options = {"workers": plan.workers, **dict(plan.evaluation)}
    ev = SecureEvaluation.planned(ctx, fold_of_row, plan.folds, plan.features, plan.key_holders, **options)
    comparisons, reveals = [], {}
    first = ev._first_pass()
    comparisons += _pass_rounds(ev, first, plan.coalesce)
    reveals["cutoff and grid"] = [_pass_reveals(ev, first, positives=True)]  # one key-switch round per pass
    reveals["refinement"] = []
    for _ in range(ev.refine_rounds):
        chosen = [(ev.coarse, th) for th in fill_shape(ev.layout, ev._refine_shape(), [])]
        comparisons += _pass_rounds(ev, chosen, plan.coalesce)
        reveals["refinement"].append(_pass_reveals(ev, chosen, positives=False))
    slots = plan.params.slots
    budgets = [
        Budget("lr.encrypt_eval", rounds=upload_rounds(len(ev.layout.blocks), plan.params,
                                                      ev.layout.block_ciphertexts(plan.features))),
        _fixed("refresh.share", "evaluation/comparisons", comparisons),
        Budget("researcher.key"),
    ]
    budgets += [_fixed("pcks.share", name, counts, values=sum(counts) * slots) for name, counts in reveals.items()]
    steps = sorted({step for g in ev.layout.groups for step in g.rotate_sum_steps()})
    return budgets, steps


def _pass_rounds(ev, batches, coalesce: bool) -> list[int]:
    """Ciphertexts of every refresh round one comparison pass asks for (SecureEvaluation.run_pass)."""
    owners = ev._owners(batches)
    items: dict[int, list] = {}
    for i, block in owners:
        items.setdefault(i, []).append((block, None, None))
    n_workers = ev._worker_count(len(owners))
    jobs = [share for share in ev._shares(items, batches, n_workers, coalesce) if share]

    def job_rounds(share) -> list[int]:
        cycles = max(len(batches[i][0].cycles) for i in share)
        return [sum(len(its) for i, its in share.items() if c < len(batches[i][0].cycles)) for c in range(1, cycles)]

    per_job = [job_rounds(share) for share in jobs]
    if n_workers and len(jobs) >= 2 and coalesce:  # the pool serves the jobs' requests of one cycle together
        longest = max(len(r) for r in per_job)
        return [sum(r[c] for r in per_job if c < len(r)) for c in range(longest)]
    return [size for rounds in per_job for size in rounds]


def _pass_reveals(ev, batches, positives: bool) -> int:
    """Count ciphertexts one pass key-switches to the researcher (SecureEvaluation._reveal)."""
    from .evaluation.packer import Packer

    packer = Packer(None, ev.layout)
    for _, g in sorted({(i, g) for i, (_, th) in enumerate(batches) for g in th}):
        grp = ev.layout.groups[g]
        entries = [(beta, j, None) for beta in range(grp.copies) for j in range(grp.lanes)]
        packer.add(g, [(None, "rows", entries), (None, "positives_above", entries)])
    if positives:
        for grp in ev.layout.groups:
            packer.add(grp.index, [(None, "positives", [(0, j, None) for j in range(grp.lanes)])])
    return len(packer.finish())


def _rotations(calls: list[list[int]], n: int) -> Budget:
    """generate_rotation_keys, once per call: keys not made before, 16 per round (Server)."""
    made: set[int] = set()
    rounds = []
    for steps in calls:
        new = []
        for step in steps:
            elt = galois_elt_from_step(int(step), n)
            if elt not in made and elt not in new:
                new.append(elt)
        made.update(new)
        rounds += [len(new[i : i + 16]) for i in range(0, len(new), 16)]
    return _fixed("gkg.share", "rotation keys", rounds)
