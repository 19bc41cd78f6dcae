"""Where the study page's rows come from: a data set shipped with mpclr, or a file the user uploads.

Uploads go to a private temporary folder (mode 0700, one file at a time) that is removed when the kernel
ends: `weakref.finalize` runs at interpreter exit (atexit) or when the folder object is collected,
whichever comes first. A kernel killed outright (SIGKILL) runs neither, so each new folder first removes
the folders of this user's app kernels that are no longer running. The loader's errors name the file
by its upload name, not by the temporary path.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import weakref
from dataclasses import dataclass, replace
from pathlib import Path

from ..data import Dataset, load, load_csv, load_frame, shared_available
from ..errors import DataError
from ..tabular import file_columns

__all__ = ["UploadFolder", "Source", "shipped_names", "safe_name", "PREFIX"]

PREFIX = "mpclr-app-"
_FOLDER = re.compile(rf"{re.escape(PREFIX)}(\d+)-\w+")


def shipped_names() -> list[str]:
    """The data sets a page offers: scikit-learn's breast cancer and the shipped medical sets present here."""
    return ["breast_cancer", *shared_available()]


def safe_name(name: str) -> str:
    """An uploaded file's name, reduced to a plain file name (no folders, no odd characters)."""
    base = Path(str(name).replace("\\", "/")).name
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", base).lstrip(".")[:100]
    return clean or "upload.csv"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep(root: Path) -> list[Path]:
    """Remove this user's upload folders whose kernel is gone (it was killed before it could clean up)."""
    gone = []
    for folder in root.glob(f"{PREFIX}*"):
        m = _FOLDER.fullmatch(folder.name)
        try:
            if m and folder.is_dir() and folder.stat().st_uid == os.getuid() and not _alive(int(m.group(1))):
                shutil.rmtree(folder, ignore_errors=True)
                gone.append(folder)
        except OSError:
            continue
    return gone


class UploadFolder:
    """A private temporary folder for one kernel's uploads, removed when the kernel ends."""

    def __init__(self, root: str | os.PathLike | None = None):
        root = Path(root or tempfile.gettempdir())
        _sweep(root)
        self.path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=root))
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(self.path), ignore_errors=True)

    def save(self, name: str, content: bytes) -> Path:
        """Keep one uploaded file (an earlier upload is removed first); owner-only permissions."""
        for old in self.path.iterdir():
            old.unlink()
        path = self.path / safe_name(name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(bytes(content))
        return path

    def shown(self, message: str) -> str:
        """A message with the temporary folder left out: 'file data.csv, line 3, ...'."""
        return str(message).replace(f"{self.path}{os.sep}", "")

    def remove(self) -> None:
        self._cleanup()

    @property
    def removed(self) -> bool:
        return not self._cleanup.alive


@dataclass(frozen=True)
class Source:
    """A shipped data set (`path` None) or an uploaded file, and the columns a page offers as outcome."""

    name: str
    path: Path | None = None

    @property
    def uploaded(self) -> bool:
        return self.path is not None

    def columns(self) -> list[str]:
        """Column names (an uploaded file without a header line: "column 1", "column 2", ...)."""
        if self.path is None:
            return list(load(self.name).to_frame().columns)
        return file_columns(self.path)[0]

    def default_label(self) -> str:
        return self.columns()[-1]

    def load(self, label: str | None = None, positive: str | None = None) -> Dataset:
        """The rows with `label` as the outcome (None: the last column, the data set's own label); positive:
        the outcome's value that counts as the positive class, when it is not 0/1 (see mpclr.data)."""
        positive = positive or None
        if self.path is None:
            columns = self.columns()
            if (label is None or label == columns[-1]) and positive is None:
                return load(self.name)
            label = columns[-1] if label is None else label
            if label not in columns:
                raise DataError(f"data set {self.name!r} has no column {label!r} (columns: {', '.join(columns)})")
            return load_frame(load(self.name).to_frame(), label=label, positive=positive, name=self.name)
        stem = Path(self.name).stem or "upload"
        if label is None:
            data = load_csv(self.path, label="last", positive=positive, name=stem)
        else:
            columns, header = file_columns(self.path)
            if label not in columns:
                raise DataError(f"file {self.name}: no column {label!r} (columns: {', '.join(columns)})")
            # without a header line the label is a position; with one, a name
            data = load_csv(self.path, label=label if header else columns.index(label), header=header,
                            positive=positive, name=stem)
        return replace(data, source=f"uploaded file {self.name}")  # the record names no temporary folder
