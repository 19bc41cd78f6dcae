"""Measure the key-dependent noise of every ciphertext a study decrypts or refreshes (tests and benchmarks only).

A probe rides along a real in-process study. Every ciphertext the server computes on is paired with its
*shadow*: the noise-free result of the same operations on exact message polynomials (a fresh
encryption's shadow is the encoding its sender encrypted; a product's shadow is the exact product,
rescaled by exact division; a rotation's is the automorphism; a refresh output's is the exact public
combination of its inputs' exact decryptions). The noise of a ciphertext is then, in the coefficient
domain,

    e = (c0 + sum_i s_i c1) - shadow        (each s_i c1 made in its hospital's place, never summed keys)

which is exactly what a smudging term has to hide. The probe needs smudging 0 (decryption and refresh) so
that refresh outputs have exact shadows: smudging adds to messages, not to the noise measured here.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from Pyfhel import PyCtxt

from mpclr.protocols.decryption import ThresholdDecryption
from mpclr.ring import SecretRandom
from mpclr.seal.format import CiphertextData, PlaintextData, galois_elt_from_step

__all__ = ["NoiseProbe", "noise_stats"]


def noise_stats(e: np.ndarray) -> dict:
    e = np.asarray(e, dtype=np.float64)
    return {"std": float(e.std()), "max": float(np.abs(e).max()), "l2": float(np.sqrt((e * e).sum()))}


@dataclass
class _Shadow:
    rows: np.ndarray  # NTT form, (level + 1, N)

    @property
    def level(self) -> int:
        return self.rows.shape[0] - 1


class Dual:
    """A real ciphertext and its shadow; everything else is the real one's."""

    __slots__ = ("real", "shadow")

    def __init__(self, real: PyCtxt, shadow: _Shadow):
        object.__setattr__(self, "real", real)
        object.__setattr__(self, "shadow", shadow)

    def __getattr__(self, name):
        return getattr(self.real, name)

    def __setattr__(self, name, value):
        if name in Dual.__slots__:
            object.__setattr__(self, name, value)
        else:
            setattr(self.real, name, value)

    def copy(self) -> Dual:
        return Dual(PyCtxt(copy_ctxt=self.real), _Shadow(self.shadow.rows.copy()))


def _copy_factory(original):
    def make(*args, copy_ctxt=None, **kwargs):
        if isinstance(copy_ctxt, Dual):
            return copy_ctxt.copy()
        if "pyfhel" in kwargs:
            kwargs["pyfhel"] = _real(kwargs["pyfhel"])
        return original(*args, copy_ctxt=copy_ctxt, **kwargs) if copy_ctxt is not None else original(*args, **kwargs)

    return make


class _DualHE:
    """Pyfhel's evaluator on Duals: the real operation, and the same one on the shadow."""

    def __init__(self, he, probe: NoiseProbe):
        self._he, self._probe = he, probe

    def __getattr__(self, name):
        return getattr(self._he, name)

    # helpers
    def _ring(self, rows):
        return self._probe.ctx.ring(rows.shape[0] - 1)

    def _apply(self, name, ct, other, shadow_fn, in_new_ctxt, *extra, **kw):
        real_other = other.real if isinstance(other, Dual) else other
        if not isinstance(ct, Dual):
            raise TypeError(f"noise probe: {name} on a ciphertext without a shadow")
        out = getattr(self._he, name)(ct.real, real_other, *extra, in_new_ctxt=in_new_ctxt, **kw)
        rows = shadow_fn(ct.shadow.rows, other)
        if in_new_ctxt:
            return Dual(out, _Shadow(rows))
        ct.shadow = _Shadow(rows)
        return ct

    def _plain_rows(self, pt) -> np.ndarray:
        return np.ascontiguousarray(PlaintextData.from_bytes(pt.to_bytes(), self._probe.ctx.n).data)

    def _other_rows(self, other) -> np.ndarray:
        if isinstance(other, Dual):
            return other.shadow.rows
        raise TypeError("noise probe: an operand without a shadow")

    # ciphertext-ciphertext
    def add(self, ct, other, in_new_ctxt=False):
        return self._apply("add", ct, other, lambda a, o: self._ring(a).add(a, self._other_rows(o)), in_new_ctxt)

    def sub(self, ct, other, in_new_ctxt=False):
        return self._apply("sub", ct, other, lambda a, o: self._ring(a).sub(a, self._other_rows(o)), in_new_ctxt)

    def multiply(self, ct, other, in_new_ctxt=False):
        return self._apply("multiply", ct, other, lambda a, o: self._ring(a).mul(a, self._other_rows(o)), in_new_ctxt)

    # ciphertext-plaintext
    def add_plain(self, ct, pt, in_new_ctxt=False):
        return self._apply("add_plain", ct, pt, lambda a, p: self._ring(a).add(a, self._plain_rows(p)), in_new_ctxt)

    def sub_plain(self, ct, pt, in_new_ctxt=False):
        return self._apply("sub_plain", ct, pt, lambda a, p: self._ring(a).sub(a, self._plain_rows(p)), in_new_ctxt)

    def multiply_plain(self, ct, pt, in_new_ctxt=False):
        return self._apply(
            "multiply_plain", ct, pt, lambda a, p: self._ring(a).mul(a, self._plain_rows(p)), in_new_ctxt
        )

    # unary
    def negate(self, ct, in_new_ctxt=False):
        out = self._he.negate(ct.real, in_new_ctxt=in_new_ctxt)
        rows = self._ring(ct.shadow.rows).neg(ct.shadow.rows)
        if in_new_ctxt:
            return Dual(out, _Shadow(rows))
        ct.shadow = _Shadow(rows)
        return ct

    def rotate(self, ct, k, in_new_ctxt=False):
        out = self._he.rotate(ct.real, k, in_new_ctxt=in_new_ctxt)
        elt = galois_elt_from_step(int(k), self._probe.ctx.n)
        rows = self._ring(ct.shadow.rows).automorphism_ntt(ct.shadow.rows, elt)
        if in_new_ctxt:
            return Dual(out, _Shadow(rows))
        ct.shadow = _Shadow(rows)
        return ct

    def relinearize(self, ct):
        self._he.relinearize(ct.real)
        return ct

    def mod_switch_to_next_ctxt(self, ct, in_new_ctxt=False):
        if not isinstance(ct, Dual):
            return self._he.mod_switch_to_next_ctxt(ct, in_new_ctxt=in_new_ctxt)
        out = self._he.mod_switch_to_next_ctxt(ct.real, in_new_ctxt=in_new_ctxt)
        rows = np.ascontiguousarray(ct.shadow.rows[:-1])
        if in_new_ctxt:
            return Dual(out, _Shadow(rows))
        ct.shadow = _Shadow(rows)
        return ct

    def rescale_to_next(self, ct):
        self._he.rescale_to_next(ct.real)
        ct.shadow = _Shadow(self._probe.divide_round_last(ct.shadow.rows))


def _recording_pyfhel(probe: NoiseProbe, context_bytes: bytes):
    """A Pyfhel (a real subclass: Pyfhel's own objects accept it) whose encryptions register their
    encodings as shadows."""
    from Pyfhel import Pyfhel

    class Recording(Pyfhel):
        def encryptFrac(self, values, scale=None, **kwargs):  # noqa: N802 (Pyfhel's name)
            ct = super().encryptFrac(values, scale=scale, **kwargs)
            pt = self.encodeFrac(np.ascontiguousarray(values, dtype=np.float64), scale=scale)
            probe.register(ct.to_bytes(compr_mode="none"), PlaintextData.from_bytes(pt.to_bytes(), probe.ctx.n))
            return ct

    he = Recording()
    he.from_bytes_context(context_bytes)
    return he


@dataclass
class Record:
    kind: str
    level: int
    noise: dict
    extra: dict = field(default_factory=dict)


class NoiseProbe:
    """Install on an in-process Federation whose parameter set has smudging 0, before the study's data
    are encrypted; run the study with workers=0; read `records`."""

    def __init__(self, fed):
        if fed.params.smudging_bits != 0 or getattr(fed.params, "refresh_smudging", 0) != 0:
            raise ValueError("the noise probe needs a parameter set with smudging 0 (see the module docstring)")
        self.fed, self.ctx = fed, fed.ctx
        self.records: list[Record] = []
        self._shadows: dict[bytes, np.ndarray] = {}
        self._rerandomized: dict[bytes, np.ndarray] = {}  # c1 digest -> the noise an encryption of zero added
        self._rng = SecretRandom()
        self._undo = []

    # ------------------------------------------------------------------ exact arithmetic
    def divide_round_last(self, rows: np.ndarray) -> np.ndarray:
        """round(m / q_l) for a message polynomial at level l (NTT form), exactly as a rescale should."""
        ring = self.ctx.ring(rows.shape[0] - 1)
        low = self.ctx.ring(rows.shape[0] - 2)
        q_last = ring.moduli[-1]
        coeff = ring.intt(rows)
        last = coeff[-1].astype(np.int64)
        last = np.where(last > q_last // 2, last - np.int64(q_last), last)
        out = low.sub(np.ascontiguousarray(coeff[:-1]), low.from_signed(last))
        out = low.mul_scalar_rows(out, [pow(q_last % q, -1, q) for q in low.moduli])
        return low.ntt(out, inplace=True)

    def exact(self, real) -> tuple[np.ndarray, int]:
        """c0 + sum_i s_i c1 with smudging 0, each s_i c1 made in its hospital's place (NTT form)."""
        data = CiphertextData.from_bytes(real.to_bytes(compr_mode="none"))
        if data.size != 2:
            raise ValueError("noise probe: relinearize before measuring")
        level = self.ctx.level_of(data.parms_id)
        dec = ThresholdDecryption(self.ctx, smudging_bits=0)
        ring = self.ctx.ring(level)
        c1 = np.ascontiguousarray(data.data[1])
        shares = [dec.gen_share(p._share_for(None), c1, level, self._rng).data for p in self.fed.hospitals]
        return ring.add(np.ascontiguousarray(data.data[0]), ring.sum(shares)), level

    def noise(self, ct: Dual) -> np.ndarray:
        m, level = self.exact(ct.real)
        ring = self.ctx.ring(level)
        return ring.to_centered_small(ring.intt(ring.sub(m, ct.shadow.rows[: level + 1])))

    # ------------------------------------------------------------------ rerandomized refresh inputs
    def _refresh_level(self, cts, bound_bits) -> int:
        from mpclr.protocols.refresh import RefreshProtocol

        proto, bound = RefreshProtocol(self.ctx), 8 if bound_bits is None else int(bound_bits)
        return max(proto.min_level(bound, len(self.fed.hospitals), float(ct.real.scale)) for ct in cts)

    def _c1_digest_at(self, real, level: int) -> bytes:
        from mpclr.protocols import c1 as c1check

        data = CiphertextData.from_bytes(real.to_bytes(compr_mode="none"))
        return c1check.digest(np.ascontiguousarray(data.data[1][: level + 1]))

    def _recording_rerandomize(self, original):
        from mpclr.protocols import c1 as c1check

        def rerandomize(ring, public_key, c0, c1, rng, key_ring):
            c0n, c1n = original(ring, public_key, c0, c1, rng, key_ring)
            z0, z1 = ring.sub(c0n, c0), ring.sub(c1n, c1)
            level = len(ring.moduli) - 1
            shares = [
                ThresholdDecryption(self.ctx, smudging_bits=0).gen_share(p._share_for(None), z1, level, self._rng).data
                for p in self.fed.hospitals
            ]
            self._rerandomized[c1check.digest(c1)] = ring.to_centered_small(ring.intt(ring.add(z0, ring.sum(shares))))
            return c0n, c1n

        return rerandomize

    # ------------------------------------------------------------------ shadows of fresh ciphertexts
    @staticmethod
    def _key(raw: bytes) -> bytes:
        """c1's first prime: the same after primes are dropped (a hospital's upload sent below the top)."""
        return hashlib.sha256(CiphertextData.from_bytes(raw).data[1][0].tobytes()).digest()

    def register(self, raw: bytes, plain: PlaintextData) -> None:
        self._shadows[self._key(raw)] = np.ascontiguousarray(plain.data)

    def wrap(self, ct: PyCtxt, raw: bytes | None = None) -> Dual | PyCtxt:
        key = self._key(raw if raw is not None else ct.to_bytes(compr_mode="none"))
        rows = self._shadows.get(key)
        if rows is None:
            return ct
        data = CiphertextData.from_bytes(raw if raw is not None else ct.to_bytes(compr_mode="none"))
        return Dual(ct, _Shadow(np.ascontiguousarray(rows[: data.data.shape[1]])))

    # ------------------------------------------------------------------ installation
    def _patch(self, obj, name, value) -> None:
        had = name in getattr(obj, "__dict__", {})
        old = getattr(obj, name)
        self._undo.append((obj, name, old, had))
        setattr(obj, name, value)

    def __enter__(self):
        import mpclr.evaluation.comparison as comparison
        import mpclr.roles.evaluator as evaluator_mod
        import mpclr.roles.refresh_coordinator as server_mod
        import mpclr.training.blocks as blocks
        import mpclr.training.encrypted as encrypted

        fed, ctx, probe = self.fed, self.ctx, self
        for mod in (blocks, comparison, encrypted, evaluator_mod, server_mod):
            self._patch(mod, "PyCtxt", _copy_factory(PyCtxt))
        self._patch(ctx, "pyfhel", lambda: _recording_pyfhel(probe, ctx._context_bytes))
        for party in fed.hospitals:
            party._he = None
        load = ctx.load_ciphertext
        self._patch(
            ctx, "load_ciphertext", lambda he, raw, what="ciphertext": probe.wrap(load(_real(he), raw, what), raw)
        )
        self._patch(fed.server.evaluator, "he", _DualHE(fed.server.evaluator.he, probe))
        original_load = encrypted.EncryptedTrainer._load
        self._patch(encrypted.EncryptedTrainer, "_load", lambda tr, raw: probe.wrap(original_load(tr, raw), raw))
        self._patch(fed.server, "refresh_raw", self._refresh_hook(fed.server.refresh_raw))
        self._share_keyed_hooks()
        c1check = getattr(server_mod, "c1check", None)  # servers that rerandomize a repeated c1
        if c1check is not None:
            self._patch(c1check, "rerandomize", self._recording_rerandomize(c1check.rerandomize))
        for name in ("decrypt", "decrypt_many", "receive", "receive_many"):
            self._patch(fed, name, self._decrypt_hook(name, getattr(fed, name)))
        return self

    def __exit__(self, *exc):
        while self._undo:
            obj, name, old, had = self._undo.pop()
            if had or isinstance(obj, type) or inspect.ismodule(obj):
                setattr(obj, name, old)
            else:
                delattr(obj, name)
        for party in self.fed.hospitals:
            party._he = None

    # ------------------------------------------------------------------ hooks
    def _share_keyed_hooks(self) -> None:
        """Share-keyed uploads (mpclr.protocols.upload): the encoding a hospital encrypted, found by the
        upload's seed when the server switches it, is the switched ciphertext's shadow."""
        from mpclr.protocols import upload

        encodings: dict[bytes, PlaintextData] = {}
        encrypt, probe = upload.UploadEncryptor.encrypt, self

        def recording_encrypt(enc, he, values, scale, drops):
            raw = encrypt(enc, he, values, scale, drops)
            pt = he.encodeFrac(np.ascontiguousarray(values, dtype=np.float64), scale=scale)
            encodings[upload.seed_of(raw)] = PlaintextData.from_bytes(pt.to_bytes(compr_mode="none"), probe.ctx.n)
            return raw

        self._patch(upload.UploadEncryptor, "encrypt", recording_encrypt)
        switch = self.fed.server.uploads.load

        def recording_load(raw, what, sender):
            out = switch(raw, what, sender)
            plain = encodings.pop(upload.seed_of(raw), None) if upload.is_share_keyed(raw) else None
            if plain is not None:
                probe.register(out, plain)
            return out

        self._patch(self.fed.server.uploads, "load", recording_load)

    def _decrypt_hook(self, name, original):
        def hook(cs, *args, **kwargs):
            handles = list(cs) if name.endswith("_many") else [cs]
            labels = kwargs.get("labels") or [kwargs.get("label", "")] * len(handles)
            kind = "receive" if name == "receive_many" else name  # a batch of key switches, each one's noise
            for h, label in zip(handles, labels):
                ct = self.fed.server.evaluator.get(h).ct
                if isinstance(ct, Dual):
                    self.records.append(Record(f"{kind}: {_kind(label)}", h.level, noise_stats(self.noise(ct))))
            return original(cs, *args, **kwargs)

        return hook

    def _refresh_hook(self, original):
        def hook(cts, levels, outputs, by=None, *, bound_bits=None, **older):
            caller = _caller()
            boost = 1 << int(older.get("boost_bits", 0))  # a server that scales its inputs scales their noise
            exact_in, noises = [], []
            for k, ct in enumerate(cts):
                if not isinstance(ct, Dual):
                    raise TypeError(f"noise probe: refresh input {k} ({caller}) has no shadow")
                noises.append(boost * self.noise(ct))
                exact_in.append(self.exact(ct.real))
            self._rerandomized.clear()
            fresh = original([ct.real for ct in cts], levels, outputs, by, bound_bits=bound_bits, **older)
            # an input whose c1 the server had sent before was made fresh by an encryption of zero: its noise
            # is part of what the refresh's smudging hides, and of the output's message
            level = self._refresh_level(cts, bound_bits) if self._rerandomized else None
            for k, ct in enumerate(cts):
                extra = None if level is None else self._rerandomized.get(self._c1_digest_at(ct.real, level))
                if extra is not None:
                    noises[k] = noises[k] + extra
                    exact_in[k] = (exact_in[k][0], exact_in[k][1], extra)
                rotated = any(len(t) > 2 and t[2] for row in outputs for t in row if t[0] == k)
                kind = f"refresh input: {caller}" + (" (rotate-and-sum)" if rotated else "")
                self.records.append(Record(kind, levels[k], noise_stats(noises[k])))
            out = []
            for ct, row in zip(fresh, outputs):
                shadow = self._combination(exact_in, [float(cts[t[0]].real.scale) for t in row], row,
                                           older.get("polys"))
                dual = Dual(ct, _Shadow(shadow))
                self._shadows[self._key(ct.to_bytes(compr_mode="none"))] = shadow  # reloaded from bytes later
                stats = noise_stats(self.noise(dual))
                self.records.append(Record(f"refresh output: {caller}", self.ctx.top_level, stats))
                out.append(dual)
            return out

        return hook

    def _combination(self, exact_in, scales, row, polys=None) -> np.ndarray:
        """The exact public combination a refresh outputs: round(sum_k c_k r_k T_k(m_k)), r_k = Delta_top / Delta_k
        (T with a slot mask: its exact product, rounded, as the refresh makes it)."""
        from mpclr.protocols.refresh import POLY_SHIFT, polys_ntt
        from mpclr.ring.wide import Channels, multiply_round

        n = self.ctx.n
        top = self.ctx.ring(self.ctx.top_level)
        delta_top = Fraction(self.ctx.scale_ladder[self.ctx.top_level])
        acc = np.zeros(n, dtype=object)
        for (k, coef, *rest), scale in zip(row, scales):
            m, level, *extra = exact_in[k]
            ring = self.ctx.ring(level)
            values = np.array(ring.to_centered_int_list(ring.intt(m)), dtype=object)
            if extra:
                values = values + np.array(extra[0].tolist(), dtype=object)
            for elt in rest[0] if rest else ():
                values = values + _automorphism(values, int(elt), n)
            if len(rest) > 1 and rest[1]:
                poly, elts2 = rest[1]
                ch = multiply_round(Channels.from_ints(top, values), polys_ntt(self.ctx, polys)[poly], POLY_SHIFT)
                values = np.array(top.to_centered_int_list(ch.rows), dtype=object)
                for elt in elts2:
                    values = values + _automorphism(values, int(elt), n)
            acc = acc + values * (Fraction(coef) * delta_top / Fraction(scale))
        rounded = [int(round(v)) for v in acc]
        return top.ntt(top.from_int_list(rounded), inplace=True)

    # ------------------------------------------------------------------ summary
    def summary(self) -> dict:
        out: dict[str, dict] = {}
        for r in self.records:
            empty = {"count": 0, "std": 0.0, "max": 0.0, "l2": 0.0, "l2_sq_sum": 0.0, "levels": set()}
            s = out.setdefault(r.kind, empty)
            s["l2_sq_sum"] += r.noise["l2"] ** 2
            s["count"] += 1
            s["std"] = max(s["std"], r.noise["std"])
            s["max"] = max(s["max"], r.noise["max"])
            s["l2"] = max(s["l2"], r.noise["l2"])
            s["levels"].add(r.level)
        for s in out.values():
            s["levels"] = sorted(s["levels"])
        return out


def measure_study(params, data, *, parties: int = 3, folds: int = 3, iterations: int = 2, seed: int = 0,
                  refine_rounds: int = 1, evaluation: bool = True) -> dict:
    """A small real study (in process, workers 0) on `params` with its smudging set to 0, probed: the
    noise summary per kind of ciphertext it decrypts or refreshes (see NoiseProbe.summary). Without
    `evaluation`, the fold models are decrypted but not evaluated securely (no counts measured)."""
    from mpclr.data import load, split
    from mpclr.evaluation.secure import evaluate_encrypted_cv
    from mpclr.federation import Federation
    from mpclr.pipeline import plan_for
    from mpclr.spec import StudySpec
    from mpclr.training.cv import encrypt_study

    zero = {"smudging_bits": 0}
    if hasattr(params, "refresh_smudging_bits"):
        zero["refresh_smudging_bits"] = 0
    probed = params.with_(name=f"{params.name}/probe", **zero)
    ds = load(data, seed=seed) if str(data).startswith("synthetic") else load(data)
    config = StudySpec(hospitals=parties, folds=folds, iterations=iterations, seed=seed, workers=0)
    fed = Federation(parties, preset=probed, seed=seed, manifest="exploration")  # a probe, not a study
    try:
        parts = split(ds, parties, "even", seed=seed)
        offsets = np.cumsum([0] + [len(p) for p in parts])
        for k, (party, part) in enumerate(zip(fed.hospitals, parts)):
            party.load_data(part.X, part.y, np.arange(offsets[k], offsets[k + 1]))
        with NoiseProbe(fed) as probe:
            model = config.model()
            extra = {"seed": seed} if "seed" in inspect.signature(encrypt_study).parameters else {}
            ecv = encrypt_study(fed, folds=folds, interval=model.interval, **extra)
            plan = plan_for(config.model(curvature=ecv.curvature), ecv.curvature)
            ecv.train(fed, plan, workers=0)
            if evaluation:
                evaluate_encrypted_cv(fed, ecv, workers=0, refine_rounds=refine_rounds)
            ecv.decrypt_models(fed)
        return probe.summary()
    finally:
        fed.close()


def _real(he):
    return he._he if isinstance(he, _DualHE) else he


def _automorphism(values: np.ndarray, elt: int, n: int) -> np.ndarray:
    idx = (np.arange(n, dtype=np.int64) * elt) % (2 * n)
    out = np.empty(n, dtype=object)
    sign = np.where(idx >= n, -1, 1)
    out[idx % n] = values * sign
    return out


_KNOWN = (
    ("_materialize_weights", "training, final models"),
    ("ensure", "training, per-sample ciphertexts mid-iteration"),
    ("_update", "training, update"),
    ("average_models", "evaluation, model averaging"),
    ("compute_scores", "evaluation, scores"),
    ("_Comparer", "evaluation, comparison cycle"),
    ("run", "evaluation, comparison cycle"),
)


def _caller() -> str:
    names, frame = [], sys._getframe(2)
    while frame is not None and len(names) < 20:
        names.append(frame.f_code.co_name)
        frame = frame.f_back
    for fn, label in _KNOWN:
        if fn in names:
            return label
    return "other: " + "/".join(names[:3])


def _kind(label: str) -> str:
    for word, kind in (("pooled", "aggregate"), ("fold models", "fold models"), ("counts", "counts")):
        if word in label:
            return kind
    return label or "unlabelled"
