"""Encryption at rest for a keystore: a passphrase, scrypt, AES-256-GCM, one header per keystore root.

A keystore root (a hospital's whole keystore folder at a hospital; one node's folder of a saved federation)
that is encrypted holds `keystore-encryption.json`: the scrypt parameters, a random salt and a check
value. Every secret file under the root (`secret-*.bin`) is then `MAGIC | nonce | AES-GCM(data)`; the
public files stay readable (they hold what the protocol sends or publishes anyway).

Why these choices:
- scrypt n = 2**17, r = 8, p = 1: 128 MiB and about 0.5 s on one core of the project's machine,
  OWASP's recommended minimum for scrypt. Memory-hard, so guessing the passphrase of a stolen disk
  costs each guess 128 MiB. The key is derived once per process and root and kept in memory only.
- a 16-byte random salt per root: equal passphrases at two hospitals give unrelated keys, and no
  precomputation serves two keystores.
- AES-256-GCM: with AES-NI 0.06-0.1 ms per MB here, ChaCha20-Poly1305 0.23 (copies cost more than
  either, so files are sealed in place). A fresh random 96-bit nonce per write; a keystore is written
  far fewer than 2**32 times (NIST SP 800-38D's bound for random nonces under one key).
- associated data = format version + the file's path relative to the root: a file copied over another
  name (another session's key share, a cached reply in place of a key share) fails authentication, and
  a file from another root fails because its key differs.
- the check value (the AEAD of nothing under the key) tells a wrong passphrase from a tampered file.

Not covered: which files exist and their sizes; the public files' integrity; rolling a secret file back
to an older version of itself (same name, same key).
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import unicodedata
from pathlib import Path

from .errors import FormatError

__all__ = ["KeystoreKey", "HEADER", "PASSPHRASE_ENV", "SCRYPT", "MIN_PASSPHRASE", "is_sealed", "encrypted_root"]

HEADER = "keystore-encryption.json"
PASSPHRASE_ENV = "MPCLR_KEYSTORE_PASSPHRASE"
FORMAT = "mpclr-keystore-encryption/1"
MAGIC = b"mpclr-ks\x01"  # the last byte is the format version, also bound in the associated data
AD_PREFIX = b"mpclr-keystore/1\x00"
SCRYPT = {"n": 2**17, "r": 8, "p": 1}
MIN_PASSPHRASE = 12  # characters, for a new keystore
NONCE = 12

_DERIVED: dict[tuple, bytes] = {}  # (passphrase, salt, n, r, p) -> key; this process's memory only
_DERIVE_LOCK = threading.Lock()


def _passphrase_bytes(passphrase: str | bytes) -> bytes:
    if isinstance(passphrase, bytes):
        return passphrase
    return unicodedata.normalize("NFC", passphrase).encode()


def _derive(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    ident = (passphrase, salt, n, r, p)
    with _DERIVE_LOCK:
        if ident not in _DERIVED:
            _DERIVED[ident] = Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase)
        return _DERIVED[ident]


def is_sealed(blob: bytes) -> bool:
    return bytes(blob[: len(MAGIC)]) == MAGIC


def encrypted_root(path) -> Path | None:
    """The nearest folder at or above `path` that holds an encryption header, if any."""
    p = Path(path).resolve()
    for folder in (p, *p.parents):
        if (folder / HEADER).is_file():
            return folder
    return None


class KeystoreKey:
    """The AES-256-GCM key of one keystore root, derived from its passphrase (see the module docstring)."""

    def __init__(self, root: Path, key: bytes, header: dict):
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self.root = Path(root).resolve()
        self.header = header
        self._aead = AESGCM(key)

    @classmethod
    def open(cls, root, passphrase: str | bytes, create: bool = False) -> KeystoreKey:
        """The key of the root's header; with `create`, a new header (new salt) when there is none."""
        root = Path(root)
        path = root / HEADER
        secret = _passphrase_bytes(passphrase)
        if not secret:
            raise FormatError(f"an empty passphrase cannot protect keystore {root}")
        if not path.exists():
            if not create:
                raise FormatError(f"keystore {root} is not encrypted ({HEADER} missing)")
            plain = [str(f) for f in sorted(root.rglob("secret-*.bin")) if not is_sealed(f.read_bytes()[:16])]
            if plain:
                raise FormatError(f"keystore {root} already holds unencrypted secrets ({', '.join(plain[:3])}"
                                  f"{' ...' if len(plain) > 3 else ''}): it cannot be encrypted in place")
            if len(secret.decode(errors="replace")) < MIN_PASSPHRASE:
                raise FormatError(f"the passphrase for the new keystore {root} is shorter than "
                                  f"{MIN_PASSPHRASE} characters")
            salt = secrets.token_bytes(16)
            header = {"format": FORMAT, "kdf": "scrypt", **SCRYPT, "salt": salt.hex(), "aead": "AES-256-GCM"}
            key = cls(root, _derive(secret, salt, SCRYPT["n"], SCRYPT["r"], SCRYPT["p"]), header)
            header["check"] = bytes(key._seal(b"", b"check")).hex()
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps(header, indent=1))
            os.replace(tmp, path)
            return key
        try:
            header = json.loads(path.read_text())
            n, r, p, salt = int(header["n"]), int(header["r"]), int(header["p"]), bytes.fromhex(header["salt"])
            check = bytes.fromhex(header["check"])
            ok = header["format"] == FORMAT and header["aead"] == "AES-256-GCM" and header["kdf"] == "scrypt"
        except (ValueError, KeyError, TypeError) as exc:
            raise FormatError(f"{path} is not a keystore encryption header: {exc}") from None
        # bounds keep a tampered header from asking for a weak key or for gigabytes of memory
        if not ok or n & (n - 1) or not 2**14 <= n <= 2**20 or not 1 <= r <= 16 or not 1 <= p <= 4 or len(salt) < 16:
            raise FormatError(f"{path}: unsupported format or scrypt parameters (n={n}, r={r}, p={p})")
        key = cls(root, _derive(secret, salt, n, r, p), header)
        try:
            key._open(check, b"check")
        except FormatError:
            raise FormatError(f"wrong passphrase for keystore {root} (or its {HEADER} was altered)") from None
        return key

    def _seal(self, data, ad: bytes) -> bytes | bytearray:
        # written in place: a key share or a reply is megabytes, and copies cost more than AES-GCM here
        nonce = secrets.token_bytes(NONCE)
        head = len(MAGIC) + NONCE
        if not hasattr(self._aead, "encrypt_into"):  # cryptography < 45
            return MAGIC + nonce + self._aead.encrypt(nonce, bytes(data), AD_PREFIX + ad)
        out = bytearray(head + len(data) + 16)
        out[:head] = MAGIC + nonce
        self._aead.encrypt_into(nonce, data, AD_PREFIX + ad, memoryview(out)[head:])
        return out

    def _open(self, blob, ad: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag

        if not is_sealed(blob):
            raise FormatError("not an encrypted keystore file")
        head = len(MAGIC) + NONCE
        view = memoryview(blob)
        try:
            return self._aead.decrypt(bytes(view[len(MAGIC) : head]), view[head:], AD_PREFIX + ad)
        except InvalidTag:
            raise FormatError("authentication failed") from None

    def _name(self, path: Path) -> bytes:
        try:
            return Path(path).resolve().relative_to(self.root).as_posix().encode()
        except ValueError:
            raise FormatError(f"{path} is outside the encrypted keystore {self.root}") from None

    def seal(self, path, data: bytes) -> bytes | bytearray:
        """The bytes to write at `path` (a file under this root) for `data`."""
        return self._seal(data, self._name(path))

    def unseal(self, path, blob: bytes) -> bytes:
        """`data` back from what `seal` wrote at `path`; a file altered, moved or written under another
        key is refused, naming it."""
        if not is_sealed(blob):
            raise FormatError(f"{path} is not encrypted although keystore {self.root} is: refusing a plaintext "
                              f"secret (it was written without the passphrase, or replaced)")
        try:
            return self._open(blob, self._name(path))
        except FormatError:
            raise FormatError(f"{path} was altered, moved from another name or keystore, or written under "
                              f"another passphrase: its authentication failed") from None
