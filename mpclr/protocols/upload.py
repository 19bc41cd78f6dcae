"""Share-keyed uploads: a hospital's ciphertext as (seed, c0), about half the bytes of a public-key one.

A public-key encryption (c0, c1) = (p0 u + e0 + m, p1 u + e1) sends two polynomials that look uniform;
neither can be compressed. A symmetric encryption sends one: under a secret z known to the hospital,

    c0 = m + e - a z        a expanded from a fresh 32-byte seed (mpclr.ring.SecretRandom)

and (c0, a) decrypts under z. The server turns it into a ciphertext under the collective key s with the
hospital's upload key U_i, a key-switching key from z_i to s made in the key ceremony like a rotation
key (Mouchet et al. 2021, "RTG"): every key holder j sends, for owner i and digit l (a_il from the CRS,
label "upk/a/<owner>/<l>"),

    h_ijl = -a_il s_j + e_ijl  (+ z_i g_l when j = i)          U_il = (sum_j h_ijl, a_il)

so that U_il0 + U_il1 s = z_i g_l + e. Switching a alone would add sum_l [a]_ql e_l / P: about
sqrt(N) times the key's error, since q_0 is as large as P (2^10 at 'train', above what the refresh's
smudging covers with 10 hospitals). So the server splits a = x + 2^w hi (w = half of q_0's bits), hi the
high bits of a mod q_0 as an integer polynomial, x = a - 2^w hi small mod q_0. SEAL relinearizes
(c0, 0, x) with U_i (its q_0 digit is small now); hi, one small integer in every digit, needs a single
key component, V_i = (-b_i s + e + 2^w z_i P, b_i) over QP (label "upk/b/<owner>", every key holder's
share -b_i s_j + e_ij, the owner adding 2^w z_i P): the server multiplies and divides by P itself
(`switch_high`). The sum decrypts as m + e + e_ks with e_ks the two divisions' rounding: about a
public-key encryption's noise (benchmarks/noise.py --upload share-keyed public-key).

z_i is the hospital's "upload secret": a fresh ternary secret drawn at join, not its key share s_i.
In a t-out-of-n session s_i is erased after the Shamir re-sharing while uploads come later; and z_i
decrypts nothing but this hospital's own uploads, which the hospital holds in the clear anyway, so its
encryption process may hold it (mpclr.roles.encryptor) without holding any share of s. U_i is an
encryption of z_i g under s: RLWE samples of s, readable only by a coalition that can decrypt all.
"""

from __future__ import annotations

import struct

import numpy as np

from ..errors import FormatError, ProtocolError
from ..ring import CommonRandomString, Ring, SecretRandom, ring_for
from ..ring.packing import pack_residues, unpack_residues
from ..seal.format import CiphertextData, KSwitchKeysData, PlaintextData
from .rlk import add_gadget_rows
from .share import SecretKeyShare, Share

__all__ = ["UploadKeyGen", "UploadEncryptor", "SEED_BYTES", "is_share_keyed", "seed_of", "expand_a",
           "read_upload", "tag", "MODES"]

SEED_BYTES = 32
MODES = ("share-keyed", "public-key")  # Params.upload
_MAGIC = b"MPSU"
_VERSION = 1
_HEAD = struct.Struct("<4sB32sQQd32s")  # magic, version, parms_id, N, rows, scale, seed


def tag(owner: str) -> str:
    return f"upk/owner={owner}"


class UploadKeyGen:
    """The collective upload keys: one per key holder, every key holder contributing to each."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.ring = ctx.key_ring
        self.digits = len(ctx.gadget)

    def sample_crp(self, crs: CommonRandomString, owner: str) -> np.ndarray:
        """U_i's a_il for every digit l, then V_i's b_i: shape (L + 1, K, N), labels of their own per owner."""
        return np.stack([*(crs.uniform_poly(self.ring, f"upk/a/{owner}/{j}") for j in range(self.digits)),
                         crs.uniform_poly(self.ring, f"upk/b/{owner}")])

    def gen_share(self, sk: SecretKeyShare, owner: str, crp: np.ndarray, rng: SecretRandom,
                  upload_secret: SecretKeyShare | None = None) -> Share:
        """-a_il s_j + e_ijl for U_i's digits and -b_i s_j + e_ij for V_i, plus z_i g_l and 2^w z_i P when
        this party owns the keys (`upload_secret` given)."""
        r = self.ring
        h = r.mul(crp, sk.full())
        r.sub(rng.error_ntt(r, self.digits + 1), h, out=h)
        if upload_secret is not None:
            z = upload_secret.full()
            add_gadget_rows(self.ctx, h[: self.digits], z)
            scale = [pow(2, split_bits(self.ctx), q) * self.ctx.special_prime % q for q in r.moduli]
            r.add(h[self.digits], r.mul_scalar_rows(z, scale), out=h[self.digits])  # 0 in P's row
        return Share(tag(owner), h)

    def share_from_bytes(self, raw: bytes, owner: str) -> Share:
        return Share.from_bytes(raw, tag(owner), self.ring, (self.digits + 1,))

    def aggregate_shares(self, shares: list[Share]) -> Share:
        return Share.sum_of(shares, self.ring, "upload keys")

    def key_bytes(self, agg: Share, crp: np.ndarray) -> bytes:
        """(U_i, V_i) as one SEAL KSwitchKeys of two rows: U_i (its row alone is a RelinKeys), V_i (one pair)."""
        keys = [self.ctx.kswitch_key([(agg.data[j], crp[j]) for j in range(self.digits + 1)])]
        return KSwitchKeysData(self.ctx.key_parms_id, [keys[0][: self.digits], keys[0][self.digits :]]).to_bytes()


def split_bits(ctx) -> int:
    """w: a mod q_0 = lo + 2^w hi with lo and hi both about sqrt(q_0)."""
    return (ctx.primes[0].bit_length() + 1) // 2


def expand_a(seed: bytes, ring: Ring) -> np.ndarray:
    """The uniform `a` of a share-keyed upload (read as NTT form), from its seed, at the ring's primes."""
    if len(seed) != SEED_BYTES:
        raise FormatError(f"an upload seed is {SEED_BYTES} bytes, got {len(seed)}")
    return CommonRandomString(seed).uniform_rows(ring.moduli, ring.n, "upload/a")


def is_share_keyed(raw) -> bool:
    return bytes(raw[:4]) == _MAGIC


def seed_of(raw) -> bytes:
    """The public seed of a share-keyed upload (it names the upload: fresh for each)."""
    return bytes(raw[_HEAD.size - SEED_BYTES : _HEAD.size])


class UploadEncryptor:
    """A hospital's symmetric encryption under its upload secret. Needs no SealContext (it runs in the
    encryption process too): the ring degree, the data primes q_0..q_top and each level's parms_id."""

    def __init__(self, n: int, primes, level_pids, secret_ntt: np.ndarray):
        self.n = n
        self.primes = tuple(int(q) for q in primes)
        self.level_pids = list(level_pids)
        if len(self.level_pids) != len(self.primes):
            raise ValueError("one parms_id per data level")
        self._z = np.ascontiguousarray(secret_ntt[: len(self.primes)])
        self._rng = SecretRandom()

    def spec(self) -> tuple:
        """What rebuilds this encryptor in the hospital's encryption process (sent down its pipe only)."""
        return (self.n, self.primes, self.level_pids, self._z)

    def __reduce__(self):
        raise TypeError("an upload encryptor holds the upload secret: send its spec() down a pipe instead")

    def encrypt(self, he, values: np.ndarray, scale: float, drops: int) -> bytes:
        """values encoded by `he` (a Pyfhel object of the context) at `scale`, encrypted at the top level
        minus `drops` primes (a plaintext drops primes by dropping rows), in the share-keyed wire form."""
        pt = he.encodeFrac(np.ascontiguousarray(values, dtype=np.float64), scale=scale)
        m = PlaintextData.from_bytes(pt.to_bytes(compr_mode="none"), self.n, "encoded upload").data
        rows = len(self.primes) - int(drops)
        if not 1 <= rows <= len(self.primes) or m.shape[0] != len(self.primes):
            raise ValueError(f"cannot encrypt {drops} primes below the top of {len(self.primes)}")
        ring = ring_for(self.n, self.primes[:rows])
        seed = self._rng.bytes(SEED_BYTES)
        c0 = ring.add(np.ascontiguousarray(m[:rows]), self._rng.error_ntt(ring))
        ring.sub(c0, ring.mul(expand_a(seed, ring), self._z[:rows]), out=c0)
        head = _HEAD.pack(_MAGIC, _VERSION, self.level_pids[rows - 1], self.n, rows, float(pt.scale), seed)
        return head + pack_residues(c0)


def read_upload(raw, ctx, what: str = "upload") -> tuple[CiphertextData, np.ndarray, int]:
    """A share-keyed upload -> ((c0, 0, x), hi, its level), every residue checked, with a = x + 2^w hi
    split as the module says (hi: int64 coefficients). The caller relinearizes the first with U_i and
    adds switch_high(hi) (mpclr.roles.uploads)."""
    view = memoryview(raw)
    if len(view) < _HEAD.size:
        raise FormatError(f"{what}: truncated ({len(view)} bytes, not even a header)")
    magic, version, pid, n, rows, scale, seed = _HEAD.unpack_from(view, 0)
    if magic != _MAGIC:
        raise FormatError(f"{what}: not a share-keyed upload")
    if version != _VERSION:
        raise FormatError(f"{what}: share-keyed upload version {version}, expected {_VERSION}")
    level = ctx.level_of(pid, what)
    if n != ctx.n or rows != level + 1:
        raise FormatError(f"{what}: N = {n} with {rows} primes does not match level {level} of N = {ctx.n}")
    if not 0 < scale < 2.0**200:
        raise FormatError(f"{what}: implausible scale {scale}")
    ring = ctx.ring(level)
    c0 = unpack_residues(view, _HEAD.size, ring.shape, [q.bit_length() for q in ring.moduli], what)
    if not ring.is_reduced(c0):
        raise FormatError(f"{what}: coefficients not reduced modulo the primes")
    a = expand_a(bytes(seed), ring)
    w = split_bits(ctx)
    q0 = ring.sub_ring([0])
    hi = (q0.intt(np.ascontiguousarray(a[:1]))[0] >> np.uint64(w)).astype(np.int64)  # below 2^(bits(q_0) - w)
    x = ring.sub(a, ring.mul_scalar_rows(ring.ntt(ring.from_signed(hi), inplace=True),
                                         [pow(2, w, q) for q in ring.moduli]))
    return CiphertextData(pid, scale, np.stack([c0, ring.zeros(), x])), hi, level


def switch_high(ctx, level: int, hi: np.ndarray, key: np.ndarray) -> np.ndarray:
    """hi (V_i's two polynomials over QP, shape (2, K, N), times hi) / P, rounded: (f0, f1) at `level`
    with f0 + f1 s = 2^w z_i hi + a rounding error."""
    rows = [*range(level + 1), len(ctx.primes) - 1]  # q_0..q_level and P
    ext = ctx.key_ring.sub_ring(rows)
    d = ext.mul(np.ascontiguousarray(key[:, rows]), ext.ntt(ext.from_signed(hi), inplace=True))
    return ext.divide_by_last_prime(d)


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ProtocolError(f"upload mode must be one of {MODES}, got {mode!r}")
    return mode
