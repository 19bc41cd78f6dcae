"""A hospital's encryption processes: a large upload's vectors encrypted under the collective public key.

Pyfhel holds the GIL while it encodes and encrypts, so the hospitals of an in-process federation, each
answering in its own thread, would encrypt one vector at a time between them: 1,000,000 x 10 rows are
13,000 ciphertexts at 'train', minutes of one core. A large upload (a study's rows) therefore goes to a
process of the hospital's own (`python -m mpclr.roles.encryption_process`, as a hospital's machine would use its
cores), which runs the same encryption, packed as `Hospital.encrypt_bytes` packs it, and stops when the
upload's last round is encrypted. Small uploads stay in the hospital's thread: a process takes about a
second to start.

The process holds the public key and, for share-keyed uploads (mpclr.protocols.upload), the hospital's
upload secret z_i, sent down its pipe (never written). z_i is not a share of the collective key: it
decrypts this hospital's own uploads only, whose rows the process holds in the clear anyway, so giving
it to the process that encrypts them exposes nothing more; the key share s_i stays in the hospital's
process.
"""

from __future__ import annotations

import os
import weakref

import numpy as np

from ..errors import ProtocolError
from ..seal.format import pack_ciphertext
from .pipe import expect, start, stop

__all__ = ["encrypt_many", "level_plans", "done", "PROCESS_MIN_CIPHERTEXTS"]

# an upload of at least this many ciphertexts (all rounds together) is worth a process (paper scale:
# about 220 per hospital); fewer are encrypted in the hospital's own thread
PROCESS_MIN_CIPHERTEXTS = 128
_POOLS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # hospital -> its running process


def level_plans(ctx, levels, count: int) -> list[tuple[float, int]]:
    """(scale, primes dropped) for each of `count` vectors encrypted at levels[i] (None: the top, at
    2^scale_bits; below, the level's own scale on the ladder); levels None: all at the top."""
    levels = [None] * count if levels is None else list(levels)
    top, out = ctx.top_level, []
    for level in levels:
        level = top if level is None else int(level)
        if not 0 <= level <= top:
            raise ValueError(f"can encrypt at levels 0..{top}, got {level}")
        out.append((2.0**ctx.params.scale_bits if level == top else ctx.scale_ladder[level], top - level))
    return out


def encrypt_many(owner, he, vectors, processes: bool, plans, upload=None) -> list[bytes]:
    """Each vector encrypted with `he` (a Pyfhel object holding the collective public key) at plans[i] =
    (scale, primes dropped after encryption) and packed, or share-keyed by `upload` (an UploadEncryptor);
    with `processes`, in the encryption process of `owner` (started on first use, kept while it lives)."""
    vectors = [np.ascontiguousarray(v, dtype=np.float64) for v in vectors]
    if len(plans) != len(vectors):
        raise ValueError(f"{len(vectors)} vectors to encrypt but {len(plans)} levels")
    plans = [(float(scale), int(drops)) for scale, drops in plans]
    if not processes:
        return [_encrypt(he, v, scale, drops, upload) for v, (scale, drops) in zip(vectors, plans)]
    proc = _POOLS.get(owner)
    if proc is not None and proc.share_keyed != (upload is not None):
        done(owner)  # the upload key was made since the process started
        proc = None
    if proc is None:
        proc = _POOLS[owner] = _Encryptor(he.to_bytes_context(), he.to_bytes_public_key(), upload)
    return proc.encrypt(vectors, plans)


def _encrypt(he, v: np.ndarray, scale: float, drops: int, upload=None) -> bytes:
    """One vector encrypted at `scale`, then `drops` primes dropped (a lower level: fewer bytes), packed;
    share-keyed by `upload` when given."""
    if upload is not None:
        return upload.encrypt(he, v, scale, drops)
    ct = he.encryptFrac(v, scale=scale)
    for _ in range(drops):
        he.mod_switch_to_next_ctxt(ct)
    return pack_ciphertext(ct.to_bytes(compr_mode="none"))


def done(owner) -> None:
    """The upload of `owner` is over: stop its encryption process (it would hold memory through the
    training; the next large upload starts another)."""
    proc = _POOLS.pop(owner, None)
    if proc is not None:
        proc.close()


class _Encryptor:
    def __init__(self, context: bytes, public_key: bytes, upload=None):
        self.proc, self.conn = start("mpclr.roles.encryption_process")
        self._finalizer = weakref.finalize(self, stop, self.proc, self.conn)
        self.share_keyed = upload is not None
        self.conn.send({"context": context, "public_key": public_key,
                        "upload": None if upload is None else upload.spec()})
        expect(self.conn, "ready", "encryption process")

    def close(self) -> None:
        self._finalizer()

    def encrypt(self, vectors: list[np.ndarray], plans: list[tuple[float, int]]) -> list[bytes]:
        self.conn.send(("encrypt", vectors, plans))
        out = expect(self.conn, "done", "encryption process")[1]
        if len(out) != len(vectors):
            raise ProtocolError(f"encryption process returned {len(out)} ciphertexts for {len(vectors)} vectors")
        return out


def serve(conn) -> None:  # pragma: no cover - runs in a child process (covered through encrypt_many)
    """The encryption process's loop (under mpclr.roles.pipe.run_worker)."""
    from Pyfhel import Pyfhel

    init = conn.recv()
    he = Pyfhel()
    he.from_bytes_context(init["context"])
    he.from_bytes_public_key(init["public_key"])
    upload = None
    if init.get("upload") is not None:
        from ..protocols.upload import UploadEncryptor

        upload = UploadEncryptor(*init["upload"])
    conn.send(("ready", os.getpid()))
    while True:
        msg = conn.recv()
        if msg[0] == "encrypt":
            conn.send(("done", [_encrypt(he, v, scale, drops, upload) for v, (scale, drops) in zip(msg[1], msg[2])]))
        elif msg[0] == "stop":
            conn.send(("ok",))
            return

