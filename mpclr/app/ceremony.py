"""The workshop page's key ceremony, step by step: what each step sends (mpclr.notebooks.roles' message
table, with the bytes a real ceremony of this federation sent) and who holds what after it.

The messages and what they reveal are the README's table (mpclr.notebooks.roles.MESSAGES); what is added
here is the order of the steps for a room and, per step, the holdings of every node (hospitals, server,
researcher), so that a room sees the one fact the ceremony is for: the secret key s = s_1 + ... + s_n is
never held by anyone.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

__all__ = ["Step", "steps", "holdings", "holdings_html", "step_messages"]


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    explain: str
    messages: tuple[str, ...] = ()


def steps(threshold: bool) -> list[Step]:
    """The ceremony's steps in order; `threshold`: t < n, with the Shamir step."""
    out = [
        Step("start", "0. Before the ceremony",
             "Each hospital draws its own secret-key share s_i from its operating system's random generator. "
             "It never leaves the hospital. Nobody holds the secret key s = s_1 + ... + s_n, now or later."),
        Step("crs", "1. A common random seed",
             "Each hospital commits to a random nonce, then reveals it; the seed is a hash of all of them, so no "
             "single party chose it. Everyone expands the same public polynomial a from it.",
             ("crs.commit", "crs.reveal", "crs.seed")),
        Step("cpk", "2. The collective public key",
             "Each hospital commits to its public-key share -a·s_i + e_i, then reveals it (signed). Their sum is "
             "the public key of s: anyone can encrypt under it, nobody can decrypt alone.",
             ("cpk.commit", "cpk.reveal", "keys.install")),
    ]
    if threshold:
        out.append(Step("shamir", "2b. t-out-of-n",
                        "Each hospital splits its share s_i among the others with Shamir's scheme (sealed boxes "
                        "the server relays but cannot open): any t hospitals can now stand in for the rest.",
                        ("shamir.deal", "shamir.receive")))
    out += [
        Step("rlk", "3. The relinearization key",
             "Two more rounds of shares let the server multiply ciphertexts. Before round 2 each hospital checks "
             "the server's aggregate against the others' signed scalars.",
             ("rlk.round1", "rlk.check", "rlk.round2")),
        Step("encrypt", "4. A hospital encrypts",
             "hospital-1 encrypts its values under the collective public key and uploads the ciphertext. The "
             "server computes on it without any key share.",
             ("ct.upload",)),
        Step("decrypt", "5. Who decrypts",
             "The researcher asks key holders for partial decryptions of c1. With enough of them the values come "
             "out (plus smudging noise); with fewer, noise. Try it in the next tab.",
             ("ct.fetch", "decrypt.share")),
    ]
    return out


# (item, step key from which it is held, who holds it: "hospitals", "server", "researcher", "first", "nobody")
_ITEMS = (
    ("its own patient rows", "start", ("hospitals",)),
    ("its own secret-key share s_i", "start", ("hospitals",)),
    ("the secret key s = s_1 + ... + s_n", "start", ("nobody",)),
    ("the common seed (public)", "crs", ("hospitals", "server", "researcher")),
    ("the collective public key", "cpk", ("hospitals", "server", "researcher")),
    ("Shamir points of the others' shares", "shamir", ("hospitals",)),
    ("the relinearization key", "rlk", ("server",)),
    ("a ciphertext of hospital-1's values", "encrypt", ("server",)),
    ("hospital-1's values in the clear", "start", ("first",)),
    ("the decrypted values (with t shares)", "decrypt", ("researcher",)),
)


def holdings(step_key: str, hospitals: list[str], threshold: bool) -> list[dict]:
    """After `step_key`, per item: who holds it ({holder: "held" | "new" | ""}); "nobody" rows hold nothing."""
    order = [s.key for s in steps(threshold)]
    now = order.index(step_key)
    columns = [*hospitals, "server", "researcher"]
    rows = []
    for item, since, who in _ITEMS:
        if since not in order:  # the Shamir step of n-out-of-n
            continue
        at = order.index(since)
        held = at <= now
        mark = "new" if at == now and now > 0 else "held"
        owners = set()
        for w in who:
            owners |= set(hospitals) if w == "hospitals" else {hospitals[0]} if w == "first" else set() if \
                w == "nobody" else {w}
        row = {"item": item, "nobody": "nobody" in who}
        row.update({c: (mark if held and c in owners else "") for c in columns})
        rows.append(row)
    return rows


def holdings_html(rows: list[dict], hospitals: list[str]) -> str:
    """The holdings as a large table for a projector: a tick per holder, new ones highlighted."""
    e = html.escape
    columns = [*hospitals, "server", "researcher"]
    head = "".join(f"<th>{e(c)}</th>" for c in columns)
    out = [f"<table class='mpclr-holdings'><thead><tr><th>who holds what</th>{head}</tr></thead><tbody>"]
    for r in rows:
        if r["nobody"]:
            cells = f"<td colspan='{len(columns)}' class='mpclr-nobody'>nobody, ever</td>"
        else:
            cells = "".join(
                "<td class='mpclr-new'>✔ new</td>" if r[c] == "new" else "<td class='mpclr-held'>✔</td>" if r[c]
                else "<td></td>" for c in columns)
        out.append(f"<tr><th>{e(r['item'])}</th>{cells}</tr>")
    return "".join(out) + "</tbody></table>"


def step_messages(step: Step, traffic: dict | None = None) -> list[dict]:
    """The step's messages from the README's table, with what this federation sent of each (traffic: its
    fed.traffic())."""
    from ..notebooks.roles import MESSAGES

    known = {m.type: m for m in MESSAGES}
    rows = []
    for kind in step.messages:
        m = known[kind]
        sent = (traffic or {}).get("by_type", {}).get(kind)
        rows.append({
            "message": kind,
            "request": f"{m.request[0]} → {m.request[1]}: {m.request[2]}",
            "reply": f"{m.reply[0]} → {m.reply[1]}: {m.reply[2]}",
            "reveals": m.reveals,
            "sent here": "" if sent is None else f"{sent['messages']} messages, {sent['bytes'] / 1e3:,.0f} kB",
        })
    return rows
