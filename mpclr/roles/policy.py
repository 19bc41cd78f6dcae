"""A hospital's policy gate: what it agreed to answer, what it has answered, and a log of both.

Every request a hospital's node receives passes through one place (`Policy`, called around the handler
in `Node.handle`), not through checks spread over the protocol handlers:

- the study manifest, agreed when the hospital joins the session (its digest is part of the session, so
  of the session fingerprint people compare): per protocol step and label prefix, how many rounds and
  ciphertexts (and declared values) the study plan needs. A request beyond it is refused with an error
  naming the step, the label and the budget. The key ceremony is in the manifest too, once.
- the ledger: what has been answered against each budget, kept in the hospital's keystore, so a
  restarted node does not start from zero.
- the audit log: one JSON line per request answered or refused (time, session, step, label, requester,
  bytes in and out, ciphertexts, decision, reason), appended with O_APPEND and fsynced record by record.
  It holds no secret: names, sizes, labels and reasons only.

An "exploration" manifest has no budget: for interactive use of an in-process Federation (workshop,
protocol tests, fed.decrypt in a notebook). A deployed hospital never accepts it.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..errors import FormatError, ProtocolError

__all__ = ["Budget", "Manifest", "Policy", "PolicyRefusal", "AuditLog", "ceremony_budgets", "merge_manifests",
           "request_size"]

CEREMONY = ("crs.commit", "crs.reveal", "crs.seed", "cpk.commit", "cpk.reveal", "keys.install", "rlk.round1",
            "rlk.check", "rlk.round2", "upk.share")
THRESHOLD_SETUP = ("shamir.deal", "shamir.receive")
KEYS_ONLY = "key ceremony only"
_LABEL_CHARS = 200  # labels come from the requester: kept short in the ledger and the log


class PolicyRefusal(ProtocolError):
    """A request beyond what the hospital agreed to (the study manifest)."""


@dataclass(frozen=True)
class Budget:
    """What one protocol step may ask of a hospital under requests whose label starts with `label`.

    rounds: requests answered; ciphertexts: their total count of ciphertexts (refresh inputs,
    decryptions, key switches, rotation keys; 0 for steps that carry none); per_round: the most in one
    request (0: no ciphertexts); values: total values the requests declare for the researcher to read
    (decryptions and key switches; 0: not counted)."""

    step: str
    label: str = ""
    rounds: int = 1
    ciphertexts: int = 0
    per_round: int = 0
    values: int = 0

    def __post_init__(self):
        for name in ("rounds", "ciphertexts", "per_round", "values"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise FormatError(f"manifest budget {self.step} {self.label!r}: {name} must be a count, got {v!r}")

    @property
    def key(self) -> str:
        return f"{self.step} {self.label}".rstrip()

    def describe(self) -> str:
        plural = "s" if self.rounds != 1 else ""
        text = f"{self.step:<15} {self.label or '(any label)':<38} {self.rounds:>5} round{plural}"
        if self.ciphertexts:
            unit = "rotation key" if self.step == "gkg.share" else "ciphertext"
            unit += "s" if self.ciphertexts != 1 else ""
            text += f", {self.ciphertexts} {unit} (at most {self.per_round} a round)"
        if self.values:
            text += f", {self.values} values"
        return text


def ceremony_budgets(threshold_setup: bool, upload_keys: bool = True) -> list[Budget]:
    """The key ceremony, once: coin toss, public key, relinearization key, the upload keys (a study whose
    plan chose share-keyed uploads, or one whose mode is not known yet), and the t-out-of-n set-up."""
    steps = tuple(s for s in CEREMONY if upload_keys or s != "upk.share") + (THRESHOLD_SETUP if threshold_setup else ())
    return [Budget(step) for step in steps]


@dataclass(frozen=True)
class Manifest:
    """The requests a hospital agrees to answer in one study (see the module docstring).

    retries: extra rounds beyond the budgets, each within the per-round size of its step's budget: a
    round is redone without a key holder that stopped answering (t-out-of-n), and the hospitals that
    answered the first attempt answer again; each of the two requesters (server, researcher) redoes at
    most n - t rounds, so a study plan allows 2 (n - t). plan: the public facts it was computed from."""

    name: str
    budgets: tuple[Budget, ...] = ()
    retries: int = 0
    plan: dict = field(default_factory=dict, compare=False)
    exploration: bool = False

    def __post_init__(self):
        object.__setattr__(self, "budgets", tuple(self.budgets))
        keys = [b.key for b in self.budgets]
        if len(set(keys)) != len(keys):
            twice = sorted({k for k in keys if keys.count(k) > 1})
            raise FormatError(f"manifest {self.name!r} lists a budget twice: {twice}")
        if self.exploration and self.budgets:
            raise FormatError("an exploration manifest has no budgets")

    @classmethod
    def exploration_only(cls) -> Manifest:
        """No budget: every request is answered (and logged). In-process use only."""
        return cls("exploration", exploration=True, plan={"use": "interactive exploration, in process only"})

    @classmethod
    def keys_only(cls, threshold_setup: bool = False, rotation_keys: list[int] | None = None) -> Manifest:
        """The key ceremony (and the rotation keys given as Galois elements per round), nothing else:
        no decryption, no refresh, no key switch, no data. A Federation's default."""
        budgets = ceremony_budgets(threshold_setup)
        if rotation_keys:
            budgets.append(Budget("gkg.share", "rotation keys", len(rotation_keys), sum(rotation_keys),
                                  max(rotation_keys)))
        return cls(KEYS_ONLY, tuple(budgets), plan={"use": "keys only: no decryption, refresh or data"})

    # --- as agreed and compared -----------------------------------------------------------------
    def to_json(self) -> dict:
        return {"name": self.name, "exploration": self.exploration, "retries": self.retries, "plan": self.plan,
                "budgets": [asdict(b) for b in self.budgets]}

    @classmethod
    def from_json(cls, d) -> Manifest:
        if not isinstance(d, dict) or not isinstance(d.get("budgets"), list):
            raise FormatError("a study manifest is a JSON object with a list of budgets")
        try:
            budgets = tuple(Budget(**b) for b in d["budgets"])
            return cls(str(d["name"]), budgets, int(d.get("retries", 0)), dict(d.get("plan") or {}),
                       bool(d.get("exploration", False)))
        except (TypeError, KeyError, ValueError) as exc:
            raise FormatError(f"study manifest: {exc}") from None

    @property
    def digest(self) -> bytes:
        canon = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(b"mpclr/manifest/v1\x00" + canon).digest()[:16]

    @property
    def fingerprint(self) -> str:
        h = self.digest.hex().upper()[:16]
        return "-".join(h[i : i + 4] for i in range(0, 16, 4))

    def table(self) -> list[str]:
        """The manifest as a hospital's IT reads it (logged at join)."""
        lines = [f"study manifest {self.name!r} ({self.fingerprint})"]
        if self.exploration:
            return lines + ["  exploration: no budget (in-process use only; a deployed hospital refuses it)"]
        lines += [f"  {b.describe()}" for b in self.budgets]
        lines.append(f"  retries: {self.retries} extra round{'s' if self.retries != 1 else ''} "
                     "(a round redone without a key holder that stopped answering)")
        return lines

    def budget_for(self, step: str, label: str) -> Budget | None:
        """The budget of `step` with the longest label prefix of `label`."""
        best = None
        for b in self.budgets:
            if b.step == step and label.startswith(b.label) and (best is None or len(b.label) > len(best.label)):
                best = b
        return best

    def with_budget(self, step: str, label: str = "", **changes) -> Manifest:
        """A copy with one budget changed (found by step and exact label)."""
        found = [b for b in self.budgets if b.step == step and b.label == label]
        if not found:
            raise KeyError(f"no budget {step} {label!r} in manifest {self.name!r}")
        return replace(self, budgets=tuple(replace(b, **changes) if b is found[0] else b for b in self.budgets))


def merge_manifests(name: str, *parts: Manifest) -> Manifest:
    """One study's manifest from its parts (a cross-validation study and the statistics run on the same
    keys): their budgets side by side. A budget (step and label) in two parts is refused, not added up,
    so each part keeps exactly its own plan's counts; the key ceremony belongs to one part only. Retries:
    the largest part's (each requester redoes at most n - t rounds in the whole session)."""
    if not parts:
        raise FormatError(f"manifest {name!r}: no parts to merge")
    owner: dict[str, str] = {}
    for m in parts:
        if not isinstance(m, Manifest) or m.exploration:
            raise FormatError(f"manifest {name!r}: only study manifests merge, got {getattr(m, 'name', m)!r}")
        for b in m.budgets:
            if b.key in owner:
                raise FormatError(f"manifest {name!r}: the parts {owner[b.key]!r} and {m.name!r} both budget "
                                  f"{b.key!r}; a budget belongs to one part (give the other part another label)")
            owner[b.key] = m.name
    return Manifest(name, tuple(b for m in parts for b in m.budgets), max(m.retries for m in parts),
                    {"parts": [{"part": m.name, **m.plan} for m in parts]})


def request_size(step: str, fields: dict) -> tuple[str, int, int]:
    """(label, ciphertexts, declared values) of a request, as the policy accounts it."""
    label = str(fields.get("label", ""))[:_LABEL_CHARS]
    if step == "refresh.share":
        n = len(fields.get("c1") or ())
    elif step in ("decrypt.share", "pcks.share"):
        n = len(fields["c1"]) if isinstance(fields.get("c1"), list) else 1
    elif step == "gkg.share":
        n = len(fields["galois_elts"]) if isinstance(fields.get("galois_elts"), list) else 1
    else:
        n = 0
    values = fields.get("values", 0)
    values = sum(int(v) for v in values) if isinstance(values, list) else int(values or 0)
    return label, n, max(values, 0)


@dataclass
class Ticket:
    """A request admitted by the policy, not yet answered."""

    step: str
    label: str
    ciphertexts: int
    values: int
    budget: Budget | None
    retry: bool = False


class AuditLog:
    """Append-only JSON lines. Each record is one os.write on a descriptor opened with O_APPEND, then
    fsynced, so a record is on disk before the reply leaves and concurrent writers never interleave.
    Without a path yet (an in-process federation not saved), records wait in memory until `attach`."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path: Path | None = None
        self._pending: list[bytes] = []
        if path is not None:
            self.attach(path)

    def attach(self, path: str | os.PathLike) -> None:
        path = Path(path)
        if self.path == path:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        pending, self._pending = self._pending, []
        for line in pending:
            self._append(line)

    def write(self, record: dict) -> None:
        line = (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode()
        if self.path is None:
            self._pending.append(line)
        else:
            self._append(line)

    def _append(self, line: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)

    def records(self) -> list[dict]:
        """Every record (from the file when there is one, else those waiting in memory)."""
        if self.path is None:
            return [json.loads(line) for line in self._pending]
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


def now_iso(t: float | None = None) -> str:
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


class Policy:
    """One hospital's gate: the manifest it agreed to, the ledger of what it answered, its audit log."""

    def __init__(self, manifest: Manifest | None = None, log: AuditLog | None = None):
        self.manifest = manifest
        self.used: dict[str, list[int]] = {}  # budget key -> [rounds, ciphertexts, values]
        self.retries_used = 0
        self.log = log or AuditLog()
        self._lock = threading.Lock()

    # --- agreement -------------------------------------------------------------------------------
    def agree(self, manifest: Manifest, joined: bool) -> None:
        if joined and manifest != self.manifest:
            raise ProtocolError("a hospital's study manifest is fixed when it joins the session")
        if not isinstance(manifest, Manifest):
            raise ProtocolError(f"a study manifest is a mpclr Manifest, got {type(manifest).__name__}")
        self.manifest = manifest

    def check_session(self, session, who: str) -> None:
        if self.manifest is None:
            raise ProtocolError(f"{who} was shown no study manifest: it joins no session without one")
        if session.manifest != self.manifest.digest:
            raise ProtocolError(f"{who}: the session names another study manifest than the one it was shown "
                                f"({self.manifest.name!r}, {self.manifest.fingerprint})")

    # --- the gate --------------------------------------------------------------------------------
    def admit(self, who: str, step: str, sender: str, fields: dict) -> Ticket:
        """The request's ticket if the manifest allows it, else PolicyRefusal naming step, label, budget."""
        label, n, values = request_size(step, fields)
        m = self.manifest
        if m is None:
            raise PolicyRefusal(f"{who} answers nothing: no study manifest agreed")
        if m.exploration:
            return Ticket(step, label, n, values, None)
        b = m.budget_for(step, label)
        if b is None:
            listed = sorted({repr(x.label) for x in m.budgets if x.step == step})
            hint = ("; in process, give the Federation a study's manifest (mpclr.manifest) or "
                    "manifest='exploration' for interactive use") if m.name == KEYS_ONLY else ""
            raise PolicyRefusal(
                f"{who} refuses {step} {label!r} from {sender}: not in the study manifest {m.name!r} "
                f"({m.fingerprint})" + (f"; its {step} budgets are {', '.join(listed)}" if listed else "") + hint
            )
        if n > b.per_round:
            raise PolicyRefusal(f"{who} refuses {step} {label!r} from {sender}: {n} ciphertexts in one request, the "
                                f"study manifest's budget {b.key!r} allows at most {b.per_round}")
        with self._lock:  # reserved now, so requests answered at the same time cannot overrun a budget
            used = self.used.setdefault(b.key, [0, 0, 0])
            over = used[0] + 1 > b.rounds or used[1] + n > b.ciphertexts or (b.values and used[2] + values > b.values)
            if not over:
                used[0], used[1], used[2] = used[0] + 1, used[1] + n, used[2] + values
                return Ticket(step, label, n, values, b)
            if self.retries_used < m.retries:
                self.retries_used += 1
                return Ticket(step, label, n, values, b, retry=True)
        raise PolicyRefusal(
            f"{who} refuses {step} {label!r} from {sender}: beyond the study manifest {m.name!r} "
            f"({m.fingerprint}): budget {b.key!r} allows {self._status(b)}"
            + (f", and the {m.retries} retry rounds are used up" if m.retries else "")
            + f"; this request: {n} ciphertexts" + (f", {values} values" if b.values else "")
        )

    def _status(self, b: Budget) -> str:
        rounds, cts, vals = self.used.get(b.key, [0, 0, 0])
        text = f"{b.rounds} round{'s' if b.rounds != 1 else ''} ({rounds} answered)"
        if b.ciphertexts:
            text += f", {b.ciphertexts} ciphertext{'s' if b.ciphertexts != 1 else ''} ({cts} answered)"
        if b.values:
            text += f", {b.values} values ({vals} answered)"
        return text

    def settle(self, ticket: Ticket | None, answered: bool) -> str:
        """Give back what a request refused by its handler had reserved; the budget's state, for the log."""
        if ticket is None or ticket.budget is None:
            return "exploration: no budget" if ticket is not None else ""
        b = ticket.budget
        if not answered:
            with self._lock:
                if ticket.retry:
                    self.retries_used -= 1
                else:
                    used = self.used[b.key]
                    used[0], used[1], used[2] = used[0] - 1, used[1] - ticket.ciphertexts, used[2] - ticket.values
        elif ticket.retry:
            return f"{b.key}: retry round {self.retries_used} of {self.manifest.retries}"
        return f"{b.key}: {self._status(b)}"

    def record(self, **entry) -> None:
        self.log.write({"time": now_iso(), **entry})

    def audit(self, node, msg, raw: bytes, reply: bytes, error: str | None, ticket: Ticket | None) -> None:
        """Settle a request answered (error None) or refused, and log it (Node._audit of a hospital). A
        message that failed verification (msg None) is logged under the sender it claims."""
        from ..wire import peek

        label, n = "", 0
        if msg is not None:
            step, requester = msg.type, msg.sender
            try:
                label, n, _ = request_size(step, msg.fields)
            except (TypeError, ValueError, KeyError):
                pass
        else:
            try:
                claimed = peek(raw)
                step, requester = claimed.type, f"{claimed.sender} (unverified)"
            except Exception:
                step, requester = "unknown", "unknown"
        note = self.settle(ticket, error is None)
        self.record(
            session=node.session.id.hex() if node.session else "", hospital=node.name, step=step, label=label,
            requester=requester, bytes_in=len(raw), bytes_out=len(reply), ciphertexts=n,
            decision="answered" if error is None else "refused", reason=error or note,
        )

    # --- persistence (the hospital's keystore) ---------------------------------------------------
    def save(self, ks) -> None:
        if self.log.path is None:  # records so far were kept in memory: from now on in the keystore folder
            self.log.attach(Path(ks.path) / "audit.jsonl")
        ks.put_json("policy", {
            "manifest": None if self.manifest is None else self.manifest.to_json(),
            "used": self.used,
            "retries_used": self.retries_used,
            "audit_log": str(self.log.path),
        })

    def load(self, ks) -> None:
        if not (Path(ks.path) / "policy.json").exists():
            raise FormatError(f"keystore {ks.path} holds no policy (study manifest and ledger)")
        state = ks.get_json("policy")
        self.manifest = None if state["manifest"] is None else Manifest.from_json(state["manifest"])
        self.used = {k: [int(x) for x in v] for k, v in state["used"].items()}
        self.retries_used = int(state["retries_used"])
        if self.log.path is None:
            self.log.attach(state.get("audit_log") or Path(ks.path) / "audit.jsonl")
