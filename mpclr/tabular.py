"""Reading tables into data sets: delimited text files (through pandas) and pandas DataFrames.

Files are read by pandas' C parser in one pass. Its own complaints are vague (a float conversion
error names no row, a short row is silently padded), so its result is accepted only when it is exactly
what a good file gives: one row per line, the expected columns, finite numbers for every feature, a
label in every row. Anything else sends the file through a careful pass that finds what reading it line
by line would find first (a blank line, a line with the wrong number of cells, then the first bad cell
in reading order) and names the file, line and column, as `mpclr.data.load_csv` documents. A good file
thus costs one pandas read; the careful pass (about a second more on 1,000,000 lines) is paid only by a
file that is refused, or one pandas could not read as numbers.

The separator is sniffed here on the first lines rather than by pandas: `read_csv(sep=None)` switches to
pandas' Python engine (about 20 times slower on 1,000,000 rows) and `csv.Sniffer` prefers the comma,
which a decimal comma in a semicolon file fools. We try tab, then semicolon, then comma, and take the
first that splits every sampled line into the same number (at least two) of cells.

Nothing here builds a `Dataset` (mpclr.data does, from what these readers return), so the two modules
do not import each other.
"""

from __future__ import annotations

import csv
import io
import math
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import DataError, ParameterError

MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "?", "."})
SEPARATORS = {"\t": "tab", ";": "semicolon", ",": "comma"}
_KNOWN_LABELS = ({0.0, 1.0}, {-1.0, 1.0}, {1.0, 2.0})
_SNIFF_LINES = 100


class _Where:
    """How messages name a place: "file X, line 7, column 2 ('bmi')" or "data frame 'df', row 7 ..."."""

    def __init__(self, what: str, unit: str, first: int, names: Sequence[str] | None, index=None):
        self.what, self.unit, self.first, self.names, self.index = what, unit, first, names, index

    def row(self, i: int) -> str:
        if self.index is None:
            return f"{self.unit} {self.first + i}"
        return f"{self.unit} {self.first + i} (index {_python(self.index[i])!r})"

    def column(self, j: int) -> str:
        return f"column {j + 1} ({self.names[j]!r})" if self.names else f"column {j + 1}"


def _python(v):
    """numpy scalars (also inside a MultiIndex tuple) as Python values, for messages."""
    return tuple(_python(x) for x in v) if isinstance(v, tuple) else v.item() if isinstance(v, np.generic) else v


# ------------------------------------------------------------------------------------------------
# Cells and labels (shared by files and frames)

def number(cell: str) -> float | None:
    """The cell as a finite float, or None if it is not a number."""
    try:
        v = float(cell)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def plain(v):
    """1.0 -> 1, for messages and `classes`."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _fmt(v) -> str:
    return repr(v) if isinstance(v, str) else f"{plain(v)}"


def _numeric(values: np.ndarray) -> np.ndarray | None:
    """Text cells as finite floats if every one is a number, else None."""
    import pandas as pd

    nums = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=np.float64)
    return nums if np.isfinite(nums).all() else None


def label_index(label, names: Sequence[str] | None, ncols: int, what: str) -> int:
    """The 0-based label column: "first", "last", an index (negative counts from the end) or a name."""
    if isinstance(label, bool):
        raise ParameterError(f"parameter label must be 'first', 'last', a column index or a column name, "
                             f"got {label!r}")
    if isinstance(label, int | np.integer):
        j = int(label)
        if not -ncols <= j < ncols:
            raise ParameterError(f"parameter label: column index {j} is out of range for the {ncols} "
                                 f"columns of {what}")
        return j % ncols
    if label == "first":
        return 0
    if label == "last":
        return ncols - 1
    if isinstance(label, str):
        if names is None:
            raise ParameterError(f"parameter label={label!r} names a column, but {what} has no "
                                 f"header line (pass header=True if line 1 holds column names)")
        hits = [j for j, s in enumerate(names) if s == label]
        if not hits:
            raise ParameterError(f"parameter label: {what} has no column named {label!r} "
                                 f"(columns: {', '.join(names)})")
        if len(hits) > 1:
            raise ParameterError(f"parameter label: {what} has {len(hits)} columns named {label!r} "
                                 f"(columns {', '.join(str(j + 1) for j in hits)})")
        return hits[0]
    raise ParameterError(f"parameter label must be 'first', 'last', a column index or a column name, "
                         f"got {label!r}")


def _first_missing(labels: np.ndarray) -> int | None:
    """The first label cell (stripped text) that is a missing-value marker, or None."""
    bad = np.flatnonzero(np.isin(np.char.lower(labels.astype(str)), list(MISSING)))
    return int(bad[0]) if bad.size else None


def encode_labels(values: np.ndarray, at: _Where, lab: int, positive) -> tuple[np.ndarray, tuple]:
    """Map the label cells (floats, or stripped text) to {0, 1}; see mpclr.data's docstring.

    Text cells that are all numbers count as numbers, so "1" and "1.0" are one class.
    """
    where = at.column(lab) + " (label)"
    values = np.asarray(values)
    nums = values.astype(np.float64) if values.dtype.kind in "iufb" else _numeric(values)
    numeric = nums is not None
    keys = nums if numeric else values.astype(str)
    distinct, first = np.unique(keys, return_index=True)
    distinct = distinct.tolist()
    shown = ", ".join(_fmt(v) for v in distinct[:6]) + (", ..." if len(distinct) > 6 else "")
    if len(distinct) == 1:
        raise DataError(f"{at.what}, {where}: the label must have exactly two classes, found one "
                        f"({shown}) in all {len(keys)} rows")
    if len(distinct) > 2:
        i = int(np.sort(first)[2])  # classes in order of first appearance: the third
        third = keys[i].item()
        raise DataError(f"{at.what}, {at.row(i)}, {where}: the label must have exactly two classes, found "
                        f"{len(distinct)} ({shown}); {_fmt(third)} on this {at.unit} is the third")
    if positive is None:
        if not numeric or set(distinct) not in _KNOWN_LABELS:
            raise DataError(f"{at.what}, {where}: labels {shown} are not one of {{0, 1}}, {{-1, 1}}, "
                            f"{{1, 2}}; pass positive= to name the positive class")
        neg, pos = distinct
    else:
        pkey = number(str(positive)) if numeric else str(positive).strip()
        if pkey not in distinct:
            raise ParameterError(f"parameter positive={positive!r} is not a label value of {at.what} "
                                 f"({where} holds {shown})")
        pos = pkey
        neg = distinct[0] if distinct[1] == pkey else distinct[1]
    return (keys == pos).astype(np.int64), (plain(neg), plain(pos))


def numeric_labels(values: np.ndarray, at: _Where, lab: int) -> tuple[np.ndarray, tuple]:
    """The label cells as finite numbers (an outcome to regress on), or a DataError naming the first other."""
    values = np.asarray(values)
    nums = values.astype(np.float64) if values.dtype.kind in "iufb" else _numeric(values)
    if nums is None:
        nums = np.array([number(str(v)) if number(str(v)) is not None else np.nan for v in values])
    bad = np.flatnonzero(~np.isfinite(nums))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{at.what}, {at.row(i)}, {at.column(lab)} (outcome): {_fmt(_python(values[i]))} is not a "
                        "finite number")
    return nums.astype(np.float64), ()


def check_constant(at: _Where, X: np.ndarray, columns: list[int]) -> None:
    const = np.flatnonzero((X == X[:1]).all(axis=0))
    if const.size:
        jj = int(const[0])
        raise DataError(f"{at.what}, {at.column(columns[jj])}: the column is constant (every row is "
                        f"{plain(float(X[0, jj]))}); it carries no information and cannot be "
                        f"standardized, drop it")


# ------------------------------------------------------------------------------------------------
# Delimited files

def _read_text(path: Path) -> str:
    """The decoded file; a UTF-8 BOM is dropped."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"file {path}: not found") from None
    except IsADirectoryError:
        raise DataError(f"file {path}: is a directory, not a data file") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"file {path}, line {line}: not valid UTF-8 text (byte 0x{raw[e.start]:02x})") from None


def _trim(path: Path, text: str) -> str:
    """The text without trailing blank lines (including the empty one after a final newline)."""
    end = len(text)
    while True:
        k = text.rfind("\n", 0, end)
        if text[k + 1: end].strip():
            return text[:end]
        if k < 0:
            raise DataError(f"file {path}: is empty (no rows)")
        end = k


def _split(path: Path, line: str, sep: str, number_: int) -> list[str]:
    """The line's cells, not yet stripped of spaces."""
    if '"' not in line:  # what csv.reader gives for a line without quotes, several times faster
        return line.split(sep)
    try:  # one line at a time: a stray quote must not swallow the next row
        return next(csv.reader([line], delimiter=sep))
    except csv.Error as e:
        raise DataError(f"file {path}, line {number_}: cannot split into cells ({e})") from None


def _sniff(path: Path, sample: list[str]) -> str:
    present = [s for s in SEPARATORS if s in sample[0]]
    if not present:
        raise DataError(f"file {path}, line 1: found no tab, semicolon or comma to separate columns; "
                        f"pass sep= explicitly")
    for sep in present:
        counts = {len(next(csv.reader([s], delimiter=sep))) for s in sample if s.strip()}
        if len(counts) == 1 and counts.pop() >= 2:
            return sep
    return present[0]  # no separator is consistent: the careful pass names the line that disagrees


def _lines(text: str, count: int | None = None) -> list[str]:
    parts = text.split("\n") if count is None else text.split("\n", count)[:count]
    return [s[:-1] if s.endswith("\r") else s for s in parts]


_BLANK_LINE = re.compile(r"\n[^\S\n]*\n")


def _check_lines(path: Path, text: str, data: bytes, sep: str, ncols: int, first_data: int) -> None:
    """Refuse the first blank line, else the first line that cannot be split, else the first line with the
    wrong number of cells: what reading the file line by line finds first. Counted with numpy when no
    quote can hide a separator (a second or so for 1,000,000 lines), else line by line."""
    m = _BLANK_LINE.search(text)  # line 1 and the last line are known not to be blank
    if m:
        raise DataError(f"file {path}, line {text.count(chr(10), 0, m.start()) + 2}: is blank (only trailing "
                        f"blank lines are allowed)")
    if '"' in text or len(sep.encode("utf-8")) != 1:
        cells = np.array([len(_split(path, line, sep, k + 1)) for k, line in enumerate(_lines(text))])
    else:
        b = np.frombuffer(data, np.uint8)
        bounds = np.r_[0, np.flatnonzero(b == 10) + 1, b.size]
        cells = np.diff(np.searchsorted(np.flatnonzero(b == ord(sep)), bounds)) + 1
    bad = np.flatnonzero(cells[first_data:] != ncols)
    if bad.size:
        k = int(bad[0]) + first_data
        raise DataError(f"file {path}, line {k + 1}: has {cells[k]} cells, expected {ncols} (as on line 1)")


def _read(data: bytes, sep: str, first_data: int):
    """pandas' C parser on the whole file, every cell as written (na_filter off), or None if it fails."""
    import pandas as pd

    try:
        with warnings.catch_warnings():  # a column of numbers and text is refused later: no need to warn
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)
            # no skipinitialspace: like the csv module, ' "5"' is text, not a quoted 5 (numbers may be padded)
            return pd.read_csv(io.BytesIO(data), sep=sep, header=None, skiprows=first_data, na_filter=False,
                               engine="c")
    except (ValueError, UnicodeError):  # pandas' ParserError and EmptyDataError are ValueErrors
        return None


def _clean(frame, rows: int, ncols: int, feats: list[int], lab: int):
    """(features, labels) if pandas' result is exactly a good file's, else None."""
    if frame is None or frame.shape != (rows, ncols):  # a quoted line break, a blank, short or long line
        return None
    if any(frame[j].dtype.kind not in "iuf" for j in feats):  # text, or "True"/"False" read as booleans
        return None
    X = frame[feats].to_numpy(dtype=np.float64)
    if not np.isfinite(X).all():  # inf
        return None
    y = frame[lab]
    if y.dtype.kind in "iuf":
        labels = y.to_numpy(dtype=np.float64)
        return (X, labels) if np.isfinite(labels).all() else None
    if y.dtype.kind == "b":
        return None
    labels = y.astype(str).str.strip().to_numpy(dtype=str)
    return None if _first_missing(labels) is not None else (X, labels)


def _careful(at: _Where, path: Path, text: str, frame, sep: str, first_data: int, feats: list[int], lab: int,
             header: bool):
    """Features and labels of a file whose lines are well formed; refuses the first bad cell, quoting it
    as splitting its line gives it."""
    import pandas as pd

    lines = _lines(text)

    def cell(i: int, j: int) -> str:
        k = first_data + i
        return _split(path, lines[k], sep, k + 1)[j].strip()

    if frame is None or frame.shape != (len(lines) - first_data, len(feats) + 1):  # quotes pandas reads otherwise
        frame = pd.DataFrame([_split(path, s, sep, k + 1) for k, s in enumerate(lines)][first_data:], dtype=object)
    X = np.empty((len(frame), len(feats)))
    for jj, j in enumerate(feats):
        col = frame[j]
        X[:, jj] = col.to_numpy(dtype=np.float64) if col.dtype.kind in "iuf" else pd.to_numeric(
            col.astype(str).str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(X)
    if bad.any():
        i = int(np.flatnonzero(bad.any(axis=1))[0])
        j = feats[int(np.flatnonzero(bad[i])[0])]
        c = cell(i, j)
        what = "is empty (missing value)" if c == "" else (
            f"holds {c!r}, a missing value" if c.lower() in MISSING else f"holds {c!r}, not a number")
        hint = " (if line 1 holds column names, pass header=True)" if i == 0 and not header else ""
        raise DataError(f"{at.what}, {at.row(i)}, {at.column(j)}: {what}{hint}")
    y = frame[lab]
    if y.dtype.kind in "iuf" and np.isfinite(y.to_numpy(dtype=np.float64)).all():
        return X, y.to_numpy(dtype=np.float64)
    if y.dtype.kind in "iufb":  # inf, or booleans: the labels as written
        labels = np.array([cell(i, lab) for i in range(len(frame))], dtype=str)
    else:
        labels = y.astype(str).str.strip().to_numpy(dtype=str)
    i = _first_missing(labels)
    if i is not None:
        raise DataError(f"{at.what}, {at.row(i)}, {at.column(lab)} (label): the label is missing ({cell(i, lab)!r})")
    return X, labels


def file_columns(path, sep: str | None = None, header: bool | None = None) -> tuple[list[str], bool]:
    """The column names of a delimited file and whether line 1 holds them, decided as `read_file` decides
    (without a header line: "column 1", "column 2", ...): what a form offers as the label column before
    the whole file is read."""
    path = Path(path)
    head = _lines(_trim(path, _read_text(path)), _SNIFF_LINES)
    if not head[0].strip():
        raise DataError(f"file {path}, line 1: is blank (only trailing blank lines are allowed)")
    first = [c.strip() for c in _split(path, head[0], sep or _sniff(path, head), 1)]
    if header is None:
        header = all(number(c) is None for c in first)
    return [(c if header and c else f"column {j + 1}") for j, c in enumerate(first)], bool(header)


def read_file(path, label="last", sep: str | None = None, header: bool | None = None, positive=None,
              numeric_label: bool = False) -> dict:
    """What `mpclr.data.load_csv` needs to build a Dataset from a delimited file (see there). With
    numeric_label the label column is any finite number (a regression's outcome), returned as float y."""
    path = Path(path)
    text = _trim(path, _read_text(path))
    head = _lines(text, _SNIFF_LINES)
    if not head[0].strip():
        raise DataError(f"file {path}, line 1: is blank (only trailing blank lines are allowed)")
    if sep is None:
        sep = _sniff(path, head)
    elif not isinstance(sep, str) or len(sep) != 1:
        raise ParameterError(f"parameter sep must be a single character or None, got {sep!r}")
    first = [c.strip() for c in _split(path, head[0], sep, 1)]
    ncols = len(first)
    if header is None:
        header = all(number(c) is None for c in first)
    names = [c or f"column {j + 1}" for j, c in enumerate(first)] if header else None
    first_data = 1 if header else 0
    rows = text.count("\n") + 1 - first_data
    if rows == 0:
        raise DataError(f"file {path}: has a header line but no data rows")
    data = text.encode("utf-8")
    try:
        if ncols < 2:
            raise DataError(f"file {path}: needs a label column and at least one feature column, found "
                            f"{ncols} column (separator {SEPARATORS.get(sep, repr(sep))})")
        lab = label_index(label, names, ncols, f"file {path}")
    except (DataError, ParameterError):
        _check_lines(path, text, data, sep, ncols, first_data)  # a malformed line is the first thing to fix
        raise
    feats = [j for j in range(ncols) if j != lab]
    frame = _read(data, sep, first_data)
    parsed = _clean(frame, rows, ncols, feats, lab)
    at = _Where(f"file {path}", "line", first_data + 1, names)
    if parsed is None:
        _check_lines(path, text, data, sep, ncols, first_data)
        parsed = _careful(at, path, text, frame, sep, first_data, feats, lab, header)
    X, labels = parsed
    y, classes = numeric_labels(labels, at, lab) if numeric_label else encode_labels(labels, at, lab, positive)
    check_constant(at, X, feats)
    return {"X": X, "y": y, "classes": classes,
            "feature_names": [names[j] for j in feats] if names else [f"x{j + 1}" for j in feats],
            "meta": {"sep": sep, "header": bool(header), "label_column": lab, "first_data_line": first_data + 1,
                     "label_name": names[lab] if names else None}}


# ------------------------------------------------------------------------------------------------
# pandas DataFrames

def _numbers(dtype) -> bool:
    """Real numbers or booleans, numpy's or pandas' nullable ones (Int64, Float64, boolean)."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(dtype):
        return True
    return pd.api.types.is_numeric_dtype(dtype) and np.dtype(getattr(dtype, "numpy_dtype", dtype)).kind in "iuf"


def read_frame(frame, label="last", positive=None, what: str = "the data frame", numeric_label: bool = False) -> dict:
    """What `mpclr.data.load_frame` needs to build a Dataset from a DataFrame (see there); numeric_label as
    for `read_file`."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise ParameterError(f"parameter frame must be a pandas DataFrame, got {type(frame).__name__}")
    names = [str(c) for c in frame.columns]
    n, ncols = frame.shape
    if n == 0:
        raise DataError(f"{what}: has no rows")
    if ncols < 2:
        raise DataError(f"{what}: needs a label column and at least one feature column, found {ncols} column")
    default_index = isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0 and frame.index.step == 1
    at = _Where(what, "row", 1, names, index=None if default_index else frame.index)
    lab = label_index(label, names, ncols, what)
    feats = [j for j in range(ncols) if j != lab]
    for j in feats:
        dtype = frame.dtypes.iloc[j]
        if not _numbers(dtype):
            raise DataError(f"{what}, {at.column(j)}: holds {dtype} values, not numbers; encode it as numbers "
                            f"first (e.g. pandas.get_dummies for categories, or astype(float) for numbers "
                            f"stored as text)")
    X = np.column_stack([frame.iloc[:, j].to_numpy(dtype=np.float64, na_value=np.nan) for j in feats])
    bad = ~np.isfinite(X)
    if bad.any():
        i = int(np.flatnonzero(bad.any(axis=1))[0])
        jj = int(np.flatnonzero(bad[i])[0])
        kind = "is missing" if np.isnan(X[i, jj]) else f"is {X[i, jj]} (not finite)"
        raise DataError(f"{what}, {at.row(i)}, {at.column(feats[jj])}: {kind}")
    y = frame.iloc[:, lab]
    if y.isna().any():
        i = int(np.flatnonzero(y.isna().to_numpy())[0])
        raise DataError(f"{what}, {at.row(i)}, {at.column(lab)} (label): the label is missing")
    if _numbers(y.dtype):
        labels = y.to_numpy(dtype=np.float64)
    else:
        labels = y.astype(str).str.strip().to_numpy(dtype=str)
        i = _first_missing(labels)
        if i is not None:
            raise DataError(f"{what}, {at.row(i)}, {at.column(lab)} (label): the label is missing ({str(labels[i])!r})")
    yy, classes = numeric_labels(labels, at, lab) if numeric_label else encode_labels(labels, at, lab, positive)
    check_constant(at, X, feats)
    return {"X": X, "y": yy, "classes": classes, "feature_names": [names[j] for j in feats],
            "meta": {"label_column": lab, "label_name": names[lab]}}
