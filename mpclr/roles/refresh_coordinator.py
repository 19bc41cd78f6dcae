"""The server's part of the collective refresh: it drops ciphertexts to the level the masks need, sends
their c1 (re-randomized if it was sent before) to the key holders, and combines their shares into fresh
ciphertexts at the top level. Values stay hidden behind the hospitals' masks; the server learns nothing.

A mixin of mpclr.roles.server.Server (it uses the node's `call_many`, the CRS and the evaluator).
"""

from __future__ import annotations

import time
from fractions import Fraction

import numpy as np
from Pyfhel import PyCtxt

from ..errors import ProtocolError
from ..protocols import c1 as c1check
from ..protocols.decryption import ThresholdDecryption
from ..protocols.refresh import RefreshProtocol, plan_outputs, polys_ntt
from ..seal.format import CiphertextData
from .evaluator import Ciphertext
from .node import with_live_participants

__all__ = ["RefreshCoordinator"]


class RefreshCoordinator:
    """Runs refresh rounds for the server."""

    def refresh(self, h: Ciphertext, by=None, *, bound_bits: int | None = None, purpose: str = "refresh") -> Ciphertext:
        """Bring a ciphertext back to the top level with the key holders `by` (default: all).

        bound_bits: public bound on |values| (2^bound_bits): the masks hide values up to it with
        refresh_mask_bits of statistical security; a value far beyond it is refused when combined.
        The ciphertext is switched down to the lowest level that holds the masks first; it may arrive
        at any level at or above that one. purpose: the label prefix the key holders account the round
        under (their study manifest budgets refreshes by it)."""
        return self.refresh_combine([[(1.0, h)]], by, bound_bits=bound_bits, purpose=purpose)[0]

    def refresh_combine(
        self,
        outputs,
        by=None,
        *,
        bound_bits: int | None = None,
        purpose: str = "refresh",
    ) -> list[Ciphertext]:
        """One refresh round for a batch: output o is sum_k coef * ciphertext_k, for outputs given as lists
        of (coef, Ciphertext) with public real coefficients, each landing fresh at the top level."""
        handles: list[Ciphertext] = []
        index: dict[int, int] = {}
        terms = []
        for out in outputs:
            row = []
            for coef, h in out:
                if h.id not in index:
                    index[h.id] = len(handles)
                    handles.append(h)
                row.append((index[h.id], float(coef)))
            terms.append(row)
        entries = [self.evaluator.get(h) for h in handles]
        cts = self.refresh_raw(
            [e.ct for e in entries], [e.level for e in entries], terms, by, bound_bits=bound_bits, purpose=purpose
        )
        lengths = [max(entries[t[0]].length for t in row) for row in terms]
        return [self.evaluator.put(ct, n, self.ctx.top_level) for ct, n in zip(cts, lengths)]

    def refresh_raw(
        self,
        cts: list[PyCtxt],
        levels: list[int],
        outputs: list[list[tuple[int, float]]],
        by=None,
        *,
        bound_bits: int | None = None,
        purpose: str = "refresh",
        polys=None,
    ) -> list[PyCtxt]:
        """refresh_combine on raw Pyfhel ciphertexts (for engines that keep their own ciphertexts). With
        by=None, key holders that stop answering are left out and the round is redone with the others.
        A term may be (input, coefficient, galois elements, (polynomial index, galois elements 2)): polys
        holds those slot-mask polynomials (int64 coefficients, mpclr.protocols.refresh.mask_polynomial)."""
        return with_live_participants(
            self, by, lambda names: self._refresh_round(cts, levels, outputs, names, bound_bits, purpose, polys)
        )

    def _refresh_round(self, cts, levels, outputs, names, bound_bits, purpose, polys=None) -> list[PyCtxt]:
        bound = self.refresh_bound_bits if bound_bits is None else int(bound_bits)
        proto = RefreshProtocol(self.ctx)
        scales = [float(ct.scale) for ct in cts]
        level = max(proto.min_level(bound, len(names), scale) for scale in scales)
        low = [lvl for lvl in levels if lvl < level]
        if low:
            raise ProtocolError(
                f"ciphertext at level {min(low)} is too low to refresh values up to 2^{bound} with "
                f"{proto.mask_bits}-bit masks for {len(names)} key holders: refresh at level {level} or above"
            )
        t0 = time.perf_counter()
        ring = self.ctx.ring(level)
        c0s, c1_raw = [], []
        for ct, lvl in zip(cts, levels):
            dropped = PyCtxt(copy_ctxt=ct)
            for _ in range(lvl - level):
                self.evaluator.he.mod_switch_to_next_ctxt(dropped)
            data = CiphertextData.from_bytes(dropped.to_bytes(compr_mode="none"))
            c0, c1 = data.data[0], data.data[1]
            if c1check.digest(c1) in self._sent_c1:  # a retry, or a ciphertext refreshed again: a fresh c1
                c0, c1 = c1check.rerandomize(ring, self._public_key_data(), c0, c1, self._rng, self.ctx.key_ring)
            self._sent_c1.add(c1check.digest(c1))
            c0s.append(np.ascontiguousarray(c0))
            c1_raw.append(self._c1_bytes(c1, level))
        ratios = [proto.ratio(scale) for scale in scales]
        planned = plan_outputs([[(t[0], Fraction(t[1]) * ratios[t[0]], *t[2:]) for t in row] for row in outputs])
        bits = max(proto.mask_bits_total(scale, bound) for scale in scales)
        self._refresh_count += 1
        label = f"{purpose}#{self._refresh_count}"  # unique (the CRPs derive from it), accounted by purpose
        request = {
            "c1": c1_raw,
            "level": level,
            "label": label,
            "participants": names,
            "mask_bits": bits,
            "outputs": [{"terms": [[i, a, list(e), [post[0], list(post[1])] if post else []]
                                   for i, a, e, post in terms], "shift": shift} for terms, shift in planned],
        }
        if polys:
            request["polys"] = [np.asarray(p, dtype="<i8").tobytes() for p in polys]
        replies = self.call_many("refresh.share", {p: request for p in names})
        del request, c1_raw
        top = self.ctx.top_level
        pid, scale = self.ctx.level_parms_id(top), self.ctx.scale_ladder[top]

        def shares(kind, i, parse):  # every party's share of one input or output, parsed when it is combined
            return [parse(replies[p][kind][i]) for p in names]

        def fresh(pair):  # each output a ciphertext as soon as it is made: a large round holds few pairs at once
            return self.ctx.load_ciphertext(
                self.evaluator.he, CiphertextData(pid, scale, np.stack(pair)).to_bytes(), "refreshed ciphertext")

        with self.timed("refresh.combine"):
            out = proto.finalize(c0s, level, lambda k: shares("h0", k, lambda raw: proto.h0_from_bytes(raw, level)),
                                 lambda o: shares("h1", o, proto.h1_from_bytes),
                                 lambda o: proto.sample_crp(self.crs, f"{label}/{o}"), planned, bits,
                                 polys_ntt(self.ctx, polys or []), emit=fresh)
        self.timings["refresh"] = self.timings.get("refresh", 0.0) + time.perf_counter() - t0
        return out

    def _c1_bytes(self, c1: np.ndarray, level: int) -> bytes:
        return ThresholdDecryption(self.ctx).c1_to_bytes(np.ascontiguousarray(c1), level)

    def _public_key_data(self) -> np.ndarray:
        if self.public_key is None:
            raise ProtocolError("no collective public key yet: run the key ceremony")
        return CiphertextData.from_bytes(self.public_key, "collective public key").data
