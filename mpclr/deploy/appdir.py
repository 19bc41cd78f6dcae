"""The Flower app (what `flwr run` bundles into a FAB): a pyproject.toml naming mpclr's ServerApp and
ClientApp, and the run configuration's keys with their defaults. It holds no code: the coordinator and
the hospitals run the mpclr they installed (a hospital refuses any other ClientApp, mpclr.deploy.supernode)."""

from __future__ import annotations

import json
from pathlib import Path

from .server_app import DEFAULT_STUDY

__all__ = ["write_app", "DEFAULTS", "run_config_args"]

DEFAULTS = {
    "output": "",
    "hospital-names": "",  # comma-separated, in the order that numbers their rows
    "sites": "",  # the older name of hospital-names, still read (with a DeprecationWarning)
    "hospitals": 0,
    "parties": 0,  # the older name of hospitals, still read (with a DeprecationWarning)
    "threshold": 0,
    "preset": "train",
    "upload": "auto",  # or "share-keyed" / "public-key" (mpclr.upload_mode)
    "seed": 0,
    "study": DEFAULT_STUDY,
    "round-timeout": 600.0,
    "join-timeout": 120.0,
    "poll": 0.005,
    "max-poll": 0.05,
    "folds": 5,
    "degree": 0,  # 0: 3 with an explicit schedule, the twin's default (5) without
    "schedule": "",  # "": step sizes from the encrypted curvature (mpclr.pipeline); or JSON [[gamma, eta], ...]
    "iterations": 0,
    "learning-rate": 0.0,
    "bound-bits": 8,
    "evaluation": "secure",  # or "none"
    "score-bound": 16.0,
    "decrypt-models": True,  # false: the fold models stay encrypted (only the secure evaluation's counts)
    "workers": "auto",
    "rounds": 20,
    "payload": 0,
}


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    return json.dumps(str(v))


def write_app(folder, extra: dict | None = None) -> Path:
    """Write the app folder (pyproject.toml only); `extra` adds run-config keys a custom study reads."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {**DEFAULTS, **(extra or {})}
    lines = [
        "[build-system]",
        'requires = ["hatchling"]',
        'build-backend = "hatchling.build"',
        "",
        "[project]",
        'name = "mpclr-study"',
        'version = "1.0.0"',
        'description = "mpclr: cross-validated logistic regression on threshold CKKS across hospitals"',
        'license = "MIT"',
        "dependencies = []",
        "",
        "[tool.flwr.app]",
        'publisher = "mpclr"',
        "",
        "[tool.flwr.app.components]",
        'serverapp = "mpclr.deploy.apps:server_app"',
        'clientapp = "mpclr.deploy.apps:client_app"',
        "",
        "[tool.flwr.app.config]",
        *[f"{k} = {_toml_value(v)}" for k, v in config.items()],
        "",
    ]
    (folder / "pyproject.toml").write_text("\n".join(lines))
    return folder


def run_config_args(values: dict) -> list[str]:
    """`--run-config` arguments for `flwr run` (one per key; strings quoted as TOML)."""
    out = []
    for k, v in values.items():
        if k not in DEFAULTS:
            raise KeyError(f"run-config key {k!r} is not in the app's configuration")
        out += ["--run-config", f"{k}={_toml_value(v)}"]
    return out
