"""`FlowerNetwork`: the one network interface (mpclr.network.Network) over a Flower Grid.

It lives in the ServerApp process, where the server and the researcher run. Requests to them are
handled in process; requests to a hospital become Flower messages to that hospital's SuperNode. The
protocol bytes are carried unchanged (they are already authenticated envelopes); Flower adds TLS between
SuperNode and SuperLink and authenticates the SuperNodes.

One `request_many` is one Flower round: every message is pushed at once, replies are pulled until all
have arrived (matched by `reply_to_message_id`, never by order), a deadline passes, or a node is
reported dead. A hospital that does not answer in time, answers with a Flower error (its ClientApp raised,
its SuperNode stopped sending heartbeats) or is already known dead becomes a `NodeUnavailable` naming the
hospital: the core then redoes a threshold round without it while at least t key holders remain.

Flower's own `Grid.send_and_receive` sleeps 3 s between polls; this transport polls the SuperLink with
a short, growing interval instead (`poll`, doubling up to `max_poll`), which is most of the per-round
saving on the server side.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..errors import NodeUnavailable, ProtocolError
from ..network import Network, check_distinct
from .tuning import pull_replies

__all__ = ["FlowerNetwork", "encode_request", "decode_request", "encode_reply", "decode_reply", "pack_parts",
           "unpack_parts", "RoundLog"]

_DEBUG = bool(os.environ.get("MPCLR_DEPLOY_DEBUG"))
MESSAGE_TYPE = "query"


# --- the Flower message content -------------------------------------------------------------------
# One frame of bytes per message: a 4-byte length, a small JSON header (kind and session of a request;
# error, seconds and cached of a reply), then the mpclr bytes. Every object of a Flower message is one
# HTTP request to the SuperLink for its sender and one for its reader (plus their TLS and node
# signatures), so the content is as few objects as it can be: a frame up to SMALL_FRAME bytes is one
# bytes value in a ConfigRecord (Message, RecordDict, ConfigRecord: 3 objects, not 6); a larger one is
# an ArrayRecord, which Flower hashes and moves in chunks, several at a time (a large bytes value inside
# a ConfigRecord goes through protobuf whole: ~8x slower), without a ConfigRecord beside it (5 objects).
RECORD = "mpclr"
BODY = "mpclr-body"
SMALL_FRAME = 64 << 10


def _frame(header: dict, body: bytes):
    import json as _json

    from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

    head = _json.dumps(header, separators=(",", ":")).encode()
    frame = len(head).to_bytes(4, "big") + head + bytes(body)
    if len(frame) <= SMALL_FRAME:
        return RecordDict({RECORD: ConfigRecord({"frame": frame})})
    array = Array(dtype="uint8", shape=(len(frame),), stype="bytes", data=frame)
    return RecordDict({BODY: ArrayRecord({"body": array})})


def _unframe(content) -> tuple[dict, bytes]:
    import json as _json

    frame = bytes(content[BODY]["body"].data) if BODY in content else bytes(content[RECORD]["frame"])
    size = int.from_bytes(frame[:4], "big")
    if len(frame) < 4 + size:
        raise ProtocolError("a Flower message's frame is shorter than its header says")
    return _json.loads(frame[4 : 4 + size]), frame[4 + size :]


def encode_request(kind: str, body: bytes, session: str = ""):
    return _frame({"kind": kind, "session": session}, body)


def decode_request(content) -> tuple[str, str, bytes]:
    head, body = _unframe(content)
    return str(head["kind"]), str(head["session"]), body


def encode_reply(body: bytes = b"", *, error: str = "", seconds: float = 0.0, cached: bool = False):
    return _frame({"error": error, "seconds": float(seconds), "cached": bool(cached)}, body)


def decode_reply(content) -> tuple[bytes, str, float, bool]:
    head, body = _unframe(content)
    return body, str(head["error"]), float(head["seconds"]), bool(head["cached"])


def pack_parts(parts) -> bytes:
    """Several messages as one body (a "sequence" request or its reply): each with its 8-byte length."""
    return b"".join(len(p).to_bytes(8, "big") + bytes(p) for p in parts)


def unpack_parts(body: bytes) -> list[bytes]:
    out, i = [], 0
    while i < len(body):
        if i + 8 > len(body) or i + 8 + int.from_bytes(body[i : i + 8], "big") > len(body):
            raise ProtocolError("a sequence of messages is cut short")
        size = int.from_bytes(body[i : i + 8], "big")
        out.append(body[i + 8 : i + 8 + size])
        i += 8 + size
    return out


@dataclass
class RoundLog:
    """What one Flower round cost: wall time, the slowest hospital's own handling time, bytes."""

    step: str
    hospitals: int
    seconds: float
    hospital_seconds: float
    bytes_out: int
    bytes_in: int

    @property
    def overhead(self) -> float:
        return max(0.0, self.seconds - self.hospital_seconds)


@dataclass
class _Stats:
    rounds: list = field(default_factory=list)
    bootstrap_bytes: dict = field(default_factory=lambda: defaultdict(int))
    retries: int = 0


class HospitalError(ProtocolError):
    """A hospital answered a bootstrap step with an error (its configuration, data or keystore)."""


class FlowerNetwork(Network):
    """Deliver envelopes to local nodes directly and to hospitals through a Flower Grid.

    Parameters
    ----------
    grid : the ServerApp's Grid
    hospitals : hospital name -> Flower node id (learned at bootstrap, see mpclr.deploy.server_app)
    timeout : seconds a hospital may take to answer one request before it counts as unavailable
    poll, max_poll : the reply polling interval starts at `poll` and doubles up to `max_poll`
    retries : how often a request that got an error reply from Flower (not from mpclr) is sent again,
        the same bytes, before the hospital counts as unavailable; hospitals answer a repeated request with
        their cached reply, so a retry never does a step twice
    """

    coalesce_rounds = True  # a round costs about 0.4 s here, however little it carries

    def __init__(self, grid, hospitals: dict[str, int] | None = None, *, timeout: float = 600.0, poll: float = 0.005,
                 max_poll: float = 0.05, retries: int = 1, log=None):
        super().__init__()
        self.grid = grid
        self.hospitals: dict[str, int] = dict(hospitals or {})
        self.timeout = float(timeout)
        self.poll = float(poll)
        self.max_poll = float(max_poll)
        self.retries = int(retries)
        self.session_hex = ""
        self.dead: dict[str, str] = {}  # hospital -> why it stopped counting
        self.stats = _Stats()
        self._local: dict[str, object] = {}
        self._lock = threading.Lock()
        self._log = log or (lambda text: None)
        # pulls the replies of one round side by side (tuning.pull_replies); threads end with the process
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="mpclr-pull")

    # --- Network interface ----------------------------------------------------------------------
    def register(self, node) -> None:
        if node.name in self._local or node.name in self.hospitals:
            raise ProtocolError(f"a node named {node.name!r} is already on this network")
        self._local[node.name] = node

    def _deliver(self, recipient: str, message: bytes) -> bytes:
        if recipient in self._local:
            return self._local[recipient].handle(message)
        reply = self._remote([(recipient, message)], step=_step_of(message))[0]
        if isinstance(reply, NodeUnavailable):
            raise reply
        return reply

    def request_many(self, requests):
        check_distinct(requests, "request_many")
        out: list = [None] * len(requests)
        remote = []
        for i, (r, m) in enumerate(requests):
            self.traffic.record(m)
            if r in self._local:
                out[i] = self._local[r].handle(m)
                self.traffic.record(out[i])
            else:
                remote.append(i)
        if remote:
            step = _step_of(requests[remote[0]][1])
            replies = self._remote([requests[i] for i in remote], step=step)
            for i, reply in zip(remote, replies):
                out[i] = reply
                if not isinstance(reply, NodeUnavailable):
                    self.traffic.record(reply)
        return out

    def request_sequences(self, requests):
        """Each hospital's requests in one Flower round (a "sequence" message: the hospital answers them one after
        the other, each as it would alone); local nodes' one by one."""
        check_distinct(requests, "request_sequences")
        out: list = [None] * len(requests)
        remote = []
        for i, (r, msgs) in enumerate(requests):
            if r in self._local:
                out[i] = self._try_sequence(r, msgs)
            else:
                for m in msgs:
                    self.traffic.record(m)
                remote.append(i)
        if remote:
            step = "+".join(dict.fromkeys(_step_of(m) for i in remote for m in requests[i][1]))
            replies = self._remote([(requests[i][0], pack_parts(requests[i][1])) for i in remote], step=step,
                                   kind="sequence")
            for i, reply in zip(remote, replies):
                if isinstance(reply, NodeUnavailable):
                    out[i] = reply
                    continue
                try:
                    parts = unpack_parts(reply)
                except ProtocolError as exc:
                    out[i] = self._mark_dead(requests[i][0], f"{exc} during {step}")
                    continue
                for part in parts:
                    self.traffic.record(part)
                out[i] = parts
        return out

    def request(self, recipient: str, message: bytes) -> bytes:
        if recipient in self._local:
            return super().request(recipient, message)
        self.traffic.record(message)
        reply = self._deliver(recipient, message)
        self.traffic.record(reply)
        return reply

    # --- bootstrap messages (outside the envelope format) ---------------------------------------
    def probe(self, node_ids, body: bytes, timeout: float) -> dict:
        """`hello` to Flower nodes not yet known by name: node id -> reply body, HospitalError or
        NodeUnavailable. Nothing is marked dead: a node that is still starting may answer later."""
        labels = {f"node {nid}": int(nid) for nid in node_ids}
        saved, saved_dead = dict(self.hospitals), dict(self.dead)
        self.hospitals.update(labels)
        try:
            replies = self._remote([(label, body) for label in labels], step="hello", kind="hello", timeout=timeout)
        finally:
            self.hospitals, self.dead = saved, saved_dead
        return {labels[label]: rep for label, rep in zip(labels, replies)}

    def bootstrap(self, kind: str, bodies: dict[str, bytes], timeout: float | None = None) -> dict:
        """One round of a bootstrap step to the named hospitals: hospital -> reply body, HospitalError or
        NodeUnavailable."""
        names = list(bodies)
        for n in names:
            self.stats.bootstrap_bytes[n] += len(bodies[n])
        replies = self._remote([(n, bodies[n]) for n in names], step=kind, kind=kind, timeout=timeout)
        out = {}
        for n, rep in zip(names, replies):
            if isinstance(rep, bytes | bytearray):
                self.stats.bootstrap_bytes[n] += len(rep)
            out[n] = rep
        return out

    # --- one Flower round -----------------------------------------------------------------------
    def _remote(self, requests, *, step: str, kind: str = "protocol", timeout: float | None = None):
        from flwr.app import Message

        timeout = self.timeout if timeout is None else float(timeout)
        result: dict[str, bytes | NodeUnavailable] = {}
        pending: dict[str, tuple[str, bytes]] = {}  # message id -> (hospital, request bytes)
        attempts: dict[str, int] = defaultdict(int)
        hospital_seconds = 0.0
        t0 = time.perf_counter()

        def push(batch):
            msgs = []
            for hospital, body in batch:
                msgs.append(
                    Message(
                        encode_request(kind, body, self.session_hex),
                        dst_node_id=self.hospitals[hospital],
                        message_type=MESSAGE_TYPE,
                        group_id=step,
                        ttl=timeout + 60.0,
                    )
                )
            with self._lock:
                ids = list(self.grid.push_messages(msgs))
            for (hospital, body), mid in zip(batch, ids):
                if not mid:
                    result[hospital] = NodeUnavailable([hospital], f"the SuperLink did not accept the {step} message")
                else:
                    pending[mid] = (hospital, body)
                    attempts[hospital] += 1

        first = []
        for hospital, body in requests:
            if hospital not in self.hospitals:
                raise ProtocolError(f"no hospital named {hospital!r} in this deployment "
                                    f"(known: {sorted(self.hospitals)})")
            if hospital in self.dead:
                result[hospital] = NodeUnavailable([hospital], f"not answering since earlier ({self.dead[hospital]})")
            else:
                first.append((hospital, body))
        if first:
            push(first)
            if _DEBUG:
                self._log(f"t={time.time():.3f} pushed {step}")
        deadline = time.monotonic() + timeout
        wait = self.poll
        while pending:
            with self._lock:
                got = pull_replies(self.grid, list(pending), self._pool)
            resend = []
            for msg in got:
                mid = msg.metadata.reply_to_message_id
                if mid not in pending:
                    continue  # a late reply to a request already given up on, or a duplicate
                hospital, body = pending.pop(mid)
                if msg.has_error():
                    err = msg.error
                    reason = f"Flower error {err.code}: {err.reason}"
                    if attempts[hospital] <= self.retries and not _is_node_down(err.code):
                        self.stats.retries += 1
                        self._log(f"{hospital}: {step} failed ({reason}); sending the same request again")
                        resend.append((hospital, body))
                        continue
                    result[hospital] = self._mark_dead(hospital, f"{reason} during {step}")
                    continue
                reply, error, seconds, _cached = decode_reply(msg.content)
                hospital_seconds = max(hospital_seconds, seconds)
                if error:
                    if kind in ("protocol", "sequence"):
                        result[hospital] = self._mark_dead(hospital, f"hospital error during {step}: {error}")
                    else:
                        result[hospital] = HospitalError(f"{hospital}: {error}")
                    continue
                result[hospital] = reply
            if resend:
                push(resend)
            if _DEBUG and got:
                self._log(f"t={time.time():.3f} pulled {len(got)} replies to {step}")
            if not pending:
                break
            if time.monotonic() > deadline:
                for hospital, _ in pending.values():
                    result[hospital] = self._mark_dead(hospital, f"no reply to {step} within {timeout:.0f} s")
                pending.clear()
                break
            time.sleep(wait)
            wait = min(self.max_poll, wait * 2)
        elapsed = time.perf_counter() - t0
        self.stats.rounds.append(
            RoundLog(step, len(requests), elapsed, hospital_seconds, sum(len(b) for _, b in requests),
                     sum(len(v) for v in result.values() if isinstance(v, bytes | bytearray)))
        )
        return [result[hospital] for hospital, _ in requests]

    def _mark_dead(self, hospital: str, why: str) -> NodeUnavailable:
        if hospital not in self.dead:
            self.dead[hospital] = why
            self._log(f"{hospital} counts as unavailable from now on: {why}")
        return NodeUnavailable([hospital], why)

    # --- reporting ------------------------------------------------------------------------------
    def round_summary(self) -> dict:
        rounds = self.stats.rounds
        if not rounds:
            return {"rounds": 0}
        over = sorted(r.overhead for r in rounds)
        return {
            "rounds": len(rounds),
            "seconds_in_rounds": sum(r.seconds for r in rounds),
            "hospital_seconds": sum(r.hospital_seconds for r in rounds),
            "overhead_total": sum(over),
            "overhead_median": over[len(over) // 2],
            "overhead_mean": sum(over) / len(over),
            "overhead_max": over[-1],
            "retries": self.stats.retries,
            "by_step": _by_step(rounds),
            # every round in order: step, seconds, the slowest hospital's own seconds, bytes out, bytes in
            "log": [[r.step, round(r.seconds, 4), round(r.hospital_seconds, 4), r.bytes_out, r.bytes_in]
                    for r in rounds],
        }

    def bytes_per_hospital(self) -> dict:
        out = {}
        for hospital in self.hospitals:
            sent = sum(v["bytes"] for (s, r), v in self.traffic.by_link.items() if s == hospital)
            received = sum(v["bytes"] for (s, r), v in self.traffic.by_link.items() if r == hospital)
            out[hospital] = {"sent": sent, "received": received,
                             "bootstrap": self.stats.bootstrap_bytes.get(hospital, 0)}
        return out


def _by_step(rounds) -> dict:
    out: dict = {}
    for r in rounds:
        s = out.setdefault(r.step, {"rounds": 0, "seconds": 0.0, "overhead": 0.0, "bytes_out": 0, "bytes_in": 0})
        s["rounds"] += 1
        s["seconds"] += r.seconds
        s["overhead"] += r.overhead
        s["bytes_out"] += r.bytes_out
        s["bytes_in"] += r.bytes_in
    return out


def _is_node_down(code: int) -> bool:
    from flwr.common.constant import ErrorCode

    return code in (ErrorCode.NODE_UNAVAILABLE, ErrorCode.MESSAGE_UNAVAILABLE)


def _step_of(message: bytes) -> str:
    from ..wire import peek

    try:
        return peek(message).type
    except Exception:  # noqa: BLE001 - only a label for the round log
        return "unknown"
