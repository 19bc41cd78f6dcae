"""Who holds what and what each message reveals to whom: the README's threat-model table as data.

The notebooks print these tables instead of copying them, and tests/notebooks checks them against the
README's table and against the message types a federation actually sends, so they cannot drift apart.
What each role receives is derived from the message table, not written twice.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MessageKind", "MESSAGES", "ROLES", "message_rows", "roles_rows", "markdown_table", "describe_traffic"]

HOSPITAL, SERVER, RESEARCHER = "hospital", "server", "researcher"


@dataclass(frozen=True)
class MessageKind:
    type: str
    step: str
    request: tuple[str, str, str]  # from role, to role, what it carries
    reply: tuple[str, str, str]
    reveals: str


MESSAGES: tuple[MessageKind, ...] = (
    MessageKind(
        "crs.commit",
        "1. CRS",
        (SERVER, HOSPITAL, "nothing"),
        (HOSPITAL, SERVER, "a hash commitment to a fresh random nonce"),
        "nothing: the nonce stays hidden until every hospital has committed",
    ),
    MessageKind(
        "crs.reveal",
        "1. CRS",
        (SERVER, HOSPITAL, "every hospital's commitment"),
        (HOSPITAL, SERVER, "its nonce"),
        "random nonces",
    ),
    MessageKind(
        "crs.seed",
        "1. CRS",
        (SERVER, HOSPITAL, "every hospital's nonce"),
        (HOSPITAL, SERVER, "a hash of the seed it derived and its signature on the seed"),
        "the CRS seed, which is public: every party expands the same public polynomials from it; the "
        "signatures let every node check that all hospitals derived the same one",
    ),
    MessageKind(
        "cpk.commit",
        "2. public key",
        (SERVER, HOSPITAL, "nothing"),
        (HOSPITAL, SERVER, "a commitment to its public-key share"),
        "nothing: committing first stops a party choosing its share after seeing the others'",
    ),
    MessageKind(
        "cpk.reveal",
        "2. public key",
        (SERVER, HOSPITAL, "every hospital's commitment"),
        (HOSPITAL, SERVER, "its public-key share -a*s_i + e_i, signed"),
        "an RLWE sample: nothing about the key share s_i; the signature lets every node check it is the "
        "hospital's own",
    ),
    MessageKind(
        "rlk.round1",
        "3. relinearization key",
        (SERVER, HOSPITAL, "nothing"),
        (HOSPITAL, SERVER, "RLWE samples under s_i and an ephemeral u_i"),
        "RLWE samples only; their aggregate is public key material",
    ),
    MessageKind(
        "rlk.check",
        "3. relinearization key",
        (SERVER, HOSPITAL, "the digest of the round-1 aggregate it will send"),
        (HOSPITAL, SERVER, "a few inner products of its round-1 share with a public challenge derived from that "
         "digest, signed"),
        "a few linear functions of an RLWE sample the server holds whole: nothing new; to the other hospitals "
        "(in round 2) a few scalars of it, not the share",
    ),
    MessageKind(
        "rlk.round2",
        "3. relinearization key",
        (SERVER, HOSPITAL, "the round-1 aggregate with every hospital's signed check scalars (each hospital "
         "answers only if the aggregate's inner products are their sums)"),
        (HOSPITAL, SERVER, "RLWE samples under s_i and u_i"),
        "RLWE samples only; their aggregate is the public relinearization key",
    ),
    MessageKind(
        "gkg.share",
        "4. rotation keys",
        (SERVER, HOSPITAL, "a Galois element (a rotation step)"),
        (HOSPITAL, SERVER, "RLWE samples under s_i"),
        "RLWE samples only",
    ),
    MessageKind(
        "upk.share",
        "3. upload keys",
        (SERVER, HOSPITAL, "the key holders whose upload keys to make"),
        (HOSPITAL, SERVER, "RLWE samples under s_i (its own key's also carries its upload secret z_i g)"),
        "RLWE samples only; each aggregate, a hospital's upload key, is an encryption of z_i g under s that only "
        "a coalition able to decrypt everything can open",
    ),
    MessageKind(
        "keys.install",
        "2. public key",
        (SERVER, f"{HOSPITAL}, {RESEARCHER}", "the collective public key, every signed public-key share, the "
         "CRS seed with every hospital's signature"),
        (f"{HOSPITAL}, {RESEARCHER}", SERVER, "an acknowledgement, sent only if the key is the sum of the shares "
         "with the CRS's polynomial"),
        "the collective public key and its shares (public RLWE samples)",
    ),
    MessageKind(
        "ct.upload",
        "5. encrypt",
        (HOSPITAL, SERVER, "a ciphertext under the collective key"),
        (SERVER, HOSPITAL, "a handle: id, level, scale"),
        "nothing about the data: the ciphertext is IND-CPA under the collective key",
    ),
    MessageKind(
        "ct.fetch",
        "7. decrypt",
        (RESEARCHER, SERVER, "the handle of a result to decrypt or switch to the researcher's key"),
        (SERVER, RESEARCHER, "that ciphertext, switched down to the last prime"),
        "a ciphertext; the researcher cannot decrypt it alone",
    ),
    MessageKind(
        "decrypt.share",
        "7. decrypt",
        (RESEARCHER, HOSPITAL, "c1, the random half of the ciphertext (checked: uniform, never answered before)"),
        (HOSPITAL, RESEARCHER, "its partial decryption s_i*c1 + e_i, smudged with sigma = 2^smudging_bits, "
         "encrypted for the researcher"),
        "with all needed shares: the result plus noise, to the researcher only (the relay sees ciphertext); "
        "c1 alone is uniform, and the smudging hides the ciphertext noise (a function of the key)",
    ),
    MessageKind(
        "shamir.deal",
        "2b. t-out-of-n",
        (SERVER, HOSPITAL, "nothing"),
        (HOSPITAL, SERVER, "Shamir shares f_i(x_k) of its key share, each in a sealed box only hospital k opens"),
        "nothing to the server (it relays opaque boxes); to hospital k one point of a random polynomial",
    ),
    MessageKind(
        "shamir.receive",
        "2b. t-out-of-n",
        (SERVER, HOSPITAL, "the sealed boxes addressed to it"),
        (HOSPITAL, SERVER, "an acknowledgement"),
        "nothing: fewer than t points of each polynomial are independent of the share",
    ),
    MessageKind(
        "refresh.share",
        "6. refresh",
        (SERVER, HOSPITAL, "c1 of each input ciphertext (checked as for decrypt.share), the public coefficients "
         "of each output"),
        (HOSPITAL, SERVER, "per input s_i*c1 + e - M_i (masked), per output -s_i*a' + r*M_i + e"),
        "to the server: values masked by random masks 2^64 times larger (statistical distance 2^-64 per "
        "coefficient); the smudging e hides the input's noise in the output; the outputs are fresh ciphertexts",
    ),
    MessageKind(
        "researcher.key",
        "7. results",
        (RESEARCHER, HOSPITAL, "the researcher's own public key"),
        (HOSPITAL, RESEARCHER, "the hash of the key it registered"),
        "a public key",
    ),
    MessageKind(
        "pcks.share",
        "7. results",
        (RESEARCHER, HOSPITAL, "c1 (checked as for decrypt.share) and the hash of the registered researcher key"),
        (HOSPITAL, RESEARCHER, "s_i*c1 + u_i*p0' + e (smudged), u_i*p1' + e, encrypted for the researcher"),
        "to the researcher, with all needed shares, the result under its own key; to the relay nothing",
    ),
    MessageKind(
        "folds",
        "5. data (deployment bootstrap, before join)",
        (SERVER, HOSPITAL, "the number of folds, the session about to be joined and the hospital's row offset"),
        (HOSPITAL, SERVER, "its rows per fold, dealt with its secret fold key"),
        "what lr.folds reveals later anyway; the study manifest then shows every hospital the pooled rows per "
        "fold, which lr.encrypt sends every hospital anyway",
    ),
    MessageKind(
        "lr.folds",
        "5. data",
        (SERVER, HOSPITAL, "the number of folds"),
        (HOSPITAL, SERVER, "its global row numbers and their fold ids (stratified by its labels, secret randomness)"),
        "row counts per hospital and fold; of the labels, only each fold's class mix, the hospital's own to "
        "within one row per class",
    ),
    MessageKind(
        "lr.aggregate",
        "5. data",
        (SERVER, HOSPITAL, "nothing"),
        (HOSPITAL, SERVER, "[rows, per-feature sums, cross-products] of its rows, encrypted"),
        "nothing: only the sum over hospitals is decrypted (pooled count, means, correlation matrix)",
    ),
    MessageKind(
        "lr.encrypt_eval",
        "7. evaluation",
        (SERVER, HOSPITAL, "the public evaluation layout and the pooled scaling"),
        (HOSPITAL, SERVER, "its rows again, standardized, densely in the evaluation layout, encrypted"),
        "nothing about the rows: ciphertexts under the collective key",
    ),
    MessageKind(
        "lr.encrypt",
        "5. data",
        (SERVER, HOSPITAL, "the public layout, the pooled means and standard deviations, pooled fold sizes"),
        (HOSPITAL, SERVER, "its rows z = y'[1, x] / R and its share of the gradient's constant term, encrypted"),
        "to the server nothing about the rows (ciphertexts); to each hospital the pooled scaling and fold sizes: "
        "with two hospitals the other's row count, sums and sums of squares",
    ),
    MessageKind(
        "stats.settings",
        "statistics",
        (SERVER, HOSPITAL, "nothing"),
        (HOSPITAL, SERVER, "its disclosure settings (glm_max_fraction, min_cell) and its columns' names"),
        "public settings and column names, as DataSHIELD's are",
    ),
    MessageKind(
        "glm.step",
        "statistics",
        (SERVER, HOSPITAL, "the model and the public coefficients of the round, with power-of-two scales"),
        (HOSPITAL, SERVER, "its packed X^T W X, score, deviance and outcome sums, encrypted"),
        "to each hospital the coefficients of every round (with two hospitals: the other's score at the "
        "solution); to the server ciphertexts; only the sum over hospitals is decrypted",
    ),
    MessageKind(
        "table.counts",
        "statistics",
        (SERVER, HOSPITAL, "a Table 1's structure: variables, every level, split, min_cell"),
        (HOSPITAL, SERVER, "its counts (also clipped at min_cell) and sums, encrypted"),
        "to the server ciphertexts; small cells are found under encryption, so the researcher never decrypts "
        "a small count",
    ),
)

ROLES: dict[str, dict[str, str]] = {
    HOSPITAL: {
        "holds": "its patient rows; its secret-key share s_i and the key of its fold assignment (made from the OS "
        "CSPRNG, never sent); a signing key",
        "learns": "the public keys, the CRS seed, the pooled means, standard deviations and fold sizes (with two "
        "hospitals: the other's sums and sums of squares); never another hospital's rows, share or a result",
    },
    SERVER: {
        "holds": "the collective public, relinearization and rotation keys; every ciphertext",
        "learns": "sizes and shapes of the encrypted data, fold ids, the pooled scaling it hands on; never a key "
        "share, a decryption or key-switch share, or a result",
    },
    RESEARCHER: {
        "holds": "the results it was allowed to decrypt (an audit trail of what and by whom)",
        "learns": "only what enough key holders agreed to decrypt, plus noise; with too few shares: random values",
    },
}


def _receives(role: str) -> list[str]:
    got = []
    for m in MESSAGES:
        for sender, recipients, content in (m.request, m.reply):
            if role in [r.strip() for r in recipients.split(",")] and content != "nothing":
                got.append(f"{m.type}: {content} (from the {sender})")
    return got


def message_rows() -> list[dict[str, str]]:
    """One row per message type: step, request, reply, what it reveals."""
    return [
        {
            "message": m.type,
            "step": m.step,
            "request": f"{m.request[0]} → {m.request[1]}: {m.request[2]}",
            "reply": f"{m.reply[0]} → {m.reply[1]}: {m.reply[2]}",
            "reveals": m.reveals,
        }
        for m in MESSAGES
    ]


def roles_rows(hospital_names: list[str] | None = None, needed: int | None = None) -> list[dict[str, str]]:
    """One row per role: who, what it holds, what it receives (from the message table), what it learns."""
    who = {
        HOSPITAL: ", ".join(hospital_names) if hospital_names else "each data provider",
        SERVER: "server",
        RESEARCHER: "researcher",
    }
    rows = []
    for role, facts in ROLES.items():
        learns = facts["learns"]
        if role == RESEARCHER and hospital_names and needed is not None:
            learns += f" (here: {needed} of {len(hospital_names)} key holders must cooperate)"
        rows.append(
            {
                "role": role,
                "who": who[role],
                "holds": facts["holds"],
                "receives": "; ".join(_receives(role)),
                "learns": learns,
            }
        )
    return rows


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    columns = columns or list(rows[0])
    esc = [[str(r.get(c, "")).replace("|", "\\|").replace("\n", " ") for c in columns] for r in rows]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(r) + " |" for r in esc]
    return "\n".join(lines)


def describe_traffic(traffic: dict) -> list[dict]:
    """fed.traffic()'s per-type counts joined with what each message type reveals."""
    known = {m.type: m for m in MESSAGES}
    rows = []
    for kind, v in traffic["by_type"].items():
        m = known.get(kind)
        rows.append(
            {
                "message": kind,
                "messages": v["messages"],
                "bytes": v["bytes"],
                "reveals": m.reveals if m else "(not described in mpclr.notebooks.roles yet)",
            }
        )
    return rows
