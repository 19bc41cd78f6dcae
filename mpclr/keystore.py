"""A node's own folder for its state, so a study can stop and resume (notebook steps, restarted hospitals).

Each node keeps its state in its own directory (mode 0700; secret files 0600): public facts in
`state.json`, bulky public values in `*.bin`, and secrets (key shares, identity keys, ephemeral protocol
secrets) in `secret-*.bin`. Nothing here is pickled, and nothing is shared between nodes: in a
simulation all the folders sit on one disk, at a real hospital only the hospital's own folder exists.

With a `KeystoreKey` (mpclr.keystore_crypto) the secret files are encrypted and authenticated under a
passphrase; a keystore under an encrypted root refuses to be used without its key.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from .errors import FormatError
from .keystore_crypto import PASSPHRASE_ENV, KeystoreKey, encrypted_root, is_sealed

__all__ = ["Keystore"]


class Keystore:
    def __init__(self, path: str | os.PathLike, create: bool = False, key: KeystoreKey | None = None,
                 written: dict | None = None):
        self.path = Path(path)
        # file -> (digest of the contents last written there, its stat then): a process that keeps this
        # across Keystore objects (a hospital answering message after message) skips rewriting a file with the
        # same contents that nobody touched since (a key share: ~1 MB sealed and replaced per message)
        self._written = written
        if create:
            self.path.mkdir(parents=True, exist_ok=True)
            os.chmod(self.path, 0o700)
        elif not self.path.is_dir():
            raise FormatError(f"keystore {self.path} does not exist")
        self.key = key
        self._locked = encrypted_root(self.path) if key is None else None  # encrypted, and no key given

    @classmethod
    def open(cls, path, passphrase: str | bytes | None = None, create: bool = False) -> Keystore:
        """A folder that is its own keystore root (a node of a saved federation): encrypted under
        `passphrase` when one is given (a new header when `create` and there is none)."""
        if passphrase is None:
            return cls(path, create)
        return cls(path, create, key=KeystoreKey.open(path, passphrase, create=create))

    def _refuse_locked(self, name: str) -> None:
        raise FormatError(f"{self.path / name} is in the encrypted keystore {self._locked}: give its passphrase "
                          f"(the `passphrase` argument, or {PASSPHRASE_ENV} in the environment)")

    def _write(self, name: str, data: bytes, secret: bool, plain: bytes | None = None) -> None:
        target = self.path / name
        digest = None
        if self._written is not None:
            digest = hashlib.sha256(data if plain is None else plain).digest()
            if self._unchanged(target, digest):
                return
        tmp = target.with_suffix(target.suffix + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
        if digest is not None:
            self._written[target] = (digest, _stat(target))

    def _unchanged(self, target: Path, digest: bytes) -> bool:
        """This process last wrote these contents (digest) to target, and the file is as it left it."""
        memo = self._written.get(target)
        return memo is not None and memo[0] == digest and _stat(target) == memo[1]

    def put(self, name: str, data: bytes) -> None:
        self._write(f"{name}.bin", bytes(data), secret=False)

    def put_secret(self, name: str, data: bytes) -> None:
        fname = f"secret-{name}.bin"
        plain = bytes(data)
        if self._written is not None and self.key is not None:
            if self._unchanged(self.path / fname, hashlib.sha256(plain).digest()):
                return  # not sealed again for nothing
        if self.key is not None:
            data = self.key.seal(self.path / fname, plain)
        elif self._locked is not None:
            self._refuse_locked(fname)
        else:
            data = plain
        self._write(fname, data, secret=True, plain=plain)

    def delete_secret(self, name: str) -> bool:
        """Remove secret `name` once it is spent: overwritten with zeros, flushed, unlinked, and the unlink
        flushed too. Returns whether there was one.

        Overwriting before unlinking is a best effort, not a guarantee. It clears the file's blocks where
        the filesystem writes in place (ext4, XFS on a disk without remapping), so the secret cannot be
        recovered by undeleting the file. It does not reach copies the storage keeps on its own: copy-on-
        write filesystems (btrfs, ZFS, APFS) and snapshots write the zeros elsewhere, SSDs remap blocks,
        backups keep what they saw, and `_write` replaces files whole, so an earlier version of a secret
        may sit in freed blocks anyway. What protects a key at rest is encryption (of the disk, or of the
        keystore); what this method guarantees is that the keystore itself no longer holds the secret."""
        path = self.path / f"secret-{name}.bin"
        try:
            fd = os.open(path, os.O_WRONLY)
        except FileNotFoundError:
            return False
        with os.fdopen(fd, "wb") as fh:
            fh.write(bytes(os.fstat(fd).st_size))
            fh.flush()
            os.fsync(fd)
        os.unlink(path)
        if self._written is not None:
            self._written.pop(path, None)
        dfd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        return True

    def get(self, name: str) -> bytes:
        return self._read(f"{name}.bin")

    def get_secret(self, name: str) -> bytes:
        path = self.path / f"secret-{name}.bin"
        if path.exists() and os.stat(path).st_mode & 0o077:
            raise FormatError(f"{path} is readable by others: refusing to use a secret with loose permissions")
        blob = self._read(path.name)
        if self.key is not None:
            return self.key.unseal(path, blob)
        if self._locked is not None or is_sealed(blob):
            self._locked = self._locked or path.parent
            self._refuse_locked(path.name)
        return blob

    def has(self, name: str, secret: bool = False) -> bool:
        return (self.path / (f"secret-{name}.bin" if secret else f"{name}.bin")).exists()

    def _read(self, name: str) -> bytes:
        try:
            return (self.path / name).read_bytes()
        except FileNotFoundError:
            raise FormatError(f"keystore {self.path} has no {name}") from None

    def put_array(self, name: str, a: np.ndarray, secret: bool = False) -> None:
        header = json.dumps({"shape": list(a.shape)}).encode()
        blob = len(header).to_bytes(4, "little") + header + np.ascontiguousarray(a, dtype="<u8").tobytes()
        (self.put_secret if secret else self.put)(name, blob)

    def get_array(self, name: str, secret: bool = False) -> np.ndarray:
        blob = self.get_secret(name) if secret else self.get(name)
        size = int.from_bytes(blob[:4], "little")
        shape = tuple(json.loads(blob[4 : 4 + size])["shape"])
        return np.frombuffer(blob, dtype="<u8", offset=4 + size).astype(np.uint64).reshape(shape)

    def put_json(self, name: str, value) -> None:
        self._write(f"{name}.json", json.dumps(value, indent=1).encode(), secret=False)

    def get_json(self, name: str):
        return json.loads(self._read(f"{name}.json"))


def _stat(path: Path):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode
