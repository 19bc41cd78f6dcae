"""Flower 1.42 settings that cut the cost of a round, applied in the process that needs them.

Where a round's time goes out of the box, and what replaces it here:

    ServerApp   Grid.send_and_receive polls every 3 s       FlowerNetwork polls 5 ms, doubling to 50 ms
    SuperNode   polls the SuperLink every 3 s when idle      `poll` (0.1 s) while a study is active
                waits for the ClientApp's reply in 0.5 s     `reply_poll` (20 ms, inside the process)
    SuperExec   looks for tasks every 1 s                    no SuperExec: a long-lived ClientApp
    ClientApp   a new process per message (~2 s imports)     one process, SEAL context and rows loaded,
                talking to the SuperNode over HTTP           calling its Runtime API handlers in process
    objects     a pull that races its push waits 1 s, 2 s    first retry after 10 ms, doubling to 1 s
    chunks      message bytes move in 5 MiB pieces           8 MiB pieces: fewer HTTP requests
    heartbeat   30 s: a dead hospital is noticed after 60 s  10 s: noticed after 20 s

Each poll of the SuperLink costs it about 3 ms of CPU (TLS, node signature, its ASGI stack): with three
hospitals polling every 50 ms a study's SuperLink burned 0.2 of a core and the hospitals 0.1 between rounds,
taken from the server's workers; at 0.1 s it is 0.13 and 0.07, and a round with nothing to compute
still takes 0.41 s (0.44 s before), as the reply wait, which never leaves the process, went to 20 ms.

The object pull backoff is the hidden one: a message's contents are pushed after the message itself,
so its reader usually asks once too early and then sleeps a whole second (twice per round trip).
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time as _time

__all__ = ["Pacer", "fast_object_pulls", "tune_supernode", "pull_replies"]

_DEBUG = bool(os.environ.get("MPCLR_DEPLOY_DEBUG"))


def fast_object_pulls(initial_backoff: float = 0.01, backoff_cap: float = 1.0, chunk: int = 8 << 20) -> None:
    """Retry object pulls that arrive before the object after `initial_backoff` seconds (doubling up
    to `backoff_cap`) instead of Flower's 1 s (doubling to 10 s); cut message bytes into `chunk`-byte
    pieces. Every piece is one HTTP request that the SuperLink, a single Python process and the
    bottleneck of a bulk transfer here (about 19 ms of its CPU per MB moved with 2 MiB pieces), handles
    in its ASGI stack: 8 MiB moved 450 MB to three hospitals in 6.2 s against 7.2 s with 2 MiB and 6.5-6.9 s
    with 16 MiB (a ping study with random payloads, benchmarks/deployment.py's machine)."""
    iu = importlib.import_module("flwr.supercore.inflatable.inflatable_utils")
    for fn in (iu.pull_objects, iu.pull_and_inflate_object_from_tree):
        fn.__kwdefaults__["initial_backoff"] = float(initial_backoff)
        fn.__kwdefaults__["backoff_cap"] = float(backoff_cap)
    importlib.import_module("flwr.app.message.array").FLWR_PRIVATE_MAX_ARRAY_CHUNK_SIZE = int(chunk)


class Pacer:
    """Poll the SuperLink every `poll` seconds while a study is active, every `idle_poll` after
    `idle_after` seconds without messages; wait for the ClientApp's reply (in this process, no request
    to the SuperLink) in steps of `reply_poll`."""

    def __init__(self, poll: float = 0.1, idle_poll: float = 1.0, idle_after: float = 120.0,
                 reply_poll: float = 0.02):
        self.poll, self.idle_poll, self.idle_after = float(poll), float(idle_poll), float(idle_after)
        self.reply_poll = float(reply_poll)
        self.last_active = _time.monotonic()
        # set when the SuperNode holds a message for the ClientApp: the in-process ClientApp waits on
        # it instead of polling the Runtime API on its own
        self.work = threading.Event()
        # set by the ClientApp when its reply is in the SuperNode's state: the SuperNode's reply wait
        # ends then instead of at its next `reply_poll` step
        self.replied = threading.Event()

    def active(self) -> None:
        self.last_active = _time.monotonic()

    def interval(self) -> float:
        return self.poll if _time.monotonic() - self.last_active < self.idle_after else self.idle_poll

    def idle_sleep(self) -> None:
        _time.sleep(self.interval())


class _PacedTime:
    """Stands in for the `time` module inside flwr.supernode.start_client_internal: its 3 s idle sleep
    and 0.5 s waits follow the pacer; everything else is the real `time`."""

    def __init__(self, pacer: Pacer):
        self._pacer = pacer

    def sleep(self, seconds: float) -> None:
        if _DEBUG:
            print(f"[pace] t={_time.time():.3f} sleep({seconds}) interval {self._pacer.interval()}",
                  file=sys.stderr, flush=True)
        if seconds >= 3:
            self._pacer.idle_sleep()
        else:  # waiting for a reply or its contents: a message is being handled
            self._pacer.active()
            self._pacer.work.set()
            if self._pacer.replied.wait(min(seconds, self._pacer.reply_poll)):
                self._pacer.replied.clear()

    def __getattr__(self, name):
        return getattr(_time, name)


def tune_supernode(pacer: Pacer, heartbeat: float = 10.0) -> None:
    """Apply the pacing, fast object pulls and the heartbeat interval to this process's SuperNode."""
    # by module object: `flwr.supernode.start_client_internal` is also the name of a function
    sci = importlib.import_module("flwr.supernode.start_client_internal")
    hb = importlib.import_module("flwr.supercore.heartbeat")
    fhc = importlib.import_module("flwr.supernode.fleet_http_connection")
    sci.time = _PacedTime(pacer)
    heartbeat = max(10.0, float(heartbeat))  # the SuperLink refuses shorter intervals
    hb.HEARTBEAT_DEFAULT_INTERVAL = heartbeat
    fhc.HEARTBEAT_DEFAULT_INTERVAL = heartbeat
    fast_object_pulls()


def pull_replies(grid, message_ids, pool=None) -> list:
    """`grid.pull_messages(message_ids)`, with the replies' objects pulled side by side on `pool` (a
    ThreadPoolExecutor) when the grid is Flower's HttpGrid: its own loop pulls one reply's objects and
    confirms it before it starts the next (3 hospitals: ~25 ms each for a small reply, ~80 ms a round).
    Any other grid (tests) is asked as it is. A reply whose objects stay missing becomes a Flower
    MESSAGE_UNAVAILABLE error reply, as HttpGrid makes it."""
    from flwr.superlink.grid.http_grid import HttpGrid

    if pool is None or not isinstance(grid, HttpGrid):
        return list(grid.pull_messages(message_ids))
    import httpx
    from flwr.proto.runtime_pb2 import PullAppMessagesRequest

    try:
        res = grid._runtime_client.PullMessages(PullAppMessagesRequest(message_ids=list(message_ids)))
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code == httpx.codes.REQUEST_ENTITY_TOO_LARGE:
            return []
        raise
    pairs = list(zip(res.messages_list, res.message_object_trees, strict=True))
    if len(pairs) <= 1:
        return [_pull_one(grid, p, t) for p, t in pairs]
    return list(pool.map(lambda pt: _pull_one(grid, *pt), pairs))


def _pull_one(grid, proto, tree):
    from flwr.app import Error, Metadata
    from flwr.app.message import make_message
    from flwr.common.constant import ErrorCode
    from flwr.proto.message_pb2 import ConfirmMessageReceivedRequest
    from flwr.supercore.constant import SYSTEM_MESSAGE_TYPE
    from flwr.supercore.date import now
    from flwr.supercore.inflatable.inflatable_object import iterate_object_tree
    from flwr.supercore.inflatable.inflatable_protobuf_utils import make_pull_object_fn_protobuf
    from flwr.supercore.inflatable.inflatable_utils import (
        ObjectPullError,
        inflate_object_from_contents,
        pull_objects,
    )

    run_id = grid._run.run_id
    msg_id = proto.metadata.message_id
    client = grid._runtime_client
    try:
        contents = pull_objects([t.object_id for t in iterate_object_tree(tree)],
                                make_pull_object_fn_protobuf(client.PullObject, grid.node, run_id))
    except ObjectPullError as exc:
        meta = Metadata(run_id=run_id, message_id="", src_node_id=grid.node.node_id,
                        dst_node_id=grid.node.node_id, message_type=SYSTEM_MESSAGE_TYPE, group_id="", ttl=0,
                        reply_to_message_id=proto.metadata.reply_to_message_id, created_at=now().timestamp())
        return make_message(metadata=meta, error=Error(ErrorCode.MESSAGE_UNAVAILABLE,
                                                       f"Reply message objects are unavailable: {exc}"))
    client.ConfirmMessageReceived(ConfirmMessageReceivedRequest(node=grid.node, run_id=run_id,
                                                                message_object_id=msg_id))
    message = inflate_object_from_contents(msg_id, contents)
    message.metadata.__dict__["_message_id"] = msg_id
    return message
