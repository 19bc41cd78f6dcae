"""The statistics protocols as studies of a Flower deployment (run-config key study =
"mpclr.stats.deploy:pooled_glm" or "mpclr.stats.deploy:table_one"): the same protocol functions as in one
process, on a `DeployedFederation` whose sites hold their rows and answer from their own settings
(site configuration keys glm-max-fraction and min-cell).

pooled_glm options: family (binomial), outcome (default: the sites' label column), columns (comma-separated
predictors; default every other column), max-iter (25), ridge (0).
table_one options: by (default: the label column; "none" for no split), continuous (comma-separated),
categorical (JSON: {"name": [levels]}), min-cell (default: the largest of the sites' own).
"""

from __future__ import annotations

import json

from ..errors import ParameterError
from ..params import check_study_preset
from .family import FAMILIES

__all__ = ["pooled_glm", "table_one", "site_columns"]

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


def site_columns(fed) -> list[str]:
    """The columns every site holds (their names are public; a site holding others is named)."""
    replies = fed.server.call_many("stats.settings", {p.name: {"label": "stats"} for p in fed.parties})
    columns = {p: tuple(r["columns"]) for p, r in replies.items()}
    first = next(iter(columns.values()))
    differ = [p for p, c in columns.items() if c != first]
    if differ:
        raise ParameterError(f"the sites hold different columns: {', '.join(differ)} differ from {first}")
    return list(first)


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
    names = site_columns(fed)
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
    names = site_columns(fed)
    by = config.get("by") or names[-1]
    min_cell = config.get("min-cell")
    t = run(fed, by=None if by == "none" else by, continuous=_names(config.get("continuous")) or (),
            categorical=_categorical(config), min_cell=int(min_cell) if min_cell not in (None, "", 0) else None)
    return t.to_dict()


pooled_glm.check_config = check_glm
table_one.check_config = check_table
