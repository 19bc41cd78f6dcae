"""Teaching helpers for notebooks/90_workshop.ipynb: threshold decryption, partial decryptions, noise.

Everything runs the real protocols through `mpclr.Federation` (key ceremony, authenticated messages, smudged
partial decryptions); nothing here is simulated. The one thing a real researcher cannot do, and the
workshop does to show why, is to combine the shares of fewer key holders than needed: collect the shares
of a set the protocol accepts, then combine only some of them (`Researcher.collect_shares`, then
`Researcher.combine`). The result is noise.

    demo = Demo(hospitals=3)
    demo.decrypt([0, 1, 2]).max_error     # ~1e-5: all key holders
    demo.decrypt([0, 1]).max_error        # ~1e5: noise
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from .errors import ParameterError, renamed_keywords
from .notebooks.study import make_federation
from .params import Params, get_preset

__all__ = [
    "params_variant",
    "Demo",
    "cached_demo",
    "Decryption",
    "PartialView",
    "explore",
    "smudging_sweep",
    "noise_by_depth",
    "plot_decryption",
    "plot_partial",
    "plot_noise",
    "plot_sweep",
    "close_all",
    "Record",
    "describe",
]

# A decryption is called correct below this error (CKKS is approximate: fresh values carry ~1e-5).
CORRECT = 1e-2


def params_variant(
    preset: str | Params = "fast", smudging_bits: float | None = None, scale_bits: int | None = None
) -> Params:
    """The preset with another smudging sigma and/or another scale.

    Another scale moves the rescaling primes with it (they must stay near the scale) and keeps the
    decryption and special primes the same distance above it; the depth shrinks if the larger primes
    would break the 128-bit bound. Params itself refuses what is impossible, naming the parameter."""
    base = get_preset(preset)
    changes: dict = {}
    if smudging_bits is not None and smudging_bits != base.smudging_bits:
        changes["smudging_bits"] = smudging_bits
    if scale_bits is not None and scale_bits != base.scale_bits:
        gap = base.coeff_bits[0] - base.scale_bits
        q0, special = scale_bits + gap, max(base.coeff_bits[-1], scale_bits + gap)
        if q0 > 60 or special > 60:
            raise ParameterError(
                f"parameter scale_bits = {scale_bits} is too large for preset {base.name!r}: the "
                f"decryption prime would need {q0} bits (at most 60); use at most {60 - gap}"
            )
        budget = base.max_log_qp_128 or base.log_qp
        depth = min(base.depth, (budget - q0 - special) // scale_bits)
        if depth < 1:
            raise ParameterError(
                f"parameter scale_bits = {scale_bits} leaves no multiplicative level within the "
                f"128-bit bound for N = {base.n}"
            )
        changes.update(scale_bits=scale_bits, coeff_bits=(q0, *[scale_bits] * depth, special))
    if not changes:
        return base
    label = [f"smudging={smudging_bits:g}"] if "smudging_bits" in changes else []
    label += [f"scale={scale_bits}"] if "scale_bits" in changes else []
    return base.with_(name=f"{base.name}/{','.join(label)}", **changes)


@dataclass
class Decryption:
    """What the researcher gets from the shares of `who`."""

    who: list[str]
    hospitals: int
    needed: int
    values: np.ndarray
    expected: np.ndarray

    @property
    def max_error(self) -> float:
        return float(np.max(np.abs(self.values - self.expected)))

    @property
    def enough(self) -> bool:
        """Whether these key holders can decrypt under the protocol (all of them for n-out-of-n)."""
        return len(self.who) >= self.needed

    @property
    def correct(self) -> bool:
        return self.max_error < CORRECT

    def summary(self) -> str:
        who = ", ".join(self.who) if self.who else "nobody"
        head = f"shares from {who} ({len(self.who)} of {self.hospitals}; {self.needed} needed): "
        if self.correct:
            return head + f"decrypted, max error {self.max_error:.1e}"
        return head + f"not enough shares, the result is noise (max error {self.max_error:.1e})"


@dataclass
class PartialView:
    """Coefficients (centered, at the last prime q_0) of one hospital's partial decryption, of the combined
    plaintext polynomial, and of the combination of too few shares."""

    hospital: str
    q0_bits: float
    scale_bits: float
    share: np.ndarray
    plaintext: np.ndarray
    too_few: np.ndarray | None

    @staticmethod
    def spread_bits(coeffs: np.ndarray) -> float:
        return float(np.log2(np.std(coeffs.astype(np.float64)) + 1.0))

    def summary(self) -> dict:
        out = {
            "hospital": self.hospital,
            "q0_bits": self.q0_bits,
            "scale_bits": self.scale_bits,
            "share_spread_bits": self.spread_bits(self.share),
            "plaintext_spread_bits": self.spread_bits(self.plaintext),
        }
        if self.too_few is not None:
            out["too_few_spread_bits"] = self.spread_bits(self.too_few)
        return out


class Demo:
    """A federation for the workshop, and a signal encrypted by the first hospital.

    hospitals, threshold (None = n-out-of-n), preset, smudging_bits, scale_bits: as in the notebooks.
    """

    @renamed_keywords(parties="hospitals")
    def __init__(
        self,
        hospitals: int = 3,
        threshold: int | None = None,
        preset: str | Params = "fast",
        smudging_bits: float | None = None,
        scale_bits: int | None = None,
        length: int = 64,
    ):
        self.params = params_variant(preset, smudging_bits, scale_bits)
        # interactive: the hospitals answer every request (and log it), which no deployed hospital accepts
        self.fed = make_federation(hospitals, threshold, self.params, manifest="exploration")
        self.x = np.sin(np.linspace(0, 2 * np.pi, length, endpoint=False)) * 0.8
        self.ct = self.fed.hospitals[0].encrypt(self.x)

    @property
    def hospitals(self) -> int:
        return self.fed.n

    @property
    def needed(self) -> int:
        return self.fed.session.threshold

    def close(self) -> None:
        self.fed.close()

    def _indices(self, who) -> list[int]:
        out = []
        for w in who:
            i = w if isinstance(w, int | np.integer) else [p.name for p in self.fed.hospitals].index(w)
            if not 0 <= i < self.hospitals:
                raise ParameterError(f"parameter decryptors: hospital index {i} out of range 0..{self.hospitals - 1}")
            if i not in out:
                out.append(int(i))
        return sorted(out)

    def _collect(self, who: list[int], ct=None):
        """Shares for `who`, collected from a set the protocol accepts: `who` itself when enough, else
        `who` plus others (all key holders for n-out-of-n); the extra shares are then left out."""
        n, t = self.hospitals, self.needed
        if len(who) >= t and (t < n or len(who) == n):
            legal = who
        elif t < n:
            legal = who + [i for i in range(n) if i not in who][: t - len(who)]
        else:
            legal = list(range(n))
        data, shares = self.fed.researcher.collect_shares(self.ct if ct is None else ct, legal)
        return data, [shares[self.fed.hospitals[i].name] for i in who]

    def decrypt(self, who=None, ct=None, expected=None) -> Decryption:
        """Decrypt with the shares of `who` only (indices or names; None = all)."""
        who = list(range(self.hospitals)) if who is None else self._indices(who)
        ct = self.ct if ct is None else ct
        names = [self.fed.hospitals[i].name for i in who]
        if not who:
            values = np.full(ct.length, np.nan)
        else:
            data, used = self._collect(who, ct)
            values = self.fed.researcher.combine(data, used, ct.length)
        exp = self.x if expected is None else expected
        return Decryption(names, self.hospitals, self.needed, np.asarray(values), np.asarray(exp))

    def partial_view(self, hospital: int = 0) -> PartialView:
        """What one partial decryption looks like next to the plaintext polynomial it helps reveal."""
        everyone = list(range(self.hospitals))
        data, shares = self._collect(everyone)
        ctx = self.fed.ctx
        level = ctx.check_ciphertext(data)
        ring = ctx.ring(level)

        def coeffs(poly_ntt):
            return ring.to_centered_small(ring.intt(poly_ntt))

        c0 = np.ascontiguousarray(data.data[0])
        plain = ring.add(c0, ring.sum(s.data for s in shares))
        few = ring.add(c0, ring.sum(s.data for s in shares[:-1]))
        return PartialView(
            self.fed.hospitals[hospital].name,
            math.log2(ring.moduli[0]),
            math.log2(data.scale),
            coeffs(shares[hospital].data),
            coeffs(plain),
            coeffs(few),
        )

    def noise_by_depth(self) -> list[dict]:
        """Multiply the signal by an encryption of 1, level after level: the value stays the same, each
        product spends one prime of the modulus, and rescaling keeps the error near 2^-scale."""
        server, ctx = self.fed.server, self.fed.ctx
        one = self.fed.hospitals[-1].encrypt(np.ones(len(self.x)))
        ct, rows = self.ct, []
        for depth in range(ctx.top_level + 1):
            if depth:
                ct = server.multiply(ct, one)
            err = self.decrypt(ct=ct).max_error
            rows.append(
                {
                    "depth": depth,
                    "level": ct.level,
                    "modulus_bits": round(sum(math.log2(q) for q in ctx.primes[: ct.level + 1]), 1),
                    "scale_bits": round(math.log2(ct.scale), 2),
                    "max_error": err,
                    "precision_bits": float(-np.log2(err)) if err > 0 else 53.0,
                }
            )
        server.forget(one)
        return rows


@renamed_keywords(parties="hospitals")
def noise_by_depth(
    scales=(25, 30, 40), hospitals: int = 3, preset: str = "fast", smudging_bits: float | None = None
) -> dict[int, list[dict]]:
    """Demo.noise_by_depth for several scales: a larger scale buys precision, and pays in depth (the
    primes grow with it, and the 128-bit bound caps their sum)."""
    out = {}
    for bits in scales:
        demo = Demo(hospitals, None, preset, smudging_bits, int(bits))
        try:
            out[int(bits)] = demo.noise_by_depth()
        finally:
            demo.close()
    return out


_CACHE: OrderedDict[tuple, Demo] = OrderedDict()
_CACHE_SIZE = 4


@renamed_keywords(parties="hospitals")
def cached_demo(hospitals: int = 3, threshold: int | None = None, preset: str = "fast",
                smudging_bits: float | None = None, scale_bits: int | None = None) -> Demo:
    """Demos are reused across widget moves; only a change of n, t or parameter set makes a new one (the
    last four stay open; close_all closes them)."""
    key = (hospitals, threshold, preset, smudging_bits, scale_bits)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    demo = Demo(hospitals, threshold, preset, smudging_bits, scale_bits)
    _CACHE[key] = demo
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)[1].close()
    return demo


def close_all() -> None:
    while _CACHE:
        _CACHE.popitem()[1].close()


@renamed_keywords(parties="hospitals")
def explore(
    hospitals: int = 3,
    threshold: int | None = None,
    decryptors=None,
    smudging_bits: float | None = None,
    scale_bits: int | None = None,
    preset: str = "fast",
) -> Decryption:
    """One widget setting: the decryption by `decryptors` in the federation of these parameters."""
    demo = cached_demo(hospitals, threshold, preset, smudging_bits, scale_bits)
    return demo.decrypt(decryptors)


@renamed_keywords(parties="hospitals")
def smudging_sweep(bits, hospitals: int = 3, preset: str = "fast", scale_bits: int | None = None) -> list[dict]:
    """Decryption error against the smudging sigma (log2): protection against the ciphertext noise costs
    precision."""
    rows = []
    for b in bits:
        demo = Demo(hospitals, None, preset, float(b), scale_bits)
        try:
            rows.append({"smudging_bits": float(b), "max_error": demo.decrypt().max_error})
        finally:
            demo.close()
    return rows


# ------------------------------------------------------------------------------------------------
# plots (matplotlib imported on first use)


def _plt():
    import matplotlib.pyplot as plt

    return plt


def plot_decryption(dec: Decryption, ax=None):
    plt = _plt()
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 3), layout="constrained")
    ax.plot(dec.expected, "k--", label="the hospital's values")
    ax.plot(dec.values, "o", ms=3, color="#2a9d3a" if dec.correct else "#d1495b", label="decrypted")
    if not dec.correct and np.all(np.isfinite(dec.values)):
        ax.set_yscale("symlog", linthresh=1.0)
        top = max(1, math.ceil(math.log10(float(np.max(np.abs(dec.values))) + 1)))
        powers = [10.0**k for k in range(0, top + 1, max(1, top // 3))]
        ax.set_yticks([-p for p in reversed(powers)] + [0.0] + powers)
    ax.set_title(dec.summary(), fontsize=9)
    ax.legend(fontsize=8, loc="lower left")
    return fig or ax.figure


def plot_partial(view: PartialView):
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3), layout="constrained")
    panels = [
        (view.share, f"partial decryption of {view.hospital}"),
        (view.plaintext, "all shares combined"),
        (view.too_few, "one share missing"),
    ]
    for ax, (c, title) in zip(axes, panels):
        if c is None:
            ax.set_visible(False)
            continue
        ax.hist(c.astype(np.float64), bins=60, color="#4c72b0")
        ax.set_title(
            f"{title}\nspread 2^{view.spread_bits(c):.1f} (q0 = 2^{view.q0_bits:.0f}, "
            f"scale 2^{view.scale_bits:.0f})",
            fontsize=9,
        )
        ax.set_xlabel("coefficient (centered mod q0)")
    axes[0].set_ylabel("coefficients")
    return fig


def plot_noise(by_scale: dict[int, list[dict]]):
    """Error and modulus left against depth, one line per scale."""
    plt = _plt()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3), layout="constrained")
    for bits, rows in by_scale.items():
        depth = [r["depth"] for r in rows]
        ax.semilogy(depth, [r["max_error"] for r in rows], "o-", label=f"scale 2^{bits}")
        ax2.plot(depth, [r["modulus_bits"] for r in rows], "s-", label=f"scale 2^{bits}")
    for a in (ax, ax2):
        a.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("multiplicative depth (products by an encrypted 1)")
    ax.set_ylabel("max decryption error")
    ax.set_title("rescaling keeps the error near 2^-scale")
    ax2.set_xlabel("multiplicative depth")
    ax2.set_ylabel("bits of modulus left")
    ax2.set_title("each product spends one prime")
    ax.legend(fontsize=8)
    return fig


def plot_sweep(rows: list[dict]):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3), layout="constrained")
    ax.semilogy([r["smudging_bits"] for r in rows], [r["max_error"] for r in rows], "o-", color="#d1495b")
    ax.set_xlabel("smudging: log2 sigma")
    ax.set_ylabel("max decryption error")
    ax.set_title("more smudging, less precision")
    return fig


@dataclass
class Record:
    """What the workshop notebook writes to workshop.json."""

    parameters: dict
    decryption: dict = field(default_factory=dict)
    too_few: dict = field(default_factory=dict)
    partial: dict = field(default_factory=dict)
    noise_by_depth: list = field(default_factory=list)
    smudging: list = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "parameters": self.parameters,
            "decryption": self.decryption,
            "too_few": self.too_few,
            "partial": self.partial,
            "noise_by_depth": self.noise_by_depth,
            "smudging": self.smudging,
            "summary": {
                "max_error": self.decryption.get("max_error"),
                "too_few_max_error": self.too_few.get("max_error"),
                "depth_max_error": self.noise_by_depth[-1]["max_error"] if self.noise_by_depth else None,
            },
        }


def describe(dec: Decryption) -> dict:
    return {
        "who": dec.who,
        "hospitals": dec.hospitals,
        "needed": dec.needed,
        "enough": dec.enough,
        "correct": dec.correct,
        "max_error": dec.max_error,
    }
