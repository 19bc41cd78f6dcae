"""The statistics protocols as studies of a Flower deployment (run-config key study =
"mpclr.stats.deploy:pooled_glm" or "mpclr.stats.deploy:table_one"): the same protocol functions as in one
process, on a `DeployedFederation` whose hospitals hold their rows and answer from their own settings
(hospital configuration keys glm-max-fraction and min-cell).

pooled_glm options: family (binomial), outcome (default: the hospitals' label column), columns (comma-separated
predictors; default every other column), max-iter (25), ridge (0).
table_one options: by (default: the label column; "none" for no split), continuous (comma-separated),
categorical (JSON: {"name": [levels]}), min-cell (default: the largest of the hospitals' own).

Their manifests (`pooled_glm.manifest`, `table_one.manifest`, mpclr.stats.manifest), computed by the
coordinator from the options and what the hospitals said at hello (rows, features, min_cell), are what each
hospital agrees to at join: the key ceremony, one stats.settings round (the columns' names, and the hospitals'
min_cell for a table), and the protocol's rounds; nothing else.
"""

from __future__ import annotations

import json

from ..errors import ParameterError
from ..params import check_study_preset
from .family import FAMILIES
from .glm import LABEL as GLM_LABEL
from .table1 import LABEL as TABLE_LABEL

__all__ = ["pooled_glm", "table_one", "hospital_settings", "glm_study_manifest", "table_study_manifest"]

GLM_OPTIONS = ("family", "outcome", "columns", "max-iter", "ridge")
TABLE_OPTIONS = ("by", "continuous", "categorical", "min-cell")


def _unknown(config: dict, known, study: str) -> None:
    """Refuse a key no study of the app reads (a Flower run configuration carries every study's keys)."""
    from ..deploy.study import _OTHER_STUDY_KEYS, OPTIONS

    others = (*OPTIONS, *_OTHER_STUDY_KEYS, *GLM_OPTIONS, *TABLE_OPTIONS, "seed", "progress")
    extra = sorted(k for k in config if k not in (*known, *others))
    if extra:
        raise ParameterError(f"run config: {', '.join(map(repr, extra))} is not an option of {study}; it reads "
                             f"{', '.join(known)}")


def _names(value) -> list[str] | None:
    if value in (None, ""):
        return None
    return [v.strip() for v in str(value).split(",") if v.strip()]


def hospital_settings(fed, label: str) -> tuple[list[str], int]:
    """(the columns every hospital holds, the largest of their min_cell), in one stats.settings round labelled
    for the study's budget. Both are public; a hospital holding other columns is named."""
    replies = fed.server.call_many("stats.settings", {p.name: {"label": f"{label}: settings"} for p in fed.hospitals})
    columns = {p: tuple(r["columns"]) for p, r in replies.items()}
    first = next(iter(columns.values()))
    differ = [p for p, c in columns.items() if c != first]
    if differ:
        raise ParameterError(f"the hospitals hold different columns: {', '.join(differ)} differ from {first}")
    return list(first), max(int(r["min_cell"]) for r in replies.values())


def check_glm(preset, config: dict) -> None:
    check_study_preset(preset)
    _unknown(config, GLM_OPTIONS, "pooled_glm")
    if config.get("family", "binomial") not in FAMILIES:
        raise ParameterError(f"run config: family must be one of {', '.join(FAMILIES)}, got {config['family']!r}")
    if not 1 <= int(config.get("max-iter", 25) or 25) <= 200 or float(config.get("ridge", 0) or 0) < 0:
        raise ParameterError("run config: max-iter must be in 1..200 and ridge at least 0")


def pooled_glm(fed, config: dict) -> dict:
    from .glm import fit_pooled
    from .requests import GLMModel
    from .result import GLMResult

    check_glm(fed.params, config)
    progress = config.get("progress") or (lambda event, **info: None)
    names, _ = hospital_settings(fed, GLM_LABEL)
    outcome = config.get("outcome") or names[-1]
    columns = _names(config.get("columns")) or [c for c in names if c != outcome]
    model = GLMModel(str(config.get("family") or "binomial"), outcome, tuple(columns))
    result = GLMResult(fit_pooled(fed, model, max_iter=int(config.get("max-iter") or 25),
                                  ridge=float(config.get("ridge") or 0.0),
                                  progress=lambda k, dev: progress("glm_iteration", iteration=k, deviance=dev)))
    return result.to_dict()


def check_table(preset, config: dict) -> None:
    check_study_preset(preset)
    _unknown(config, TABLE_OPTIONS, "table_one")
    _categorical(config)


def _categorical(config: dict) -> dict:
    raw = config.get("categorical") or "{}"
    try:
        cats = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except (json.JSONDecodeError, TypeError, ValueError):
        raise ParameterError(f"run config: categorical must be JSON {{\"name\": [levels]}}, got {raw!r}") from None
    if not isinstance(cats, dict) or not all(isinstance(v, list) for v in cats.values()):
        raise ParameterError(f"run config: categorical must map names to lists of levels, got {raw!r}")
    return cats


def table_one(fed, config: dict) -> dict:
    from .table1 import table_one as run

    check_table(fed.params, config)
    names, largest = hospital_settings(fed, TABLE_LABEL)
    by = config.get("by") or names[-1]
    t = run(fed, by=None if by == "none" else by, continuous=_names(config.get("continuous")) or (),
            categorical=_categorical(config), min_cell=_min_cell(config) or largest)
    return t.to_dict()


def _min_cell(config: dict) -> int | None:
    value = config.get("min-cell")
    return int(value) if value not in (None, "", 0) else None


def glm_study_manifest(info, config: dict):
    """pooled_glm's manifest on these hospitals (mpclr.deploy.study.HospitalsInfo): one fit of the model the
    options name (every other column by default: the hospitals' features and label less the outcome)."""
    from .manifest import glm_manifest

    check_glm(info.params, config)
    columns = _names(config.get("columns"))
    max_iter = int(config.get("max-iter") or 25)
    return glm_manifest(len(info.names), (len(columns) if columns else int(info.features)) + 1,
                        threshold=int(info.threshold), max_iter=max_iter, settings=1,
                        family=str(config.get("family") or "binomial"), outcome=config.get("outcome") or "(label)",
                        columns=columns or "(every other column)", preset=info.params.name)


def table_study_manifest(info, config: dict):
    """table_one's manifest on these hospitals: the table the options describe, at the min_cell it will use
    (the option, else the largest the hospitals reported at hello)."""
    from .manifest import table_manifest

    check_table(info.params, config)
    cats = _categorical(config)
    min_cell = _min_cell(config)
    if min_cell is None:
        silent = [n for n, m in zip(info.names, info.min_cells or [None] * len(info.names)) if m is None]
        if silent:
            raise ParameterError(f"run config: {', '.join(silent)} reported no min_cell at hello (an older hospital): "
                                 "give min-cell")
        min_cell = max(int(m) for m in info.min_cells)
    continuous = _names(config.get("continuous")) or []
    split = (config.get("by") or "") != "none"
    return table_manifest(info.params, len(info.names), min_cell, threshold=int(info.threshold),
                          levels=sum(len(v) for v in cats.values()), continuous=len(continuous), split=split,
                          settings=1, variables=[*continuous, *cats])


pooled_glm.check_config = check_glm
table_one.check_config = check_table
pooled_glm.manifest = glm_study_manifest  # the coordinator asks a study hook for its manifest here
table_one.manifest = table_study_manifest
