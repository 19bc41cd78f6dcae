"""A hospital's side of the statistics protocols: its own disclosure settings, its named columns, and
the three steps it answers (registered on every hospital through mpclr.roles.extensions'
`register_handlers`, as plain functions of (hospital, fields, sender)).

stats.settings  the hospital's disclosure settings and its columns' names (public, as DataSHIELD's are:
                the coordinator picks a table's min_cell as the largest of them)
glm.step        at the public coefficients: X^T W X, X^T (y - mu) and the sums the deviance and
                log-likelihood need, packed (mpclr.stats.encoding) and encrypted under the collective key
table.counts    a Table 1's counts and sums, encrypted; and, for the secure small-cell test, each count
                clipped at min_cell (a pooled count is below min_cell exactly when the pooled clipped one is)

What the hospital decides, whatever the coordinator asks:
- a model with more parameters than `glm_max_fraction` (default 0.33) of its own rows is refused
  (DataSHIELD's nfilter.glm);
- a table is refused if its min_cell is below the hospital's own `min_cell` (default 5), if a categorical
  variable does not list every value the hospital's rows take (the unlisted level's count would follow by
  difference from the total and the listed cells, unchecked), if a continuous variable takes three or
  fewer distinct values here (count, mean and SD per class would give its values' counts away), or if a
  variable was tabulated before as the other kind in this session.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import ParameterError, ProtocolError
from ..roles.extensions import register_handlers
from .encoding import SHIFT, check_room, pack
from .family import family, local_sums
from .requests import INTERCEPT, TableRequest, read_step

__all__ = ["Settings", "configure", "settings_of", "give_data", "HospitalTable", "HANDLERS", "MIN_DISTINCT"]

MIN_DISTINCT = 4  # a continuous variable needs more than three distinct values at the hospital
STATE = "mpclr.stats"  # the hospital's extension_state key


@dataclass(frozen=True)
class Settings:
    """A hospital's own disclosure settings (its IT sets them; in a deployment, hospital configuration keys
    glm-max-fraction and min-cell)."""

    glm_max_fraction: float = 0.33
    min_cell: int = 5

    def __post_init__(self):
        f = self.glm_max_fraction
        if isinstance(f, bool) or not isinstance(f, int | float) or not 0.0 < float(f) <= 1.0:
            raise ParameterError(f"setting glm_max_fraction must be in (0, 1], got {f!r}")
        m = self.min_cell
        if isinstance(m, bool) or not isinstance(m, int | np.integer) or not 1 <= m <= 1000:
            raise ParameterError(f"setting min_cell must be an integer in 1..1000, got {m!r}")
        object.__setattr__(self, "glm_max_fraction", float(f))
        object.__setattr__(self, "min_cell", int(m))


@dataclass(frozen=True)
class HospitalTable:
    """The hospital's rows as named numeric columns (features and outcomes alike)."""

    names: tuple[str, ...]
    values: np.ndarray

    def column(self, name: str, hospital: str) -> np.ndarray:
        try:
            return self.values[:, self.names.index(name)]
        except ValueError:
            raise ProtocolError(f"{hospital} has no column {name!r}") from None

    @property
    def rows(self) -> int:
        return self.values.shape[0]


def _state(node) -> dict:
    return node.__dict__.setdefault("_mpclr_stats", {"settings": Settings(), "data": None})


def configure(node, settings: Settings | None = None, **changes) -> Settings:
    """Set a hospital's disclosure settings (its own decision; the coordinator cannot)."""
    st = settings if settings is not None else Settings(**{**asdict(settings_of(node)), **changes})
    if settings is not None and changes:
        raise ParameterError("give a Settings or keyword settings, not both")
    _state(node)["settings"] = st
    return st


def settings_of(node) -> Settings:
    return _state(node)["settings"]


def give_data(node, values, names) -> HospitalTable:
    """The hospital's own rows as named columns (a simulation plays every hospital; a hospital reads its file)."""
    X = np.asarray(values, dtype=np.float64)
    names = tuple(str(n) for n in names)
    if X.ndim != 2 or X.shape[1] != len(names) or X.shape[0] == 0:
        raise ParameterError(f"{node.name}: {len(names)} column names for values of shape {X.shape}")
    if len(set(names)) != len(names):
        raise ParameterError(f"{node.name}: column names must be distinct, got {list(names)}")
    if not np.isfinite(X).all():
        i, j = np.argwhere(~np.isfinite(X))[0]
        raise ParameterError(f"{node.name}: row {i + 1}, column {names[j]!r} is not a finite number")
    table = HospitalTable(names, X)
    _state(node)["data"] = table
    return table


def _data(node) -> HospitalTable:
    table = _state(node)["data"]
    if table is None:
        raise ProtocolError(f"{node.name} has no data for statistics (mpclr.stats.give_data)")
    return table


def _from_server(node, sender: str, step: str) -> None:
    node.from_server(sender, step)


# --- stats.settings --------------------------------------------------------------------------------
def on_settings(node, fields, sender):
    """The hospital's disclosure settings and its columns' names (public, as DataSHIELD's are)."""
    s = node._require_session()
    if sender not in (s.server, s.researcher):
        raise ProtocolError(f"stats.settings: only the server or the researcher asks, not {sender}")
    table = _state(node)["data"]
    return {**asdict(settings_of(node)), "columns": list(table.names) if table is not None else []}


# --- glm.step ---------------------------------------------------------------------------------------
def on_glm_step(node, fields, sender):
    _from_server(node, sender, "glm.step")
    model, beta, scaling = read_step(fields)
    data = _data(node)
    st = settings_of(node)
    if model.p > st.glm_max_fraction * data.rows:
        raise ProtocolError(
            f"{node.name} refuses a model of {model.p} parameters: its glm_max_fraction {st.glm_max_fraction:g} "
            f"allows at most {int(st.glm_max_fraction * data.rows)} with its {data.rows} rows"
        )
    if INTERCEPT in model.columns:
        raise ProtocolError(f"{INTERCEPT!r} names the constant column; it cannot be a data column")
    fam = family(model.family)
    y = data.column(model.outcome, node.name)
    why = fam.check_outcome(y)
    if why:
        raise ProtocolError(f"{node.name}, column {model.outcome!r}: {why}")
    cols = [data.column(c, node.name) for c in model.columns]
    if model.intercept:
        cols.insert(0, np.ones(data.rows))
    X = np.column_stack(cols)
    H, g, scalars = local_sums(fam, X, y, beta)
    vec = pack(H, g, scalars, scaling)
    check_room(vec, node.ctx, f"{node.name}: glm.step")
    return {"ciphertext": node.encrypt_bytes(vec), "length": int(vec.size)}


# --- table.counts -----------------------------------------------------------------------------------
def _check_table(node, req: TableRequest, data: HospitalTable) -> dict:
    st = settings_of(node)
    s = node._require_session()
    if req.min_cell < st.min_cell:
        raise ProtocolError(f"{node.name} suppresses pooled cells below {st.min_cell}: a table with min_cell "
                            f"{req.min_cell} is refused")
    if req.bound != req.min_cell * s.n:
        raise ProtocolError(f"the clipping bound must be min_cell x {s.n} hospitals = {req.min_cell * s.n}, "
                            f"got {req.bound:g}")
    if 2 * req.cells > node.ctx.params.slots:
        raise ProtocolError(f"a table of {req.cells} cells does not fit the secure small-cell test "
                            f"(at most {node.ctx.params.slots // 2})")
    columns = {}
    if req.by is not None:
        by = data.column(req.by, node.name)
        if not np.isin(by, (0.0, 1.0)).all():
            raise ProtocolError(f"{node.name}: a table is split by a 0/1 column; {req.by!r} takes other values")
        columns[req.by] = by
    for name, levels in req.categorical:
        v = data.column(name, node.name)
        if not np.isin(v, levels).all():
            raise ProtocolError(
                f"{node.name}: categorical variable {name!r} takes values outside the listed levels here; a level "
                "left out would be derivable as the total minus the listed cells, without the small-cell check: "
                "list every level"
            )
        columns[name] = v
    for name in req.continuous:
        v = data.column(name, node.name)
        if np.unique(v).size < MIN_DISTINCT:
            raise ProtocolError(
                f"{node.name}: {name!r} takes {np.unique(v).size} distinct values here; its count, mean and SD per "
                "class would give away how many rows take each value: ask for it as categorical"
            )
        columns[name] = v
    kinds = node.extension_state.setdefault(STATE, {}).setdefault("kinds", {})
    asked = {**{n: "continuous" for n in req.continuous}, **{n: "categorical" for n, _ in req.categorical}}
    for name, kind in asked.items():
        if kinds.get(name, kind) != kind:
            raise ProtocolError(
                f"{node.name}: {name!r} was tabulated as {kinds[name]} in this session; as {kind} as well, the two "
                "tables together could reveal cells one of them suppressed"
            )
    kinds.update(asked)
    return columns


def local_table(req: TableRequest, columns: dict, rows: int):
    """(counts in `req.cell_keys()` order; per continuous variable its sums and sums of squares per table
    column)."""
    masks = [np.ones(rows, dtype=bool)]
    if req.by is not None:
        masks += [columns[req.by] == 0.0, columns[req.by] == 1.0]
    counts = []
    for mask in masks:
        for name, levels in req.categorical:
            v = columns[name][mask]
            counts += [float(np.count_nonzero(v == lv)) for lv in levels]
    if req.by is not None:
        counts += [float(masks[1].sum()), float(masks[2].sum())]
    counts.append(float(rows))
    sums = []
    for name in req.continuous:
        x = columns[name]
        sums.append(np.array([x[m].sum() for m in masks] + [(x[m] ** 2).sum() for m in masks]))
    return np.array(counts), sums


def on_table_counts(node, fields, sender):
    _from_server(node, sender, "table.counts")
    req = TableRequest.from_fields(fields)
    data = _data(node)
    columns = _check_table(node, req, data)
    counts, sums = local_table(req, columns, data.rows)
    reply = {}
    # each count clipped at min_cell and divided by the public bound, twice (the two tests)
    clipped = np.minimum(counts, req.min_cell) / req.bound
    reply["flags"] = node.encrypt_bytes(np.concatenate([clipped, clipped]))
    # the continuous variables' sums packed into one ciphertext (variable by variable): one encryption and
    # one decryption share for all of them, however many
    packed = np.concatenate(sums) * 2.0**SHIFT if sums else None
    for vec in (counts * 2.0**SHIFT, *([] if packed is None else [packed])):
        check_room(vec, node.ctx, f"{node.name}: table.counts")
    reply["counts"] = node.encrypt_bytes(counts * 2.0**SHIFT)
    reply["sums"] = [] if packed is None else [node.encrypt_bytes(packed)]
    return reply


HANDLERS = {"stats.settings": on_settings, "glm.step": on_glm_step, "table.counts": on_table_counts}
register_handlers(HANDLERS)
