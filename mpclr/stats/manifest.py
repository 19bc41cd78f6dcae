"""The study manifests of the statistics protocols (mpclr.roles.policy): what each hospital agrees to answer
for a pooled GLM or a Table 1, computed from the public plan before anything runs, so the hospitals can
refuse whatever goes beyond it.

Per protocol step and label, the counts are upper bounds the protocols keep (tests/stats check them
against the hospitals' ledgers):
- a GLM fit: at most max_iter + 2 rounds (the design round, its balanced repeat when the design's diagonal
  spans more than 2^20, then at most max_iter iterations, a halved step counting as one), each one
  glm.step and one decryption of one ciphertext of the packed length (mpclr.stats.glm);
- a Table 1: one table.counts; a refresh between the composite's cycles and one for the projection, one
  ciphertext each; at most three decryptions: the class sizes' tests, the cells' tests (with categorical
  variables only), the released counts with the continuous variables' sums (one ciphertext for all of
  them) (mpclr.stats.table1);
- stats.settings, labelled by the protocol: once to read the hospitals' min_cell (a Table 1 not given
  one), once to read their columns' names (a deployed study), or once for both.
Manifests made here carry the key ceremony (with the t-out-of-n set-up when t < n) and 2 (n - t) retry
rounds, unless made as a part (ceremony=False) to merge into another study's (merge_manifests).

What they do not pin: which columns a request names; a manifest bounds how much is asked, not what.
"""

from __future__ import annotations

from ..errors import ParameterError
from ..roles.policy import Budget, Manifest, ceremony_budgets
from .encoding import packed_length
from .family import SCALARS
from .glm import LABEL as GLM_LABEL
from .requests import MAX_COLUMNS
from .table1 import LABEL as TABLE_LABEL

__all__ = ["glm_budgets", "table_budgets", "glm_manifest", "table_manifest", "GLM_LABEL", "TABLE_LABEL"]

GLM_STUDY = "pooled GLM"
TABLE_STUDY = "Table 1"


def _count(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ParameterError(f"parameter {name} must be an integer in {low}..{high}, got {value!r}")
    return value


def glm_budgets(parameters: int, max_iter: int = 25, *, fits: int = 1, settings: int = 0) -> list[Budget]:
    """`fits` pooled GLMs of `parameters` coefficients (intercept included), each of at most `max_iter`
    iterations; `settings`: stats.settings rounds (1 when a deployed study reads the columns' names)."""
    _count("parameters", parameters, 1, MAX_COLUMNS)
    _count("max_iter", max_iter, 1, 200)
    _count("fits", fits, 1, 10)
    rounds = fits * (max_iter + 2)
    length = packed_length(parameters, len(SCALARS))
    out = [Budget("stats.settings", GLM_LABEL, settings)] if settings else []
    return out + [Budget("glm.step", GLM_LABEL, rounds),
                  Budget("decrypt.share", GLM_LABEL, rounds, rounds, 1, rounds * length)]


def table_budgets(params, hospitals: int, min_cell: int, *, levels: int = 0, continuous: int = 0, split: bool = True,
                  refreshers: int | None = None, settings: int = 1) -> list[Budget]:
    """A Table 1 among `hospitals` hospitals at `min_cell`, `levels` levels over all its categorical
    variables, `continuous` continuous variables, split by a 0/1 column or not; `refreshers`: the key
    holders that refresh and decrypt (default all; their number sets the secure test's noise, so its
    cycles); `settings`: stats.settings rounds (1: the hospitals' min_cell is read; a deployed study reads
    it with the columns' names in that round; 0: min_cell given)."""
    from ..seal.context import seal_context
    from .suppress import composite

    _count("min_cell", min_cell, 1, 1000)
    if levels < 0 or continuous < 0 or levels + continuous == 0:
        raise ParameterError(f"a Table 1 needs variables: got {levels} categorical levels, {continuous} continuous")
    ctx = seal_context(params)
    columns = 3 if split else 1
    cells = columns * levels + (2 if split else 0) + 1
    if 2 * cells > ctx.params.slots:
        raise ParameterError(f"the table has {cells} cells; at most {ctx.params.slots // 2} fit the secure test")
    keys = hospitals if refreshers is None else refreshers
    try:
        cycles = len(composite(ctx, float(min_cell * hospitals), keys).cycles)
    except ParameterError:
        raise ParameterError(f"a Table 1 over {hospitals} hospitals with min_cell {min_cell}: the secure small-cell "
                             f"test is finer than the refresh noise of {keys} key holders allows") from None
    tests = 2 if levels else 1  # the class sizes' tests; the cells' tests when there are cells to show
    release = cells + continuous * 2 * columns  # the released counts and every continuous sum
    packed = 1 if continuous else 0  # every continuous variable's sums in one ciphertext
    out = [Budget("stats.settings", TABLE_LABEL, settings)] if settings else []
    return out + [
        Budget("table.counts", TABLE_LABEL, 1),
        Budget("refresh.share", TABLE_LABEL, cycles, cycles, 1),  # between cycles, and the projection
        Budget("decrypt.share", TABLE_LABEL, tests + 1, tests + 1 + packed, 1 + packed, tests * cells + release),
    ]


def _manifest(name: str, budgets: list[Budget], hospitals: int, threshold: int | None, ceremony: bool,
              plan: dict) -> Manifest:
    n = _count("hospitals", hospitals, 2, 64)
    t = n if threshold is None else _count("threshold", threshold, 1, n)
    # a study of its own uploads a few vectors per hospital: with the public key, no upload keys (mpclr.upload_mode)
    head = ceremony_budgets(t < n, upload_keys=False) if ceremony else []
    mode = {"upload": "public-key"} if ceremony else {}
    return Manifest(name, tuple(head + budgets), 2 * (n - t),
                    {"study": name, "hospitals": n, "threshold": t, **mode, **plan})


def glm_manifest(hospitals: int, parameters: int, *, threshold: int | None = None, max_iter: int = 25, fits: int = 1,
                 settings: int = 0, ceremony: bool = True, name: str = GLM_STUDY, **facts) -> Manifest:
    """The manifest of `fits` pooled GLMs (see glm_budgets) among `hospitals` hospitals, t = `threshold`;
    `facts`: more public facts to show in its plan (family, outcome, columns, preset)."""
    budgets = glm_budgets(parameters, max_iter, fits=fits, settings=settings)
    plan = {"parameters": parameters, "max_iter": max_iter, "fits": fits, **facts}
    return _manifest(name, budgets, hospitals, threshold, ceremony, plan)


def table_manifest(params, hospitals: int, min_cell: int, *, threshold: int | None = None, levels: int = 0,
                   continuous: int = 0, split: bool = True, refreshers: int | None = None, settings: int = 1,
                   ceremony: bool = True, name: str = TABLE_STUDY, **facts) -> Manifest:
    """The manifest of one Table 1 (see table_budgets) among `hospitals` hospitals, t = `threshold`."""
    from ..params import get_preset

    params = get_preset(params)
    budgets = table_budgets(params, hospitals, min_cell, levels=levels, continuous=continuous, split=split,
                            refreshers=refreshers, settings=settings)
    plan = {"preset": params.name, "min_cell": min_cell, "levels": levels, "continuous": continuous,
            "split": split, **facts}
    return _manifest(name, budgets, hospitals, threshold, ceremony, plan)
