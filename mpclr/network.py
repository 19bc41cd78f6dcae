"""The one network interface every protocol message goes through.

A `Network` delivers request bytes from one node to another and returns the reply bytes. Protocol code
never calls a node directly, so a real multi-hospital transport (Flower) replaces `InProcessNetwork`
without touching the protocols. Every transport records traffic the same way: bytes and counts per
message type and per link.
"""

from __future__ import annotations

import os
import threading
import time
from abc import ABC, abstractmethod
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from .errors import NodeUnavailable, ProtocolError
from .wire import KIND_ERROR, peek

__all__ = ["Network", "InProcessNetwork", "TrafficLog", "refused", "check_distinct"]


def check_distinct(requests: list[tuple[str, object]], what: str) -> None:
    """One outstanding request per link: a transport may answer a recipient's requests in any order."""
    recipients = [r for r, _ in requests]
    if len(set(recipients)) != len(recipients):
        raise ProtocolError(f"{what} needs distinct recipients (one outstanding request per link)")


def refused(reply: bytes) -> bool:
    """Whether a reply is an error reply (a refusal): the requests after it in a sequence go unanswered."""
    try:
        return peek(reply).kind == KIND_ERROR
    except Exception:  # noqa: BLE001 - not a message at all: the requester's check names it
        return True


class TrafficLog:
    """Bytes and message counts per message type, per (sender, recipient) link, per sender and per recipient."""

    def __init__(self):
        self._lock = threading.Lock()
        self.by_type: dict[str, dict[str, int]] = defaultdict(lambda: {"messages": 0, "bytes": 0})
        self.by_link: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: {"messages": 0, "bytes": 0})
        self.by_sender: dict[str, dict[str, int]] = defaultdict(lambda: {"messages": 0, "bytes": 0})
        self.by_recipient: dict[str, dict[str, int]] = defaultdict(lambda: {"messages": 0, "bytes": 0})

    def record(self, raw: bytes) -> None:
        msg = peek(raw)
        with self._lock:
            for bucket in (
                self.by_type[msg.type],
                self.by_link[(msg.sender, msg.recipient)],
                self.by_sender[msg.sender],
                self.by_recipient[msg.recipient],
            ):
                bucket["messages"] += 1
                bucket["bytes"] += len(raw)

    def total_bytes(self) -> int:
        return sum(v["bytes"] for v in self.by_type.values())

    def summary(self) -> dict:
        return {
            "total_bytes": self.total_bytes(),
            "by_type": {k: dict(v) for k, v in sorted(self.by_type.items())},
            "by_sender": {k: dict(v) for k, v in sorted(self.by_sender.items())},
            "by_recipient": {k: dict(v) for k, v in sorted(self.by_recipient.items())},
        }

    def since(self, earlier: dict) -> dict:
        """The traffic recorded after an earlier `summary()`, in the same shape."""
        now = self.summary()
        out = {"by_type": {}, "by_sender": {}, "by_recipient": {}}
        for part in ("by_type", "by_sender", "by_recipient"):
            for k, v in now[part].items():
                before = earlier.get(part, {}).get(k, {"messages": 0, "bytes": 0})
                d = {"messages": v["messages"] - before["messages"], "bytes": v["bytes"] - before["bytes"]}
                if d["messages"]:
                    out[part][k] = d
        out["total_bytes"] = now["total_bytes"] - earlier["total_bytes"]
        return out

    def reset(self) -> None:
        with self._lock:
            self.by_type.clear()
            self.by_link.clear()
            self.by_sender.clear()
            self.by_recipient.clear()


class Network(ABC):
    """Request/reply delivery between named nodes.

    `coalesce_rounds` is True for a transport whose rounds cost a fixed time however little they carry
    (a remote one): callers that have several independent requests to make (the server's worker
    processes asking for refreshes) then hold them and make one round of them."""

    coalesce_rounds = False

    def __init__(self):
        self.traffic = TrafficLog()

    @abstractmethod
    def register(self, node) -> None:
        """Make `node` reachable under node.name."""

    @abstractmethod
    def _deliver(self, recipient: str, message: bytes) -> bytes:
        """Hand request bytes to `recipient` and return its reply bytes."""

    def request(self, recipient: str, message: bytes) -> bytes:
        self.traffic.record(message)
        reply = self._deliver(recipient, message)
        self.traffic.record(reply)
        return reply

    def request_many(self, requests: list[tuple[str, bytes]]) -> list[bytes | NodeUnavailable]:
        """Send several requests (to distinct recipients); replies in the same order, or a NodeUnavailable
        in place of the reply of a node that did not answer (the others' replies are kept)."""
        check_distinct(requests, "request_many")
        return self._each(lambda rm: self._try(*rm), requests)

    def request_sequences(self, requests: list[tuple[str, list[bytes]]]) -> list[list[bytes] | NodeUnavailable]:
        """Several requests to each recipient (distinct recipients), answered one after the other in the
        given order, as separate requests would be: each is checked, counted and answered on its own. A
        transport whose rounds cost a fixed time (Flower) carries each recipient's requests in one round.
        Replies in the same order, or a NodeUnavailable in place of a node's replies."""
        check_distinct(requests, "request_sequences")
        return self._each(lambda rm: self._try_sequence(*rm), requests)

    def _each(self, fn, items) -> list:
        """fn over items, as the transport runs independent requests (here one after the other)."""
        return [fn(item) for item in items]

    def _try_sequence(self, recipient: str, messages: list[bytes]) -> list[bytes] | NodeUnavailable:
        replies = []
        try:
            for m in messages:
                replies.append(self.request(recipient, m))
                if refused(replies[-1]):
                    break  # as the requester would stop there: the rest is not asked
        except NodeUnavailable as exc:
            return exc
        return replies

    def _try(self, recipient: str, message: bytes) -> bytes | NodeUnavailable:
        try:
            return self.request(recipient, message)
        except NodeUnavailable as exc:
            return exc

    def close(self) -> None:  # noqa: B027 - an optional hook: transports without resources need nothing
        """Release the transport's resources (threads, connections)."""


class InProcessNetwork(Network):
    """All nodes in this process. Requests to several parties run in threads, as parties would run in
    parallel: the heavy protocol kernels release the GIL, so every core is used. One thread more than
    cores: a hospital encrypting a large upload waits on its own encryption process (mpclr.roles.encryptor),
    and with only as many threads as cores, three hospitals' rounds on two cores would leave one idle
    while the third runs alone."""

    def __init__(self, workers: int | None = None):
        super().__init__()
        self._nodes: dict[str, object] = {}
        threads = workers or (os.cpu_count() or 1) + 1
        self._pool = ThreadPoolExecutor(max_workers=max(2, threads), thread_name_prefix="party")
        self.round_trips = 0
        self.seconds_in_nodes = 0.0
        self.down: set[str] = set()  # simulated dead nodes: requests to them fail as a real network's would

    def register(self, node) -> None:
        if node.name in self._nodes:
            raise ProtocolError(f"a node named {node.name!r} is already on this network")
        self._nodes[node.name] = node

    def nodes(self) -> list[str]:
        return list(self._nodes)

    def _deliver(self, recipient: str, message: bytes) -> bytes:
        if recipient in self.down:
            raise NodeUnavailable([recipient], "node is down")
        try:
            node = self._nodes[recipient]
        except KeyError:
            raise ProtocolError(f"no node named {recipient!r} on this network") from None
        t0 = time.perf_counter()
        reply = node.handle(message)
        self.seconds_in_nodes += time.perf_counter() - t0
        self.round_trips += 1
        return reply

    def _each(self, fn, items) -> list:  # in threads, as the hospitals would run in parallel
        return list(self._pool.map(fn, items)) if len(items) > 1 else [fn(item) for item in items]

    def close(self) -> None:
        self._pool.shutdown(wait=True)
