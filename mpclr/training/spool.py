"""The hospitals' uploaded ciphertexts at the server, in memory while small and in a file on disk beyond.

A study's rows grow with it: 2 MiB a ciphertext at 'train', and the training layout repeats every row
once per model of its group, so 1,000,000 x 10 rows take 27 GB. Past `threshold` bytes (default 512 MiB,
MPCLR_SPOOL_BYTES overrides; MPCLR_SPOOL_DIR the folder, else the system's temporary one) a `Spool`
moves everything to one append-only file and keeps only each ciphertext's offset and length; the
server's worker processes read the blocks they need per iteration from that file (`read_at`), so
memory is bounded by keys and one iteration's working set, not by the rows. The file holds what the
server holds anyway (ciphertexts under the collective key); its name is removed as soon as it is made,
so it goes when its last descriptor closes (the spool closed or collected, its process ended or killed).

Compact (`compact`, MPCLR_SPOOL_COMPACT=1/0; by default chosen by the training's upload: only when the rows
in SEAL's 64-bit words would not fit the disk): the ciphertexts are kept in the wire form the hospitals
send (mpclr.seal.format.pack_ciphertext: residues at their primes' bit widths, 73% of the bytes at
'train', already checked on arrival) and unpacked as they are read, in the reader's thread (the
unpacking releases the GIL): the same SEAL bytes come out, bit for bit.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterator

from ..errors import ParameterError

__all__ = ["Spool", "read_at", "default_threshold", "default_compact", "DEFAULT_THRESHOLD", "release_memory"]

DEFAULT_THRESHOLD = 512 << 20


def default_threshold() -> int:
    raw = os.environ.get("MPCLR_SPOOL_BYTES")
    if raw is None or raw == "":
        return DEFAULT_THRESHOLD
    try:
        value = int(raw)
    except ValueError:
        raise ParameterError(f"environment variable MPCLR_SPOOL_BYTES must be a byte count, got {raw!r}") from None
    if value < 0:
        raise ParameterError(f"environment variable MPCLR_SPOOL_BYTES must be 0 or more, got {value}")
    return value


def default_compact() -> bool | None:
    """MPCLR_SPOOL_COMPACT: 1 keeps the training's spooled rows compact, 0 never; unset (None): the upload
    decides (compact only when SEAL's 64-bit words would not fit the disk)."""
    raw = os.environ.get("MPCLR_SPOOL_COMPACT")
    if raw is None or raw == "":
        return None
    if raw not in ("0", "1"):
        raise ParameterError(f"environment variable MPCLR_SPOOL_COMPACT must be 0 or 1, got {raw!r}")
    return raw == "1"


def release_memory() -> None:
    """Hand freed memory back to the system now. glibc keeps what threads free in their own arenas (the
    hospitals encrypt in threads) and raises its mmap threshold after a large free, so a process's resident
    set would stay at the peak of one upload round (2 MiB ciphertexts by the hundred) for the rest of the
    study. Elsewhere than glibc: nothing to do."""
    global _TRIM
    if _TRIM is None:
        try:
            _TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    if _TRIM:
        _TRIM(0)


_TRIM = None


def _close(fd: list) -> None:
    if fd[0] is not None:
        os.close(fd[0])
        fd[0] = None


class Spool:
    """Ciphertext bytes by key, several per key (one per hospital that has rows there), in upload order.

    threshold: bytes kept in memory before everything moves to disk (0: on disk from the first byte;
    None: `default_threshold()`). directory: where the file goes (None: MPCLR_SPOOL_DIR or the system's
    temporary folder). compact: hold the packed wire form (see the module; None: the writer decides, the
    training's upload by `default_compact()` and the disk). Reads as a mapping key -> list of SEAL bytes
    (read from the file when on disk, unpacked when compact)."""

    def __init__(self, threshold: int | None = None, directory=None, name: str = "ciphertexts",
                 compact: bool | None = None):
        self.threshold = default_threshold() if threshold is None else int(threshold)
        if self.threshold < 0:
            raise ParameterError(f"parameter threshold must be 0 or more bytes, got {threshold}")
        self.directory = directory or os.environ.get("MPCLR_SPOOL_DIR") or None
        self.name = name
        self.compact = compact  # None: not decided (read as SEAL bytes unless a writer decides otherwise)
        self.nbytes = 0
        self.checked = False  # set by whoever checked every ciphertext as it came in (encrypt_study)
        self.path: str | None = None  # the file's name when it was made (removed at once: see `_spill`)
        self._memory: dict[tuple, list[bytes]] = {}
        self._index: dict[tuple, list[tuple[int, int]]] = {}
        self._fd: list = [None]
        self._end = 0
        self._finalizer = None

    # ------------------------------------------------------------------ writing
    def fits(self, nbytes: int) -> bool:
        """Whether `nbytes` more stay in memory or fit on the disk of the spool's folder."""
        if self.path is None and self.nbytes + nbytes <= self.threshold:
            return True
        return shutil.disk_usage(self.directory or tempfile.gettempdir()).free >= nbytes

    def reserve(self, nbytes: int, what: str) -> None:
        """Refuse, before any work, `nbytes` more that would go to disk when its folder has less free."""
        if not self.fits(nbytes):
            folder = self.directory or tempfile.gettempdir()
            free = shutil.disk_usage(folder).free
            raise ParameterError(
                f"{what} take {nbytes / 1e9:.1f} GB on disk (beyond the spool threshold of {self.threshold} bytes) "
                f"and {folder} has {free / 1e9:.1f} GB free: set MPCLR_SPOOL_DIR to a folder on a larger disk"
            )

    def add(self, key: tuple, raw) -> None:
        """Keep `raw`: SEAL bytes, or the packed wire form when the spool is compact."""
        raw = bytes(raw)
        if self.path is None and self.nbytes + len(raw) > self.threshold:
            self._spill()
        self.nbytes += len(raw)
        if self.path is None:
            self._memory.setdefault(key, []).append(raw)
        else:
            self._index.setdefault(key, []).append((self._end, len(raw)))
            self._write(raw)

    def _spill(self) -> None:
        fd, path = tempfile.mkstemp(prefix=f"mpclr-{self.name}-", suffix=".spool", dir=self.directory)
        os.unlink(path)  # the file lives as long as a descriptor does: nothing is left behind, even if killed
        self._fd[0], self.path = fd, path
        self._finalizer = weakref.finalize(self, _close, self._fd)
        memory, self._memory = self._memory, {}
        for key, raws in memory.items():
            for raw in raws:
                self._index.setdefault(key, []).append((self._end, len(raw)))
                self._write(raw)

    def _write(self, raw: bytes) -> None:
        view = memoryview(raw)
        while view:
            done = os.pwrite(self._fd[0], view, self._end)
            self._end += done
            view = view[done:]

    # ------------------------------------------------------------------ reading
    @property
    def on_disk(self) -> bool:
        return self.path is not None

    def __getitem__(self, key: tuple) -> list[bytes]:
        if self.path is None:
            raws = self._memory[key]
        else:
            raws = [_pread(self._fd[0], offset, length) for offset, length in self._index[key]]
        return [_unpack(raw) for raw in raws] if self.compact else raws

    def get(self, key: tuple, default=None):
        return self[key] if key in self else default

    def fileno(self) -> int:
        """The file's descriptor (on disk only): a worker process is handed it (`pass_fds`) and reads with
        `read_at`; the file has no name left to open."""
        if self._fd[0] is None:
            raise ValueError("the spool is in memory: it has no file")
        return self._fd[0]

    def locations(self, key: tuple) -> list[tuple[int, int]]:
        """(offset, length) of every ciphertext under `key` in the file (on disk only)."""
        if self.path is None:
            raise ValueError("the spool is in memory: it has no file locations")
        return list(self._index[key])

    def __contains__(self, key) -> bool:
        return key in (self._memory if self.path is None else self._index)

    def __iter__(self) -> Iterator[tuple]:
        return iter(list(self._memory if self.path is None else self._index))

    def __len__(self) -> int:
        return len(self._memory if self.path is None else self._index)

    def keys(self):
        return list(self)

    def items(self):
        for key in self:
            yield key, self[key]

    def values(self):
        for key in self:
            yield self[key]

    def count(self) -> int:
        """Ciphertexts held (all keys, every hospital's)."""
        return sum(len(v) for v in (self._memory if self.path is None else self._index).values())

    def close(self) -> None:
        """Forget everything and close the file (which goes with its last descriptor)."""
        self._memory, self._index, self.nbytes, self._end = {}, {}, 0, 0
        if self._finalizer is not None:
            self._finalizer()
        self.path = None

    def __repr__(self) -> str:
        where = self.path or "memory"
        return f"Spool({self.count()} ciphertexts, {self.nbytes / 2**20:.1f} MiB, {where})"


def _pread(fd: int, offset: int, length: int) -> bytes:
    out = os.pread(fd, length, offset)
    while len(out) < length:  # a short read (large requests on some systems): go on where it stopped
        more = os.pread(fd, length - len(out), offset + len(out))
        if not more:
            raise OSError(f"spool file ends before offset {offset + length}")
        out += more
    return out


def _unpack(raw: bytes) -> bytes:
    from ..seal.format import unpack_ciphertext

    return unpack_ciphertext(raw, "spooled ciphertext")  # its residues were checked when it arrived


def read_at(fd: int, locations, compact: bool = False) -> list[bytes]:
    """The ciphertexts at (offset, length) locations of a spool file opened by the reader (a worker), as
    SEAL bytes (unpacked if the spool is compact)."""
    raws = [_pread(fd, offset, length) for offset, length in locations]
    return [_unpack(raw) for raw in raws] if compact else raws
