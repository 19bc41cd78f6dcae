"""The notebooks' parameters: one registry with the type, default and rule of each, checked the same
way by the sequence runner (before any kernel starts) and by each notebook's validation cell.

A notebook's `parameters` cell declares one parameter per line, `name: hint = literal  # what it is`.
The hint and the default must agree with the registry below (tests/notebooks checks it), so a parameter
means the same thing in every notebook and in every batch grid.

Rules that need the cryptographic code (is this smudging sigma possible with this preset?) are left to
that code (`mpclr.Params`): it raises a ParameterError naming the parameter when the notebook builds the
parameter set.
"""

from __future__ import annotations

import ast
import difflib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from ..errors import ParameterError
from ..params import PRESETS

__all__ = [
    "Parameter",
    "PARAMETERS",
    "DATASETS",
    "check_parameters",
    "declared_parameters",
    "DeclaredParameter",
]

# The data step (02) owns data loading; until it lands this is the list of names a study may record:
# the embedded default (scikit-learn's breast-cancer data) and the HELR benchmark sets.
DATASETS = ("breast_cancer", "edin", "lbw", "pcs", "uis")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_float(v) -> bool:
    return (isinstance(v, float) and math.isfinite(v)) or _is_int(v)


_BASE_TYPES: dict[str, tuple[Callable[[object], bool], str]] = {
    "str": (lambda v: isinstance(v, str), "a string"),
    "int": (_is_int, "an integer"),
    "float": (_is_float, "a finite number"),
    "bool": (lambda v: isinstance(v, bool), "True or False"),
    "list[int]": (lambda v: isinstance(v, list) and all(_is_int(x) for x in v), "a list of integers"),
}


def _type_check(hint: str) -> tuple[Callable[[object], bool], str]:
    parts = [p.strip() for p in hint.split("|")]
    optional = "None" in parts
    parts = [p for p in parts if p != "None"]
    if len(parts) != 1 or parts[0] not in _BASE_TYPES:
        raise ValueError(f"unsupported type hint {hint!r}")
    ok, what = _BASE_TYPES[parts[0]]
    if optional:
        return (lambda v: v is None or ok(v)), f"{what} or None"
    return ok, what


@dataclass(frozen=True)
class Parameter:
    """One notebook parameter. `rule(value, values)` returns what is wrong ("" when nothing is); it sees
    all the parameters' values, for rules that link two of them."""

    name: str
    hint: str
    default: object
    help: str
    rule: Callable[[object, Mapping], str] | None = None

    def problem(self, value, values: Mapping) -> str:
        ok, what = _type_check(self.hint)
        if not ok(value):
            return f"parameter {self.name} must be {what} ({self.hint}), got {value!r} ({type(value).__name__})"
        if self.rule is not None and value is not None:
            msg = self.rule(value, values)
            if msg:
                return f"parameter {self.name} {msg}, got {value!r}"
        return ""


def _between(lo, hi) -> Callable[[object, Mapping], str]:
    return lambda v, _: "" if lo <= v <= hi else f"must be in [{lo}, {hi}]"


def _choice(options) -> Callable[[object, Mapping], str]:
    return lambda v, _: "" if v in options else f"must be one of {', '.join(map(repr, options))}"


def _threshold(v, values) -> str:
    n = values.get("parties")
    if not _is_int(n):
        return ""
    return "" if 1 <= v <= n else f"must be in [1, parties = {n}] (None means all {n}: n-out-of-n)"


def _decryptors(v, values) -> str:
    n = values.get("parties")
    if not v:
        return "must name at least one party (None means all)"
    if len(set(v)) != len(v):
        return "lists a party twice"
    if _is_int(n) and not all(0 <= i < n for i in v):
        return f"must hold party indices in [0, {n - 1}] (parties = {n})"
    return ""


def _rotations(v, _) -> str:
    if any(k == 0 for k in v):
        return "must not contain 0 (no rotation needs no key)"
    if len(set(v)) != len(v):
        return "lists a step twice"
    return ""


def _sweep(v, _) -> str:
    if not v:
        return "must list at least one value"
    return "" if all(0 <= b <= 40 for b in v) else "must hold values in [0, 40]"


PARAMETERS: dict[str, Parameter] = {
    p.name: p
    for p in [
        Parameter(
            "run_dir",
            "str",
            "",
            "run folder; '' = runs/interactive (or $MPCLR_RUN_DIR); relative = from the project root",
        ),
        Parameter("dataset", "str", "breast_cancer", "data set of the study", _choice(DATASETS)),
        Parameter("parties", "int", 3, "number of hospitals (data providers, key holders)", _between(2, 64)),
        Parameter(
            "threshold",
            "int | None",
            None,
            "key holders needed to decrypt; None = all of them (n-out-of-n)",
            _threshold,
        ),
        Parameter("preset", "str", "fast", "CKKS parameter set", _choice(tuple(PRESETS))),
        Parameter(
            "smudging_bits",
            "float | None",
            None,
            "log2 of the smudging noise sigma of a decryption; None = the preset's",
            _between(0, 60),
        ),
        Parameter("scale_bits", "int | None", None, "log2 of the CKKS scale; None = the preset's", _between(20, 50)),
        Parameter(
            "seed",
            "int | None",
            None,
            "seed of the public randomness only (splits, folds); None = fresh",
            _between(0, 2**63 - 1),
        ),
        Parameter("folds", "int", 5, "cross-validation folds trained together", _between(2, 20)),
        Parameter("iterations", "int", 7, "training iterations (Nesterov gradient steps)", _between(1, 100)),
        Parameter("degree", "int", 3, "degree of the least-squares sigmoid polynomial on [-8, 8]", _choice((3, 5, 7))),
        Parameter(
            "rotation_steps",
            "list[int]",
            [1, 2, 4, 8],
            "slot rotations to make keys for (one collective round each)",
            _rotations,
        ),
        Parameter(
            "decryptors",
            "list[int] | None",
            None,
            "indices of the hospitals that send a decryption share; None = all",
            _decryptors,
        ),
        Parameter("sweep_bits", "list[int]", [0, 8, 16, 24, 32], "smudging log2 sigma values to compare", _sweep),
    ]
}


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_parameters(values: Mapping | None = None, /, *, accepted: Iterable[str] | None = None, **kwargs) -> dict:
    """Check parameter values against the registry; return them as a dict (unchanged).

    Raises one ParameterError listing every problem, each naming its parameter. `accepted` limits the
    names allowed (the parameters the notebooks to run declare). Rules that link parameters (threshold
    <= parties) use the registry default of the other parameter when it is not given.
    """
    given = {**(values or {}), **kwargs}
    allowed = set(PARAMETERS) if accepted is None else set(accepted)
    problems = []
    for name in given:
        if name not in allowed:
            where = "the notebooks to run accept" if accepted is not None else "known parameters are"
            problems.append(
                f"unknown parameter {name!r}{_suggest(name, allowed)}; {where}: " f"{', '.join(sorted(allowed))}"
            )
    effective = {name: p.default for name, p in PARAMETERS.items()}
    effective.update({k: v for k, v in given.items() if k in PARAMETERS})
    for name, value in given.items():
        if name in PARAMETERS and name in allowed:
            msg = PARAMETERS[name].problem(value, effective)
            if msg:
                problems.append(msg)
    if problems:
        raise ParameterError(
            "; ".join(problems)
            if len(problems) == 1
            else f"{len(problems)} invalid parameters:\n  " + "\n  ".join(problems)
        )
    return dict(given)


@dataclass(frozen=True)
class DeclaredParameter:
    name: str
    hint: str
    default: object
    comment: str
    line: int


def declared_parameters(source: str, where: str = "parameters cell") -> list[DeclaredParameter]:
    """The parameters a `parameters` cell declares: `name: hint = literal  # comment`, one per line.

    Raises ParameterError for anything else in the cell (statements, non-literal defaults, no hint)."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ParameterError(f"{where}: not valid Python ({exc})") from None
    lines = source.splitlines()
    out = []
    for node in tree.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value):
            raise ParameterError(
                f"{where}, line {node.lineno}: only `name: type = literal  # comment` lines belong here"
            )
        try:
            default = ast.literal_eval(node.value)
        except ValueError:
            raise ParameterError(
                f"{where}, line {node.lineno}: the default of {node.target.id} must be a " "literal"
            ) from None
        if node.end_lineno != node.lineno:
            raise ParameterError(f"{where}, line {node.lineno}: write {node.target.id} on one line")
        rest = lines[node.lineno - 1][node.end_col_offset :]
        comment = rest.split("#", 1)[1].strip() if "#" in rest else ""
        out.append(DeclaredParameter(node.target.id, ast.unparse(node.annotation), default, comment, node.lineno))
    return out
