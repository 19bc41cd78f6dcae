"""What every role shares: a name, a signing identity, the session it belongs to, and a request/reply
loop over the network. A node's state never leaves it except as message bytes it chooses to send."""

from __future__ import annotations

import threading
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from ..errors import MessageError, NodeUnavailable, ProtocolError
from ..network import Network
from ..seal.context import SealContext
from ..wire import KIND_ERROR, KIND_REPLY, KIND_REQUEST, Identity, open_message, seal_message

__all__ = ["Node", "Session", "check_participants", "with_live_participants"]


@dataclass(frozen=True)
class Session:
    """Public facts of one study, known to every node: nothing secret."""

    id: bytes
    params: bytes  # fingerprint of the parameter set
    roster: Mapping[str, bytes]  # node name -> Identity.public_bytes (Ed25519 || X25519 public keys)
    key_holders: tuple[str, ...]
    threshold: int
    server: str
    researcher: str
    manifest: bytes = b""  # digest of the study manifest the hospitals agreed to (mpclr.roles.policy)

    def __post_init__(self):
        object.__setattr__(self, "roster", MappingProxyType(dict(self.roster)))

    @property
    def n(self) -> int:
        return len(self.key_holders)

    def to_json(self) -> dict:
        return {
            "id": self.id.hex(),
            "params": self.params.hex(),
            "roster": {k: bytes(v).hex() for k, v in self.roster.items()},
            "key_holders": list(self.key_holders),
            "threshold": self.threshold,
            "server": self.server,
            "researcher": self.researcher,
            "manifest": self.manifest.hex(),
        }

    @classmethod
    def from_json(cls, d: dict) -> Session:
        return cls(
            bytes.fromhex(d["id"]),
            bytes.fromhex(d["params"]),
            {k: bytes.fromhex(v) for k, v in d["roster"].items()},
            tuple(d["key_holders"]),
            int(d["threshold"]),
            d["server"],
            d["researcher"],
            bytes.fromhex(d.get("manifest", "")),
        )


Handler = Callable[[dict, str], dict]


class Node:
    role = "node"
    # replies only the requester may read: their bodies are encrypted end to end (wire: encrypted mode)
    encrypted_replies: frozenset[str] = frozenset()

    def __init__(self, name: str, ctx: SealContext, network: Network):
        if not name or len(name.encode()) > 64 or any(c.isspace() for c in name):
            raise ProtocolError(f"node name must be 1-64 bytes without spaces, got {name!r}")
        self.name = name
        self.ctx = ctx
        self.network = network
        self.identity = Identity()
        self.session: Session | None = None
        self._seq: dict[str, int] = defaultdict(int)
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()
        self._handlers: dict[str, Handler] = {}
        # seconds spent per message type answering requests, and per named local step (aggregations)
        self.handler_seconds: dict[str, float] = defaultdict(float)
        self.handler_calls: dict[str, int] = defaultdict(int)
        self.step_seconds: dict[str, float] = defaultdict(float)
        self.unavailable: set[str] = set()  # key holders that stopped answering this node
        network.register(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def rebind(self, ctx: SealContext) -> None:
        """Before joining: the same parameter set with its upload mode resolved (mpclr.upload_mode). The
        helpers built on the old context stay valid: the two share SEAL's context, primes and rings."""
        def rest(c):
            return {**c.params.to_json(), "upload": None}

        if self.session is not None or ctx.key_parms_id != self.ctx.key_parms_id or rest(ctx) != rest(self.ctx):
            raise ProtocolError(f"{self.name}: only a node that has not joined takes another upload mode")
        self.ctx = ctx

    def join(self, session: Session) -> None:
        if self.name not in session.roster:
            raise ProtocolError(f"{self.name} is not in the session roster")
        if session.params != self.ctx.fingerprint:
            raise ProtocolError(f"{self.name}: session uses another parameter set")
        self.session = session
        self._seen.clear()

    @contextmanager
    def timed(self, step: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.step_seconds[step] += time.perf_counter() - t0

    # --- persistence (the node's own keystore) ----------------------------------------------------
    def save(self, keystore) -> None:
        """Write this node's state to its own keystore (secrets to 0600 files)."""
        keystore.put_json(
            "node",
            {
                "name": self.name,
                "role": self.role,
                "session": self.session.to_json() if self.session else None,
                "seq": dict(self._seq),
                "seen": dict(self._seen),
            },
        )
        keystore.put_secret("identity", self.identity.export_private())
        self._save_role(keystore)

    def load(self, keystore) -> None:
        """Resume from this node's keystore (written by `save`): identity, session, counters, role state."""
        from ..errors import FormatError
        from ..wire import Identity

        state = keystore.get_json("node")
        if state["name"] != self.name or state["role"] != self.role:
            raise FormatError(
                f"keystore {keystore.path} belongs to {state['role']} {state['name']!r}, "
                f"not {self.role} {self.name!r}"
            )
        self.identity = Identity.from_private(keystore.get_secret("identity"))
        self.session = Session.from_json(state["session"]) if state["session"] else None
        if self.session and self.session.roster.get(self.name) != self.identity.public_bytes:
            raise FormatError(f"keystore {keystore.path}: identity does not match the session roster")
        self._seq = defaultdict(int, {k: int(v) for k, v in state["seq"].items()})
        self._seen = {k: int(v) for k, v in state["seen"].items()}
        self._load_role(keystore)

    def _save_role(self, keystore) -> None:
        pass

    def _load_role(self, keystore) -> None:
        pass

    def _require_session(self) -> Session:
        if self.session is None:
            raise ProtocolError(f"{self.name} has not joined a session")
        return self.session

    # --- outgoing -------------------------------------------------------------------------------
    def _next_seq(self, recipient: str) -> int:
        with self._lock:
            self._seq[recipient] += 1
            return self._seq[recipient]

    def _seal(self, kind: int, type_: str, recipient: str, fields: dict, encrypt: bool = False) -> bytes:
        s = self._require_session()
        return seal_message(
            self.identity,
            kind,
            type_,
            s.id,
            s.params,
            self.name,
            recipient,
            self._next_seq(recipient),
            fields,
            s.roster[recipient],
            encrypt,
        )

    def _open(self, raw: bytes):
        s = self._require_session()
        with self._lock:
            return open_message(
                raw,
                identity=self.identity,
                session=s.id,
                params=s.params,
                roster=s.roster,
                recipient=self.name,
                seen=self._seen,
            )

    def _reply_fields(self, recipient: str, type_: str, raw: bytes) -> dict:
        msg = self._open(raw)
        if msg.sender != recipient:
            raise MessageError(f"reply to {type_} came from {msg.sender}, not {recipient}")
        if msg.kind == KIND_ERROR:
            raise ProtocolError(f"{recipient} refused {type_}: {msg.fields.get('error', '?')}")
        if msg.kind != KIND_REPLY or msg.type != type_:
            raise MessageError(f"expected a reply to {type_} from {recipient}, got {msg.type}")
        return msg.fields

    def call(self, recipient: str, type_: str, **fields) -> dict:
        raw = self.network.request(recipient, self._seal(KIND_REQUEST, type_, recipient, fields))
        return self._reply_fields(recipient, type_, raw)

    def call_many(self, type_: str, requests: Mapping[str, dict]) -> dict[str, dict]:
        """The same step at several nodes at once (they compute in parallel); replies by node name."""
        names = list(requests)
        raws = self.network.request_many([(r, self._seal(KIND_REQUEST, type_, r, requests[r])) for r in names])
        dead = [r for r, raw in zip(names, raws) if isinstance(raw, NodeUnavailable)]
        if dead:
            raise NodeUnavailable(dead, f"during {type_}")
        return {r: self._reply_fields(r, type_, raw) for r, raw in zip(names, raws)}

    def call_sequence(self, steps: list[tuple[str, Mapping[str, dict]]]) -> list[dict[str, dict]]:
        """Several steps whose requests are all known now, each at its own nodes: every node gets its
        requests in the order of `steps`, in one round where the transport can (Network.request_sequences),
        and answers them one after the other, each as it would alone. Replies per step, by node name."""
        names = list(dict.fromkeys(r for _, requests in steps for r in requests))
        plan = {r: [(t, reqs[r]) for t, reqs in steps if r in reqs] for r in names}
        raws = self.network.request_sequences(
            [(r, [self._seal(KIND_REQUEST, t, r, fields) for t, fields in plan[r]]) for r in names])
        dead = [r for r, raw in zip(names, raws) if isinstance(raw, NodeUnavailable)]
        if dead:
            raise NodeUnavailable(dead, f"during {'+'.join(t for t, _ in steps)}")
        out: list[dict[str, dict]] = [{} for _ in steps]
        for r, replies in zip(names, raws):
            mine = iter(replies)  # in order: a refusal raises at its own step, before the unanswered rest
            for i, (t, reqs) in enumerate(steps):
                if r in reqs:
                    raw = next(mine, None)
                    if raw is None:
                        raise ProtocolError(f"{r} answered {len(replies)} of its {len(plan[r])} requests")
                    out[i][r] = self._reply_fields(r, t, raw)
        return out

    # --- incoming -------------------------------------------------------------------------------
    def handle(self, raw: bytes) -> bytes:
        """Answer one request. Any failure becomes a MACed error reply naming the cause. `_admit` (a
        hospital's policy gate) sees every request before its handler, `_audit` every outcome."""
        try:
            msg = self._open(raw)
        except MessageError as exc:
            reply = self._error_reply(raw, str(exc))
            self._audit(None, raw, reply, str(exc), None)
            return reply
        handler = self._handlers.get(msg.type)
        ticket, error = None, None
        if msg.kind != KIND_REQUEST:
            error = f"{msg.type} is not a request"
        elif handler is None:
            error = f"{self.role} {self.name} does not answer {msg.type}"
        else:
            try:
                ticket = self._admit(msg)
                t0 = time.perf_counter()
                fields = handler(msg.fields, msg.sender)
                self.handler_seconds[msg.type] += time.perf_counter() - t0
                self.handler_calls[msg.type] += 1
            except (ProtocolError, ValueError, KeyError, TypeError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # pragma: no cover - report, never crash the node
                error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        if error is None:
            reply = self._seal(KIND_REPLY, msg.type, msg.sender, fields, msg.type in self.encrypted_replies)
        else:
            reply = self._seal(KIND_ERROR, msg.type, msg.sender, {"error": error})
        self._audit(msg, raw, reply, error, ticket)
        return reply

    def _admit(self, msg):
        """Before a handler runs: raise to refuse the request (a hospital's policy gate overrides this)."""
        return None

    def _audit(self, msg, raw: bytes, reply: bytes, error: str | None, ticket) -> None:
        """After every request, answered (error None) or refused (a hospital's audit log overrides this)."""

    def _error_reply(self, raw: bytes, reason: str) -> bytes:
        """Reply to a message that failed verification, if we can tell who claims to have sent it."""
        from ..wire import peek

        try:
            claimed = peek(raw)
            sender, type_ = claimed.sender, claimed.type
        except MessageError:
            sender, type_ = "", "unknown"
        s = self._require_session()
        recipient = sender if sender in s.roster else s.server
        return self._seal(KIND_ERROR, type_, recipient, {"error": reason})


def check_participants(session, by, unavailable=()) -> list[str]:
    """Names of the key holders `by` (names or indices), checked against the session's threshold.
    With by=None: every key holder not known to be unavailable."""
    if by is None:
        by = [p for p in session.key_holders if p not in unavailable]
    names = []
    for b in by:
        if isinstance(b, int | np.integer) and not isinstance(b, bool):
            if not 0 <= b < session.n:
                raise ProtocolError(f"key holder index {b} out of range 0..{session.n - 1}")
            name = session.key_holders[b]
        else:
            name = str(b)
        if name not in session.key_holders:
            raise ProtocolError(f"{name!r} is not a key holder of this session")
        if name in names:
            raise ProtocolError(f"{name} is listed twice among the participants")
        names.append(name)
    missing = [p for p in session.key_holders if p not in names]
    if session.threshold == session.n and missing:
        raise ProtocolError(f"this needs all {session.n} key holders (n-out-of-n); missing: {', '.join(missing)}")
    if len(names) < session.threshold:
        down = f"; not answering: {', '.join(sorted(unavailable))}" if unavailable else ""
        raise ProtocolError(f"this needs at least {session.threshold} key holders (t-out-of-n), got {len(names)}{down}")
    return names


def with_live_participants(node, by, work):
    """Run work(names) with the key holders `by`; when by is None and some do not answer, note them as
    unavailable and run the whole round again with the others, as long as at least t remain. Each retry
    starts the round from scratch (fresh labels, Lagrange weights for the new set), so nothing
    half-done is ever combined."""
    while True:
        names = check_participants(node._require_session(), by, node.unavailable)
        try:
            return work(names)
        except NodeUnavailable as exc:
            if by is not None:
                raise
            node.unavailable.update(exc.nodes)
