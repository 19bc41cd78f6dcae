"""Notebook 06: the study designed in 00, run on a multi-hospital deployment (Flower) instead of in this process.

The deployment's coordinator (a Flower ServerApp, mpclr.deploy) runs the whole study in one go: key
ceremony with the hospitals, encryption of each hospital's rows, training, secure evaluation, results to the
researcher. So this step does not reuse 01-05's in-process federation: it submits the study and reads
back what the coordinator wrote (result.json).

connection = "" starts a loopback deployment on this machine for trying (a SuperLink and one SuperNode
per hospital on 127.0.0.1, TLS and SuperNode authentication on), each hospital reading its own rows from
a CSV file written from the study's split, and stops it afterwards. Otherwise `connection` names a
SuperLink connection in FLWR_HOME's config.toml (docs/deployment.md): the hospitals are real, their rows
stay with them, and the coordinator writes its results on the SuperLink's machine (this must be it).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..errors import ParameterError
from .rundir import RunFolder
from .study import HospitalData, Study

__all__ = [
    "ProgressBar",
    "run_config",
    "write_hospital_files",
    "run_deployed",
    "deployment_record",
    "fold_rows",
    "hospital_rows",
]


class ProgressBar:
    """A tqdm bar over the training iterations, fed by the coordinator's progress events (other events
    show as its postfix); the events are kept in `events`."""

    def __init__(self, total: int):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc="deployed study: training", unit="iteration")
        self.events: list[dict] = []

    def __call__(self, event: dict) -> None:
        self.events.append(event)
        if event["event"] == "training":
            self.bar.update(event["done"] - self.bar.n)
        else:
            self.bar.set_postfix_str(event["event"])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close()


def run_config(study: Study, decrypt_models: bool = True) -> dict:
    """The coordinator's run configuration for this study (the deployment runs the presets only);
    decrypt_models: whether the key holders decrypt the fold models for the researcher."""
    if study.smudging_bits is not None:
        raise ParameterError(
            "parameter smudging_bits: a deployment runs the presets as they are; set it to None in 00"
        )
    return {
        "hospital-names": ",".join(study.hospital_names()),
        "threshold": study.threshold or 0,
        "preset": study.preset,
        "seed": int(study.seed),
        "folds": study.folds,
        "iterations": study.iterations,
        "degree": study.degree,
        "decrypt-models": bool(decrypt_models),
    }


def write_hospital_files(data: HospitalData, folder) -> list[Path]:
    """Each hospital's own rows (features, then the label) in its own CSV, as a hospital would hold them."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, part in enumerate(data.parts):
        path = folder / f"hospital-{i + 1}.csv"
        header = ",".join([*part.feature_names, "label"])
        np.savetxt(path, np.column_stack([part.X, part.y]), delimiter=",", fmt="%.17g", header=header, comments="")
        paths.append(path)
    return paths


def run_deployed(
    study: Study,
    run: RunFolder,
    *,
    connection: str = "",
    flwr_home: str = "",
    decrypt_models: bool = True,
    progress=None,
    timeout: float = 3600.0,
) -> dict:
    """Submit the study and wait for its result (result.json as a dict, plus `transport`)."""
    from ..deploy.local import HospitalSpec, LocalDeployment, submit_study

    config = run_config(study, decrypt_models)
    if connection:
        out = run.file("deployment") / f"study-{int(time.time() * 1000)}"
        result = submit_study(connection, config, out, flwr_home=flwr_home or None, timeout=timeout,
                              on_progress=progress)
        result["transport"] = {"kind": "deployment", "connection": connection}
        return result
    data = study.hospital_data()
    files = write_hospital_files(data, run.file("deployment") / "hospital-data")
    hospitals = [HospitalSpec(name, str(path)) for name, path in zip(study.hospital_names(), files)]
    dep = LocalDeployment(run.file("deployment") / "loopback", hospitals)
    try:
        dep.start()
        result = dep.run_study(config, timeout=timeout, on_progress=progress)
    finally:
        dep.stop()
    result["transport"] = {"kind": "loopback", "start_s": dep.timings.get("start")}
    # a loopback hospital numbered its rows from its offset: map them back to the study's global rows
    result["global_rows"] = np.concatenate([p.rows for p in data.parts]).tolist()
    return result


def deployment_record(result: dict, in_process: dict | None = None) -> dict:
    """deployment.json: the coordinator's result, and beside it the in-process evaluation of 04 if any."""
    study = result["study"]
    secure = study.get("secure_evaluation") or {}
    summary = {
        "deployed_wall_s": round(float(result.get("wall_seconds", 0.0)), 2),
        "rounds": int(result["network"]["rounds"]),
        "round_overhead_median_s": round(float(result["network"]["overhead_median"]), 4),
        "hospitals_unavailable": len(result.get("unavailable", [])),
    }
    if secure:
        summary["deployed_secure_auc"] = round(float(secure["summary"]["auc"]["mean"]), 5)
        summary["deployed_revealed_values"] = int(secure["revealed_values"])
    if in_process:
        summary["in_process_secure_auc"] = in_process["summary"].get("secure_auc")
    return {**result, "in_process_evaluation": in_process, "summary": summary}


def fold_rows(record: dict) -> list[dict]:
    """Per fold: the deployed secure AUC (and its bound); then the mean, beside 04's in-process mean when
    it ran. Fold by fold the two are not comparable: each hospital drew its folds with its own secret
    randomness, in this deployment's session and in 02's."""
    secure = (record["study"].get("secure_evaluation") or {}).get("folds", [])
    rows = []
    for f in secure:
        row = {"fold": f["fold"], "rows": f["n"], "AUC deployed": f"{f['auc']:.4f}", "bound": f"{f['auc_bound']:.4f}"}
        if f.get("metrics"):
            row["accuracy"] = f"{f['metrics']['accuracy']:.3f}"
        rows.append(row)
    if secure:
        mean = {"fold": "mean", "rows": sum(f["n"] for f in secure),
                "AUC deployed": f"{np.mean([f['auc'] for f in secure]):.4f}"}
        before = (record.get("in_process_evaluation") or {}).get("summary", {}).get("secure_auc")
        if before is not None:
            mean["AUC in process (04)"] = f"{before:.4f}"
        rows.append(mean)
    return rows


def hospital_rows(record: dict) -> list[dict]:
    """Per hospital: bytes sent and received through Flower, and whether it stopped answering."""
    gone = set(record.get("unavailable", []))
    return [
        {"hospital": s, "sent MB": round(b["sent"] / 1e6, 1), "received MB": round(b["received"] / 1e6, 1),
         "answered to the end": s not in gone}
        for s, b in record.get("bytes_per_hospital", record.get("bytes_per_site", {})).items()  # older records
    ]
