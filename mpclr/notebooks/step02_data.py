"""Step 02 (notebooks/02_data_and_encryption.ipynb): the hospitals encrypt their rows; what was revealed;
the data record."""

from __future__ import annotations

import numpy as np

from ..errors import ProtocolError
from ..federation import Federation
from .pipeline import _sha256
from .study import HospitalData, Study

__all__ = ['aggregate_view', 'encrypt', 'revealed_rows', 'scaling_rows', 'data_record']


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
    from ..training.party import aggregate_length, unpack_aggregate

    n, sums, cross = unpack_aggregate(values, d)
    mean = sums / n
    cov = cross / n - np.outer(mean, mean)
    sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    corr = cov / np.outer(sd, sd)
    return {
        "values": aggregate_length(d),
        "pooled_count": float(n),
        "sums": sums,
        "means": mean,
        "cross_products": cross,
        "std": sd,
        "correlation": corr,
    }


def encrypt(fed: Federation, study: Study):
    """Notebook 02's protocol, as mpclr.training.cv.encrypt_study runs it: fold assignment by each hospital,
    scaling from the encrypted aggregate (the only decryption), rotation keys for the layout (none left
    to make when 01 made them), the hospitals' rows encrypted in the public layout.

    Returns (EncryptedCV, what the researcher decrypted: `aggregate_view` of it plus its label)."""
    from ..pipeline import Study as Stages
    from ..training.party import aggregate_values

    tap = _ResearcherTap(fed)
    cv = Stages.resumed(study, fed, after="prepare").encrypt(fed=tap)
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
    """How many ciphertexts each hospital sent, and their bytes (data at the top level; the constant part at
    the level it is first used, fewer primes)."""
    layout = cv.layout
    features = cv.features
    size = len(cv.blocks[next(iter(cv.blocks))][0])
    size_c = len(next(iter(cv.constants.values()))[0])
    per_hospital = {}
    for name, part in zip(names, data.parts):
        blocks = sum(len(layout.blocks_with_rows(g, part.rows)) * g.chunks(features) for g in layout.groups)
        constants = sum(g.chunks(features) for g in layout.groups)
        per_hospital[name] = {"data": blocks, "constant_term": constants, "bytes": blocks * size + constants * size_c}
    total_blocks = cv.blocks.count()
    total_constants = sum(len(v) for v in cv.constants.values())
    if total_blocks != sum(v["data"] for v in per_hospital.values()):
        raise ProtocolError("the encrypted study holds another number of data ciphertexts than the layout gives")
    return {
        "ciphertext_bytes": size,
        "constant_ciphertext_bytes": size_c,
        "per_hospital": per_hospital,
        "data": total_blocks,
        "constant_term": total_constants,
        "total": total_blocks + total_constants,
        "total_bytes": total_blocks * size + total_constants * size_c,
        "at_server_after_summing": {"data": len(cv.blocks), "constant_term": len(cv.constants)},
    }


def data_record(study: Study, data: HospitalData, cv, revealed: dict, fed: Federation, traffic: dict) -> dict:
    """data.json: the rows per hospital, fold sizes, what was decrypted, the layout and the ciphertexts."""
    names = study.hospital_names()
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
            "hospitals": study.hospitals,
            "smallest_fold": int(fold_sizes.min()),
            "aggregate_values_revealed": revealed["values"],
            "ciphertexts": cts["total"],
            "encrypted_mb": round(cts["total_bytes"] / 1e6, 1),
            "encryption_s": round(seconds.get("encryption", 0.0), 3),
            "scaling_s": round(seconds.get("scaling", 0.0), 3),
            "data_step_s": round(sum(seconds.values()), 3),
        },
    }


