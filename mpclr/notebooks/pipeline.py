"""The logic of the study steps 01-05: what each notebook calls, between its parameters and its plots.

The steps hand each other, in the run folder:

    federation/        every node's own keystore folder (nodes/<name>/: state, public keys, and the
                       node's secrets in 0600 files, encrypted when MPCLR_KEYSTORE_PASSPHRASE is set in
                       the environment) and federation.json; 01 writes it after the key
                       ceremony, and every later step resumes it (`resume_federation`) and saves it again,
                       so the keys, the session, the message counters and the researcher's audit trail
                       carry on from step to step: no step runs a ceremony of its own
    encrypted_cv/      the encrypted study: public layout, fold ids, scaling, the hospitals' ciphertexts
                       (02), then the encrypted fold models (03)
    <step>.json        each step's record, with a "summary" of flat metrics for batch runs

A hospital's rows never go into the run folder: each step that needs them has every hospital load its
own rows again from the data source (`Study.hospital_data`), as a real site reads its own database.

What is only possible in a simulation is said where it happens: the plaintext twin and scikit-learn
(03, 05) need the pooled rows, which nobody holds in a real study.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass

import numpy as np

from ..errors import DataError, ProtocolError
from ..federation import Federation
from ..keystore import Keystore
from ..keystore_crypto import PASSPHRASE_ENV
from .rundir import RunFolder
from .study import HospitalData, Study

__all__ = [
    "FEDERATION",
    "ENCRYPTED",
    "STUDY_FIGURES",
    "save_federation",
    "resume_federation",
    "study_rotation_steps",
    "study_manifest",
    "keystore_rows",
    "encrypt",
    "aggregate_view",
    "revealed_rows",
    "scaling_rows",
    "data_record",
    "save_encrypted",
    "load_encrypted",
    "fit_twin",
    "train",
    "training_record",
    "plan_rows",
    "evaluate",
    "evaluation_record",
    "compare",
    "phase_times",
    "times_rows",
]

FEDERATION = "federation"
ENCRYPTED = "encrypted_cv"

# The source study's figures (Lu et al., J Med Internet Res 2020;22(12):e22555; hardware not stated).
STUDY_FIGURES = {
    "rows": 49152,
    "features": 10,
    "folds": 10,
    "training_s": 7 * 60.0,
    "evaluation_s": 20 * 60.0,
    "source": "Lu et al. 2020 (threshold HE, client-server; hardware not stated)",
}


def _sha256(data: bytes | None) -> str:
    return hashlib.sha256(data or b"").hexdigest()


# ================================================================================================ federation
def _passphrase() -> str | None:
    """The run folder's keystores are encrypted when the environment gives a passphrase (optional in a
    simulation: every node's folder is on the one machine running it)."""
    return os.environ.get(PASSPHRASE_ENV) or None


def save_federation(fed: Federation, run: RunFolder):
    """Every node to its own keystore folder under <run>/federation/ (see the module docstring)."""
    path = run.path / FEDERATION
    fed.save(path, passphrase=_passphrase())
    return path


def resume_federation(run: RunFolder, study: Study, data: HospitalData | None = None) -> Federation:
    """The federation 01 made (same session, keys and stored ciphertexts), checked against the study.

    With `data`, every hospital also loads its own rows and then its own keystore again: giving a node
    rows resets its fold ids, which its keystore holds since 02 (a real site does the same: its rows
    from its database, its state from its keystore)."""
    root = run.path / FEDERATION
    if not (root / "federation.json").is_file():
        raise DataError(f"run folder {run.path} has no saved federation: run notebooks/01_key_ceremony.ipynb first")
    fed = Federation.load(root, passphrase=_passphrase())
    made_for = ([p.name for p in fed.parties], fed.params.name, fed.threshold)
    wanted = (study.party_names(), study.params().name, study.key_holders_needed)
    if made_for != wanted or fed.params != study.params():
        fed.close()
        raise DataError(
            f"the federation in {root} was made for hospitals {made_for[0]}, parameter set {made_for[1]!r}, "
            f"threshold {made_for[2]}; study.json asks for {wanted[0]}, {wanted[1]!r}, threshold {wanted[2]}: "
            "rerun notebooks/01_key_ceremony.ipynb (and the steps after it)"
        )
    if data is not None:
        for party, part in zip(fed.parties, data.parts):
            party.load_data(part.X, part.y, part.rows)
            party.load(Keystore.open(root / "nodes" / party.name, _passphrase()))
    return fed


def study_manifest(study: Study, data: HospitalData, rotation_steps=(), refine_rounds: int | None = None):
    """What the hospitals agree to answer for the steps 02-05 (mpclr.lr.manifest), agreed in 01 with the
    keys: the scaling decryption, the training's refreshes, the secure evaluation of 04 (with
    `refine_rounds` rounds, the value 04 must be run with), the fold models' decryption of 05, and 01's
    rotation keys. A function of the hospitals (the Federation's `manifest`): each loads its rows and
    counts its rows per fold with the secret fold key it then keeps for the study. A step run again asks
    for more than was agreed and is refused: rerun 01 (new keys, a new manifest) and the steps after it."""
    from ..lr.manifest import StudyPlan
    from ..lr.manifest import study_manifest as make
    from ..lr.twin import momentum_schedule

    model = study.model()

    def agree(parties):
        for party, part in zip(parties, data.parts):
            party.load_data(part.X, part.y, part.rows)
        sizes = sum(np.asarray(p.fold_sizes(study.folds)) for p in parties)
        plan = StudyPlan(
            key_holders=tuple(study.party_names()),
            threshold=study.key_holders_needed,
            params=study.params(),
            rows=data.pooled.n_samples,
            features=data.pooled.n_features,
            folds=study.folds,
            etas=tuple(float(e) for e in momentum_schedule(model.iterations)),
            degree=model.degree,
            evaluation={} if refine_rounds is None else {"refine_rounds": int(refine_rounds)},
            fold_sizes=tuple(int(x) for x in sizes),
            rotation_steps=tuple(int(s) for s in rotation_steps),
            name="notebook study",
        )
        return make(plan)

    return agree


def study_rotation_steps(study: Study, rows: int, extra=()) -> list[int]:
    """The rotations the study's public layout needs (its rotate-and-sums), then any extra ones."""
    from ..lr.layout import Layout

    steps = Layout(study.params().slots, rows, study.folds).rotation_steps()
    return steps + [int(s) for s in extra if int(s) not in steps]


def keystore_rows(root) -> list[dict]:
    """One row per node folder of a saved federation: its files, and which of them are secret (with the
    file mode, 0600 for every secret)."""
    from pathlib import Path

    rows = []
    for folder in sorted(Path(root, "nodes").iterdir()):
        files = sorted(p for p in folder.iterdir() if p.is_file())
        secret = [p for p in files if p.name.startswith("secret-")]
        modes = sorted({oct(p.stat().st_mode & 0o777)[2:] for p in secret})
        rows.append(
            {
                "node": folder.name,
                "folder": f"{FEDERATION}/nodes/{folder.name}/ (mode {oct(folder.stat().st_mode & 0o777)[2:]})",
                "files": len(files),
                "MB": round(sum(p.stat().st_size for p in files) / 1e6, 2),
                "secret files": ", ".join(p.name for p in secret) or "none",
                "secret modes": ", ".join(modes) or "-",
            }
        )
    return rows


# ================================================================================================ 02: data
class _ResearcherTap:
    """The federation, with a record of every value the researcher decrypts: what a step revealed, exactly
    as the researcher received it (not recomputed from the data)."""

    def __init__(self, fed: Federation):
        self._fed = fed
        self.decrypted: list[tuple[str, np.ndarray]] = []

    def __getattr__(self, name):
        return getattr(self._fed, name)

    def decrypt(self, c, by=None, *, label: str = "", level: int | None = 0) -> np.ndarray:
        values = self._fed.decrypt(c, by, label=label, level=level)
        self.decrypted.append((label, np.array(values, dtype=np.float64)))
        return values


def aggregate_view(values, d: int) -> dict:
    """The decrypted aggregate [rows, sums, cross-products (j <= k)] as the researcher reads it: the pooled
    count, the means, the cross-product matrix, and the covariance and correlation matrices they give."""
    from ..lr.party import aggregate_length

    values = np.asarray(values, dtype=np.float64)[: aggregate_length(d)]
    n = values[0]
    sums = values[1 : 1 + d]
    cross = np.zeros((d, d))
    cross[np.triu_indices(d)] = values[1 + d :]
    cross = cross + np.triu(cross, 1).T
    mean = sums / n
    cov = cross / n - np.outer(mean, mean)
    sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    corr = cov / np.outer(sd, sd)
    return {
        "values": int(values.size),
        "pooled_count": float(n),
        "sums": sums,
        "means": mean,
        "cross_products": cross,
        "std": sd,
        "correlation": corr,
    }


def encrypt(fed: Federation, study: Study):
    """Notebook 02's protocol, as mpclr.lr.cv.encrypt_study runs it: fold assignment by each hospital,
    scaling from the encrypted aggregate (the only decryption), rotation keys for the layout (none left
    to make when 01 made them), the hospitals' rows encrypted in the public layout.

    Returns (EncryptedCV, what the researcher decrypted: `aggregate_view` of it plus its label)."""
    from ..lr.cv import encrypt_study
    from ..lr.party import aggregate_values

    tap = _ResearcherTap(fed)
    model = study.model()
    cv = encrypt_study(tap, folds=study.folds, interval=model.interval)
    if len(tap.decrypted) != 1:
        raise ProtocolError(
            f"encrypt_study decrypted {len(tap.decrypted)} results, the pooled aggregate only was expected: "
            f"{[label for label, _ in tap.decrypted]}"
        )
    label, values = tap.decrypted[0]
    view = aggregate_view(aggregate_values(values), len(cv.mean))  # it travels as 2^40 times its values
    view["label"] = label
    if not np.allclose(view["means"], cv.mean, rtol=1e-6, atol=1e-6 * (1 + np.abs(cv.mean).max())):
        raise ProtocolError("the scaling in the encrypted study is not the one the decrypted aggregate gives")
    return cv, view


def revealed_rows(revealed: dict) -> list[dict]:
    """What the one decryption of step 02 gave the researcher, part by part."""
    d = len(revealed["means"])
    return [
        {"part": "pooled row count", "values": 1, "what the researcher derives": f"n = {revealed['pooled_count']:.3f}"},
        {"part": "per-feature sums", "values": d, "what the researcher derives": "the means (sums / n)"},
        {
            "part": "cross-products sum x_j x_k over all rows, j <= k",
            "values": d * (d + 1) // 2,
            "what the researcher derives": "standard deviations, the covariance and correlation matrices, and "
            "from them the step size (largest eigenvalue)",
        },
    ]


def scaling_rows(revealed: dict, cv, names) -> list[dict]:
    """Per feature: the pooled mean and standard deviation every hospital standardizes with."""
    return [{"feature": str(n), "mean": f"{m:.6g}", "std": f"{s:.6g}"} for n, m, s in zip(names, cv.mean, cv.std)]


def _ciphertext_table(cv, data: HospitalData, names: list[str]) -> dict:
    """How many ciphertexts each hospital sent, and their bytes (all at the top level: one size)."""
    layout = cv.layout
    features = cv.features
    size = len(next(iter(cv.blocks.values()))[0])
    per_hospital = {}
    for name, part in zip(names, data.parts):
        blocks = sum(len(layout.blocks_with_rows(g, part.rows)) for g in layout.groups) * features
        constants = len(layout.groups) * features
        per_hospital[name] = {"data": blocks, "constant_term": constants, "bytes": (blocks + constants) * size}
    total_blocks = sum(len(v) for v in cv.blocks.values())
    total_constants = sum(len(v) for v in cv.constants.values())
    if total_blocks != sum(v["data"] for v in per_hospital.values()):
        raise ProtocolError("the encrypted study holds another number of data ciphertexts than the layout gives")
    return {
        "ciphertext_bytes": size,
        "per_hospital": per_hospital,
        "data": total_blocks,
        "constant_term": total_constants,
        "total": total_blocks + total_constants,
        "total_bytes": (total_blocks + total_constants) * size,
        "at_server_after_summing": {"data": len(cv.blocks), "constant_term": len(cv.constants)},
    }


def data_record(study: Study, data: HospitalData, cv, revealed: dict, fed: Federation, traffic: dict) -> dict:
    """data.json: the rows per hospital, fold sizes, what was decrypted, the layout and the ciphertexts."""
    names = study.party_names()
    folds = cv.fold_of_row
    fold_sizes = np.bincount(folds, minlength=study.folds)
    per_hospital_folds = {
        name: np.bincount(folds[part.rows], minlength=study.folds).tolist() for name, part in zip(names, data.parts)
    }
    cts = _ciphertext_table(cv, data, names)
    layout = cv.layout.describe()
    seconds = {k: float(v) for k, v in cv.seconds.items()}
    return {
        "dataset": study.data_summary(data),
        "split": study.split,
        "rows_per_hospital": dict(zip(names, data.rows_per_hospital)),
        "folds": {
            "count": study.folds,
            "seed": study.seed,
            "sizes": fold_sizes.tolist(),
            "per_hospital": per_hospital_folds,
            "fold_of_row": folds.tolist(),
        },
        "revealed": {
            "label": revealed["label"],
            "to": "researcher (threshold decryption by the key holders)",
            "values": revealed["values"],
            "pooled_count": revealed["pooled_count"],
            "means": revealed["means"],
            "cross_products": revealed["cross_products"],
            "correlation": revealed["correlation"],
        },
        "scaling": {"mean": cv.mean, "std": cv.std, "curvature": cv.curvature, "interval": cv.interval},
        "layout": layout,
        "ciphertexts": cts,
        "public_key_sha256": _sha256(fed.server.public_key),
        "seconds": seconds,
        "traffic": traffic,
        "summary": {
            "hospitals": study.parties,
            "smallest_fold": int(fold_sizes.min()),
            "aggregate_values_revealed": revealed["values"],
            "ciphertexts": cts["total"],
            "encrypted_mb": round(cts["total_bytes"] / 1e6, 1),
            "encryption_s": round(seconds.get("encryption", 0.0), 3),
            "scaling_s": round(seconds.get("scaling", 0.0), 3),
            "data_step_s": round(sum(seconds.values()), 3),
        },
    }


def save_encrypted(cv, run: RunFolder):
    """The encrypted study (ciphertexts and public facts only) to <run>/encrypted_cv/."""
    path = run.path / ENCRYPTED
    cv.save(path)
    return path


def load_encrypted(run: RunFolder, fed: Federation, *, trained: bool = False):
    """The encrypted study of 02 (with 03's fold models when `trained`), checked to be under the resumed
    federation's key: rerunning 01 makes new keys, and the old ciphertexts are then useless."""
    from ..lr.cv import EncryptedCV

    path = run.path / ENCRYPTED
    if not (path / "encrypted_cv.json").is_file():
        raise DataError(
            f"run folder {run.path} has no encrypted study: run notebooks/02_data_and_encryption.ipynb first"
        )
    made_under = run.read_json("data.json").get("public_key_sha256")
    if made_under != _sha256(fed.server.public_key):
        raise DataError(
            "the data were encrypted under another collective key than the saved federation's (01 ran again "
            "after 02): rerun notebooks/02_data_and_encryption.ipynb and the steps after it"
        )
    cv = EncryptedCV.load(path)
    if trained and not cv.weights:
        raise DataError(f"the encrypted study in {path} has no fold models yet: run notebooks/03_training.ipynb first")
    return cv


# ================================================================================================ 03: training
@dataclass
class Twin:
    """The plaintext twin on the pooled rows: same folds, scaling, step sizes and iterations."""

    model: object  # the fold models (mpclr.lr.twin.FoldModels)
    Z: np.ndarray  # z-rows of the pooled data, standardized with the decrypted aggregate's scaling
    X_std: np.ndarray

    def scores(self, fold_of_row) -> np.ndarray:
        """Every row's log-odds under the model of its own fold (the model that did not see it)."""
        W = self.model.weights[np.asarray(fold_of_row)]
        return W[:, 0] + np.einsum("ij,ij->i", self.X_std, W[:, 1:])


def fit_twin(study: Study, data: HospitalData, cv) -> Twin:
    from ..lr.party import design_rows
    from ..lr.twin import fit_folds_z

    model = study.model(curvature=cv.curvature)
    Z = design_rows(data.pooled.X, data.pooled.y, cv.mean, cv.std)
    return Twin(fit_folds_z(model, Z, cv.fold_of_row), Z, (data.pooled.X - cv.mean) / cv.std)


def train(fed: Federation, cv, study: Study, progress=None):
    """Encrypted cross-validated training of every fold model in one pass (the models stay encrypted).
    Returns (TrainingLog, TrainingPlan, traffic of the training)."""
    from ..study import plan_for

    model = study.model(curvature=cv.curvature)
    plan = plan_for(model, cv.curvature)
    before = fed.traffic()
    log = cv.train(fed, plan, progress=progress)
    return log, plan, fed.network.traffic.since(before)


def convergence(twin: Twin) -> dict:
    """Per iteration (0 = the zero start) and fold: the twin's mean log-likelihood on the fold's training
    rows and on its test rows; per iteration and fold the largest |margin| the sigmoid polynomial saw."""
    from ..lr.twin import mean_log_likelihood

    m = twin.model
    masks = m.masks
    train_ll = np.stack([mean_log_likelihood(twin.Z, masks, W) for W in m.history])
    test_ll = np.stack([mean_log_likelihood(twin.Z, 1.0 - masks, W) for W in m.history])
    return {
        "train_log_likelihood": train_ll,  # (iterations + 1, folds)
        "test_log_likelihood": test_ll,
        "max_abs_margin": m.margin_history,  # (iterations, folds)
        "fraction_outside_interval": m.fraction_outside,
        "interval": float(m.interval),
    }


def plan_rows(record: dict) -> list[dict]:
    """training.json's public plan and the encrypted run's seconds, one row per iteration."""
    plan, per = record["plan"], record["encrypted"]["per_iteration"]
    return [
        {
            "iteration": it["iteration"],
            "step size": f"{g:.4g}",
            "momentum": f"{e:.4g}",
            "gradient s": f"{it['gradient_s']:.3f}",
            "update + refresh s": f"{it['update_refresh_s']:.3f}",
        }
        for g, e, it in zip(plan["step_sizes"], plan["momentum"], per)
    ]


def training_record(study: Study, log, plan, traffic: dict, twin: Twin) -> dict:
    conv = convergence(twin)
    per_iteration = [
        {
            "iteration": int(r["iteration"]),
            "gradient_s": float(r["gradient_s"]),
            "update_refresh_s": float(r["update_refresh_s"]),
            "seconds": float(r["gradient_s"] + r["update_refresh_s"]),
        }
        for r in log.iterations
    ]
    refresh = traffic["by_type"].get("refresh.share", {"messages": 0, "bytes": 0})
    seconds = {k: float(v) for k, v in log.seconds.items()}
    return {
        "plan": {
            "iterations": len(plan.schedule),
            "degree": study.degree,
            "interval": plan.interval,
            "sigmoid_coefficients": np.asarray(plan.sigmoid, dtype=np.float64),
            "step_sizes": [g for g, _ in plan.schedule],
            "momentum": [e for _, e in plan.schedule],
        },
        "encrypted": {
            "seconds": seconds,
            "per_iteration": per_iteration,
            "refresh_rounds": log.refreshes,
            "refreshed_ciphertexts": log.refreshed_ciphertexts,
            "workers": log.workers,
            "traffic": traffic,
            "models": "encrypted at the server (encrypted_cv/); nobody has decrypted them",
        },
        "twin": {
            "note": "the plaintext twin on the pooled rows (simulation only): same folds, scaling, step sizes, "
            "sigmoid polynomial and iterations as the encrypted run",
            **conv,
            "coef": twin.model.weights,
        },
        "summary": {
            "training_s": round(seconds.get("train", 0.0), 3),
            "seconds_per_iteration": round(float(np.mean([r["seconds"] for r in per_iteration])), 3),
            "refresh_rounds": log.refreshes,
            "refreshed_ciphertexts": log.refreshed_ciphertexts,
            "refresh_mb": round(refresh["bytes"] / 1e6, 2),
            "twin_train_log_likelihood": round(float(conv["train_log_likelihood"][-1].mean()), 5),
            "twin_test_log_likelihood": round(float(conv["test_log_likelihood"][-1].mean()), 5),
            "twin_max_abs_margin": round(float(conv["max_abs_margin"].max()), 3),
        },
    }


# ================================================================================================ 04: evaluation
def evaluate(fed: Federation, cv, cutoff: float = 0.5, refine_rounds: int | None = None) -> dict:
    """Secure evaluation of every fold model (mpclr.lr.evaluation): encrypted scores and comparisons, and
    only the agreed counts, switched to the researcher's own key. refine_rounds: rounds of thresholds
    the researcher chooses from the counts so far (None: the evaluation's default)."""
    from ..lr.evaluation import evaluate_encrypted_cv

    t0 = time.perf_counter()
    result = evaluate_encrypted_cv(fed, cv, cutoff=cutoff, refine_rounds=refine_rounds)
    result["wall_s"] = time.perf_counter() - t0
    return result


def _checks_summary(checks: dict) -> dict:
    """The evaluation's own checks on its counts (whatever it reports), as flat metrics."""
    out = {}
    for k, v in checks.items():
        if isinstance(v, bool | int | float) or v is None:
            out[k] = round(float(v), 4) if isinstance(v, float) else v
    return out


def evaluation_record(result: dict, cv, cutoff: float, audit: list[dict], refine_rounds: int | None = None) -> dict:
    """evaluation.json: the secure evaluation's own result, what reached the researcher, a summary."""
    folds = result["folds"]
    sizes = np.bincount(cv.fold_of_row, minlength=cv.layout.folds)
    if [f["n"] for f in folds] != sizes.tolist():
        raise ProtocolError(f"the evaluation tested {[f['n'] for f in folds]} rows per fold, the folds hold {sizes}")
    total = {k: int(sum(f["confusion"][k] for f in folds)) for k in ("tp", "fp", "tn", "fn")}
    summary = result["summary"]

    def mean(key):
        v = summary.get(key, {}).get("mean")
        return None if v is None else round(float(v), 5)

    return {
        "cutoff": cutoff,
        "refine_rounds": refine_rounds,
        **result,
        "confusion_total": total,
        "researcher_audit": audit,
        "summary": {
            "secure_auc": mean("auc"),
            "secure_auc_sd": None if summary["auc"]["sd"] is None else round(float(summary["auc"]["sd"]), 5),
            "secure_accuracy": mean("accuracy"),
            "secure_sensitivity": mean("sensitivity"),
            "secure_specificity": mean("specificity"),
            "evaluation_s": round(float(result["seconds"]["total"]), 3),
            "rows_tested": int(sum(f["n"] for f in folds)),
            "revealed_values": int(result["revealed_values"]),
            **_checks_summary(result.get("checks", {})),
        },
    }


# ================================================================================================ 05: comparison
def phase_times(run: RunFolder) -> list[dict]:
    """Seconds per phase from the run folder's records, beside the source study's figures."""
    rows = []
    keys = run.read_json("keys.json")["summary"] if run.has("keys.json") else {}
    if keys:
        rows.append({"phase": "key ceremony (01)", "mpclr_s": keys["key_ceremony_s"], "study_s": None})
        rows.append({"phase": "rotation keys (01)", "mpclr_s": keys["rotation_keys_s"], "study_s": None})
    if run.has("data.json"):
        sec = run.read_json("data.json")["seconds"]
        for k in ("folds", "scaling", "rotation_keys", "encryption"):
            if k in sec:
                rows.append({"phase": f"data: {k.replace('_', ' ')} (02)", "mpclr_s": sec[k], "study_s": None})
    if run.has("training.json"):
        rows.append(
            {
                "phase": "encrypted training (03)",
                "mpclr_s": run.read_json("training.json")["summary"]["training_s"],
                "study_s": STUDY_FIGURES["training_s"],
            }
        )
    if run.has("evaluation.json"):
        rows.append(
            {
                "phase": "secure evaluation (04)",
                "mpclr_s": run.read_json("evaluation.json")["summary"]["evaluation_s"],
                "study_s": STUDY_FIGURES["evaluation_s"],
            }
        )
    return [{**r, "mpclr_s": round(float(r["mpclr_s"]), 3)} for r in rows]


def times_rows(record: dict) -> list[dict]:
    """comparison.json's time per phase for a table: ours, and the study's where it gives a figure."""
    f = record["study_figures"]
    theirs = f"{f['rows']:,} x {f['features']}, {f['folds']} folds"
    return [
        {
            "phase": r["phase"],
            "mpclr (s)": f"{r['mpclr_s']:.3f}",
            "the study": f"about {r['study_s'] / 60:.0f} min ({theirs})" if r["study_s"] else "",
        }
        for r in record["times"]
    ]


def compare(
    study: Study, data: HospitalData, cv, evaluation: dict, twin: Twin, weights: np.ndarray | None, run: RunFolder
) -> dict:
    """comparison.json: per fold the secure AUC (04) beside the twin's and scikit-learn's on the same
    folds and scaling; the coefficients (the decrypted encrypted models when the key holders decrypted
    them); the time per phase beside the source study's."""
    from ..lr.baselines import sklearn_cv
    from ..lr.metrics import METRICS, fold_metrics, mean_sd

    y, folds = data.pooled.y, cv.fold_of_row
    twin_m = fold_metrics(y, twin.scores(folds), folds)
    base = sklearn_cv(twin.X_std, y, folds)
    secure = [f["auc"] for f in evaluation["folds"]]
    rows = []
    for k in range(study.folds):
        rows.append(
            {
                "fold": k,
                "n_test": int((folds == k).sum()),
                "secure_auc": float(secure[k]),
                "secure_auc_bound": float(evaluation["folds"][k]["auc_bound"]),
                "twin_auc": float(twin_m.auc[k]),
                "sklearn_auc": float(base.metrics.auc[k]),
            }
        )
    mean = {key: mean_sd([r[key] for r in rows]) for key in ("secure_auc", "twin_auc", "sklearn_auc")}
    names = ["intercept", *data.pooled.feature_names]
    coef = {"features": names, "twin": twin.model.weights, "sklearn": base.coef}
    summary = {  # the secure AUC and the seconds per phase are in 04's and the other steps' summaries
        "twin_auc": round(mean["twin_auc"][0], 5),
        "sklearn_auc": round(mean["sklearn_auc"][0], 5),
        "max_auc_diff_secure_twin": round(max(abs(r["secure_auc"] - r["twin_auc"]) for r in rows), 5),
        "max_auc_diff_twin_sklearn": round(max(abs(r["twin_auc"] - r["sklearn_auc"]) for r in rows), 5),
        "models_decrypted": weights is not None,
    }
    if weights is not None:
        coef["encrypted"] = weights
        diff = float(np.abs(weights - twin.model.weights).max())
        coef["max_abs_diff_encrypted_twin"] = diff
        summary["max_weight_diff_encrypted_twin"] = diff
    times = phase_times(run)
    return {
        "folds": rows,
        "mean_sd": {k: {"mean": v[0], "sd": v[1]} for k, v in mean.items()},
        "twin_metrics": {m: [float(v) for v in getattr(twin_m, m)] for m in METRICS},
        "sklearn_metrics": {m: [float(v) for v in getattr(base.metrics, m)] for m in METRICS},
        "coefficients": coef,
        "models_decrypted": weights is not None,
        "times": times,
        "study_figures": STUDY_FIGURES,
        "setting": {
            "rows": data.pooled.n_samples,
            "features": data.pooled.n_features,
            "folds": study.folds,
            "hospitals": study.parties,
            "preset": study.preset,
            "iterations": study.iterations,
        },
        "summary": summary,
    }
