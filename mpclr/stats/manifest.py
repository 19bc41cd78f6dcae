"""What the statistics protocols ask of each hospital, computed from their public plan before they run, as
budgets per protocol step and label (rounds, ciphertexts, values the researcher reads): the shape of a
study manifest's budgets (mpclr.roles.policy.Budget once the hospital policy gate is in), so these can
be folded into the manifest the hospitals agree to at the key ceremony.

Every count is an upper bound the protocol keeps (tests/stats check it against the requests the
hospitals receive): a GLM uses at most max_iter + 2 rounds (the design round, its balanced repeat when
the design's diagonal spans more than 2^20, then at most max_iter iterations); a Table 1 uses one
table.counts round, one refresh per composite cycle after the first plus one (the subtraction), and
three decryptions. Reading the hospitals' settings and column names (stats.settings) is budgeted too.
"""

from __future__ import annotations

from .encoding import packed_length
from .family import SCALARS
from .glm import LABEL as GLM_LABEL
from .table1 import LABEL as TABLE_LABEL

__all__ = ["glm_budget", "table_budget", "SETTINGS_LABEL"]

SETTINGS_LABEL = "stats"  # the label of stats.settings requests


def _budget(step: str, label: str, rounds: int, ciphertexts: int = 0, per_round: int = 0, values: int = 0) -> dict:
    return {"step": step, "label": label, "rounds": rounds, "ciphertexts": ciphertexts, "per_round": per_round,
            "values": values}


def glm_budget(max_iter: int, parameters: int) -> list[dict]:
    """A pooled GLM of `parameters` coefficients (intercept included) with at most `max_iter` iterations."""
    rounds = max_iter + 2
    length = packed_length(parameters, len(SCALARS))
    return [
        _budget("stats.settings", SETTINGS_LABEL, 1),  # a deployed study reads the sites' column names once
        _budget("glm.step", GLM_LABEL, rounds),
        _budget("decrypt.share", GLM_LABEL, rounds, rounds, 1, rounds * length),
    ]


def table_budget(params, hospitals: int, min_cell: int, *, levels: int = 0, continuous: int = 0,
                 split: bool = True) -> list[dict]:
    """A Table 1 with `levels` levels over all categorical variables, `continuous` continuous variables,
    split by a 0/1 column or not, among `hospitals` hospitals (all of them decrypt) at min_cell."""
    from ..federation import seal_context
    from .suppress import composite

    ctx = seal_context(params)
    columns = 3 if split else 1
    cells = columns * levels + (2 if split else 0) + 1
    cycles = len(composite(ctx, float(min_cell * hospitals), hospitals).cycles)
    refreshes = cycles  # one between consecutive cycles, one for the subtraction
    release = cells + continuous * 2 * columns
    return [
        _budget("stats.settings", SETTINGS_LABEL, 2),  # min_cell (unless given); a deployed study's column names
        _budget("table.counts", TABLE_LABEL, 1),
        _budget("refresh.share", TABLE_LABEL, refreshes, refreshes, 1),
        _budget("decrypt.share", TABLE_LABEL, 3, 3 + continuous, 1 + continuous, 2 * cells + release),
    ]
