"""The notebooks' parameters: one registry with the type, default and rule of each, checked the same
way by the sequence runner (before any kernel starts) and by each notebook's validation cell.

A notebook's `parameters` cell declares one parameter per line, `name: hint = literal  # what it is`.
The hint and the default must agree with the registry below (tests/notebooks checks it), so a parameter
means the same thing in every notebook and in every batch grid. A notebook outside the study sequence may
start from another default when the registry says so (`Parameter.notebook_defaults`: the workshop starts
from the quick `fast` preset, the study from `train`).

Rules that need the cryptographic code (is this smudging sigma possible with this preset?) are left to
that code (`mpclr.Params`): it raises a ParameterError naming the parameter when the notebook builds the
parameter set.
"""

from __future__ import annotations

import ast
import difflib
import math
import os
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..data import SHARED_NAMES, shared_data_dir
from ..errors import ParameterError
from ..params import PRESETS
from ..spec import RENAMED, renamed_parameters

__all__ = [
    "Parameter",
    "PARAMETERS",
    "DATASETS",
    "check_parameters",
    "declared_parameters",
    "DeclaredParameter",
    "resolve_dataset",
    "RENAMED",
    "renamed_parameters",
    "older_name",
]


# The data sets a study may name (mpclr.data.load): the embedded default (scikit-learn's breast-cancer
# data) and the HELR benchmark sets; besides these, "synthetic:NxD" and the path of a CSV/TSV file.
DATASETS = ("breast_cancer", *SHARED_NAMES)
_SYNTHETIC = re.compile(r"synthetic:(\d+)x(\d+)")


def resolve_dataset(spec: str) -> str:
    """The data set spec as mpclr.data.load takes it: names and synthetic:NxD unchanged, a file path made
    absolute (a relative path starts at the project root, as run folders do: papermill and JupyterLab
    run in different folders)."""
    if spec in DATASETS or spec.startswith("synthetic"):
        return spec
    from .paths import project_root

    path = Path(spec).expanduser()
    if not path.is_absolute():
        path = project_root() / path
    return os.fspath(path.resolve())


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
    notebook_defaults: Mapping[str, object] = field(default_factory=dict)  # notebook stem -> its default

    def default_for(self, notebook: str) -> object:
        """The default a notebook's parameters cell declares (the registry's unless it names the notebook)."""
        return self.notebook_defaults.get(notebook, self.default)

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
    n = values.get("hospitals")
    if not _is_int(n):
        return ""
    return "" if 1 <= v <= n else f"must be in [1, hospitals = {n}] (None means all {n}: n-out-of-n)"


def _decryptors(v, values) -> str:
    n = values.get("hospitals")
    if not v:
        return "must name at least one hospital (None means all)"
    if len(set(v)) != len(v):
        return "lists a hospital twice"
    if _is_int(n) and not all(0 <= i < n for i in v):
        return f"must hold hospital indices in [0, {n - 1}] (hospitals = {n})"
    return ""


def _rotations(v, _) -> str:
    if any(k == 0 for k in v):
        return "must not contain 0 (no rotation needs no key)"
    if len(set(v)) != len(v):
        return "lists a step twice"
    return ""


def _open_unit(v, _) -> str:
    return "" if 0.0 < v < 1.0 else "must be a probability in (0, 1)"


def _dataset(v, _) -> str:
    names = f"{', '.join(DATASETS)}, synthetic:NxD or the path of a CSV/TSV file"
    if v in SHARED_NAMES:
        path = shared_data_dir() / f"{v}.txt"
        return "" if path.is_file() else f"names a shared data set that is not on this machine ({path} is missing)"
    if v in DATASETS:
        return ""
    if v.startswith("synthetic"):
        m = _SYNTHETIC.fullmatch(v)
        if not m:
            return "must be written synthetic:NxD (rows x features), e.g. synthetic:300x4"
        return "" if int(m.group(1)) >= 2 and int(m.group(2)) >= 1 else "needs N >= 2 rows and D >= 1 features"
    if not v:
        return f"must be one of {names}"
    path = resolve_dataset(v)
    if not Path(path).is_file():
        return f"must be one of {names} (relative paths start at the project root); there is no file {path}"
    return ""


def _label(v, values) -> str:
    if not v:
        return "must be 'last', 'first' or a column name"
    dataset = values.get("dataset")
    if v != "last" and isinstance(dataset, str) and (dataset in DATASETS or dataset.startswith("synthetic")):
        return f"applies to a CSV/TSV file only (dataset = {dataset!r} has its own labels); leave it 'last'"
    return ""


def split_fractions(text: str) -> list[float] | None:
    """'0.5,0.3,0.2' -> [0.5, 0.3, 0.2]; None when the text is not a list of numbers (a column name)."""
    parts = [p.strip() for p in text.split(",")]
    try:
        return [float(p) for p in parts]
    except ValueError:
        return None


def _split(v, values) -> str:
    if v == "even" or not v.strip():
        return "" if v == "even" else "must be 'even', fractions such as '0.5,0.3,0.2' or a feature column name"
    fractions = split_fractions(v)
    if fractions is None:
        return ""  # a feature column: checked against the data when it is loaded (notebook 00)
    n = values.get("hospitals")
    if _is_int(n) and len(fractions) != n:
        return f"lists {len(fractions)} fractions for hospitals = {n}"
    if not all(math.isfinite(f) and f > 0 for f in fractions):
        return "must list positive fractions"
    return "" if abs(sum(fractions) - 1) <= 1e-6 else f"fractions must sum to 1 (they sum to {sum(fractions):g})"


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
        Parameter(
            "dataset",
            "str",
            "breast_cancer",
            "data set: breast_cancer, edin, lbw, pcs, uis, synthetic:NxD or a CSV/TSV path (from the project root)",
            _dataset,
        ),
        Parameter(
            "label",
            "str",
            "last",
            "label column of a CSV/TSV data set: 'last', 'first' or its name in the header line",
            _label,
        ),
        Parameter(
            "split",
            "str",
            "even",
            "rows to hospitals: 'even' (shuffled by the seed), fractions '0.5,0.3,0.2', or a hospital-id column",
            _split,
        ),
        Parameter("hospitals", "int", 3, "number of hospitals (data providers, key holders)", _between(2, 64)),
        Parameter(
            "threshold",
            "int | None",
            None,
            "key holders needed to decrypt; None = all of them (n-out-of-n)",
            _threshold,
        ),
        Parameter(
            "preset",
            "str",
            "train",
            "CKKS parameter set; train: the study preset (depth 7, one degree-5 iteration per refresh); fast: workshop",
            _choice(tuple(PRESETS)),
            notebook_defaults={"90_workshop": "fast"},
        ),
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
            0,
            "seed of the public randomness only (split, synthetic data); None = 00 draws one and records it",
            _between(0, 2**63 - 1),
        ),
        Parameter("folds", "int", 5, "cross-validation folds trained together", _between(2, 20)),
        Parameter("iterations", "int", 6, "training iterations (Nesterov gradient steps)", _between(1, 100)),
        Parameter("degree", "int", 5, "degree of the least-squares sigmoid polynomial on [-8, 8]", _choice((3, 5, 7))),
        Parameter(
            "rotation_steps",
            "list[int]",
            [],
            "rotations to make keys for besides those the study's layout needs (one collective round each)",
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
        Parameter(
            "cutoff",
            "float",
            0.5,
            "predicted probability above which the secure evaluation counts a row positive (confusion matrix)",
            _open_unit,
        ),
        Parameter(
            "refine_rounds",
            "int | None",
            None,
            "secure evaluation's ROC refinement rounds (more thresholds, more counts revealed); None: its default",
            _between(0, 20),
        ),
        Parameter(
            "table_one",
            "bool",
            True,
            "02b shows the study's Table 1; 01 agrees its requests (counts, refreshes, decryptions) in the manifest",
        ),
        Parameter(
            "regression_table",
            "bool",
            False,
            "07's pooled GLM; 01 agrees its requests in the manifest (two fits of up to 27 rounds: ML, then ridge)",
        ),
        Parameter(
            "connection",
            "str",
            "",
            "Flower SuperLink connection in FLWR_HOME's config.toml; empty: a loopback deployment run here",
        ),
        Parameter("flwr_home", "str", "", "the coordinator's FLWR_HOME; empty: $FLWR_HOME or ~/.flwr"),
        Parameter(
            "decrypt_models",
            "bool",
            True,
            "the key holders decrypt the fold models for the comparison (reveals every coefficient)",
        ),
        Parameter(
            "fit_estimator",
            "bool",
            False,
            "00 also runs the whole study in one call (mpclr.EncryptedLogisticRegressionCV), as long as steps 01-05",
        ),
    ]
}


def older_name(namespace: Mapping, name: str, value):
    """A notebook's value of parameter `name`, or (DeprecationWarning) the value papermill gave under its
    older name (`papermill ... -p parties 4` puts `parties = 4` into the notebook's namespace)."""
    for old, new in RENAMED.items():
        if new == name and old in namespace:
            warnings.warn(f"parameter {old} is now called {new}", DeprecationWarning, stacklevel=2)
            return namespace[old]
    return value


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_parameters(values: Mapping | None = None, /, *, accepted: Iterable[str] | None = None, **kwargs) -> dict:
    """Check parameter values against the registry; return them as a dict (unchanged).

    Raises one ParameterError listing every problem, each naming its parameter. `accepted` limits the
    names allowed (the parameters the notebooks to run declare). Rules that link parameters (threshold
    <= hospitals) use the registry default of the other parameter when it is not given. A parameter's
    older name (RENAMED: parties) is taken with a DeprecationWarning and returned under its new name.
    """
    given = renamed_parameters({**(values or {}), **kwargs}, stacklevel=3)
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
