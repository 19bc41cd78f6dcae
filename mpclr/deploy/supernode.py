"""A hospital's process: Flower's SuperNode with a long-lived mpclr ClientApp, tuned for short rounds.

Out of the box a Flower 1.42 round costs >= 6 s even when nothing is computed: the SuperNode polls the
SuperLink every 3 s when idle, its SuperExec polls for tasks every 1 s, every message starts a fresh
`flwr-clientapp` process (~2 s of imports, plus the SEAL context), replies wait in 0.5 s steps, and the
ServerApp's `send_and_receive` polls every 3 s. A study has dozens of rounds, so this module runs a
hospital differently, with the same Flower components and protocol:

  * the SuperNode runs with `--isolation process`, and this process claims its ClientApp tasks from
    the SuperNode's Runtime API itself and answers them in process (mpclr.deploy.hospital.answer): no
    process start, no imports, the SEAL context and the hospital's rows stay loaded; the Runtime API's
    handlers are called directly on the SuperNode's NodeState (DirectRuntime), not over its HTTP port:
    a message no longer crosses a local socket twice (a no-op round: 0.61 -> 0.41 s, load ~6);
  * the SuperNode's fixed sleeps become `poll` (3 s idle: 0.1 s while a study is active, `idle_poll`
    after `idle_after` seconds without messages) and `reply-poll` (0.5 s while a reply is made: 20 ms,
    a wait inside this process);
  * heartbeats every few seconds (`heartbeat` = the interval announced to the SuperLink, 10 s at least):
    a hospital that dies is reported by the SuperLink within 2 x heartbeat instead of 60 s.

The hospital only ever runs its own installed mpclr code: the app bundle (FAB) a run brings is checked to
name mpclr's ClientApp and is never installed or executed here.

    python -m mpclr.deploy hospital --config hospital.toml      (see docs/deployment.md)
"""

from __future__ import annotations

import io
import sys
import threading
import warnings
import zipfile
from pathlib import Path

from .tuning import Pacer, tune_supernode

__all__ = ["Pacer", "tune_supernode", "serve_tasks", "run_hospital", "hospital_config", "hospital_table",
           "CLIENTAPP_REF", "DirectRuntime", "NodeStateHolder"]

CLIENTAPP_REF = "mpclr.deploy.apps:client_app"


def _fab_clientapp(fab_bytes: bytes) -> str:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    with zipfile.ZipFile(io.BytesIO(fab_bytes)) as z:
        cfg = tomllib.loads(z.read("pyproject.toml").decode())
    return str(cfg["tool"]["flwr"]["app"]["components"].get("clientapp", ""))


class NodeStateHolder:
    """The SuperNode's NodeState, captured when its factory makes it (one per SuperNode process)."""

    def __init__(self):
        self.state = None
        self.ready = threading.Event()

    def install(self) -> None:
        from flwr.supernode.nodestate import NodeStateFactory

        original = NodeStateFactory.state
        holder = self

        def state(factory):
            made = original(factory)
            if holder.state is None:
                holder.state = made
                holder.ready.set()
            return made

        NodeStateFactory.state = state


class DirectRuntime:
    """The SuperNode's Runtime API for one claimed task, called in this process: the same handlers on the
    same NodeState as its HTTP routes (mpclr's ClientApp runs inside the SuperNode's process), without
    the HTTP round trips (about 15 per message, ~0.1 s of a round) and without copying a message's bytes
    through a socket twice. Every call checks the task's token first, as the HTTP routes do."""

    def __init__(self, state, token: str):
        self.state, self.token = state, token

    def _task(self):
        task = self.state.get_task_by_token(self.token)
        if task is None:
            raise RuntimeError("the Runtime API task token is no longer valid")
        return task

    def _call(self, name, request):
        from flwr.supernode.servicer.runtime import runtime_handlers as h

        return getattr(h, name)(request, self.state, self._task())

    def PullTaskInput(self, request):  # noqa: N802 - the names flwr's runtime client functions call
        return self._call("pull_task_input", request)

    def PullMessages(self, request):  # noqa: N802
        return self._call("pull_messages", request)

    def PullObject(self, request):  # noqa: N802
        return self._call("pull_object", request)

    def ConfirmMessageReceived(self, request):  # noqa: N802
        return self._call("confirm_message_received", request)

    def PushMessages(self, request):  # noqa: N802
        return self._call("push_messages", request)

    def PushObject(self, request):  # noqa: N802
        return self._call("push_object", request)

    def PushTaskOutput(self, request):  # noqa: N802
        return self._call("push_task_output", request)

    def heartbeat(self) -> bool:
        task = self.state.get_task_by_token(self.token)
        return task is not None and bool(self.state.acknowledge_task_heartbeat(task.task_id))

    def close(self) -> None:
        pass


def _run_task(client, answer, log) -> None:
    from flwr.app import Error, Message
    from flwr.common.constant import ErrorCode, SubStatus
    from flwr.supercore.heartbeat import HeartbeatSender
    from flwr.supernode.runtime.run_clientapp import pull_task_input, push_message, push_task_output

    beat = HeartbeatSender(client.heartbeat)
    beat.start()
    message = context = None
    try:
        message, context, run, fab = pull_task_input(client)
        ref = _fab_clientapp(fab.content)
        if ref != CLIENTAPP_REF:
            reply = Message(Error(ErrorCode.LOAD_CLIENT_APP_EXCEPTION,
                                  f"this hospital runs only {CLIENTAPP_REF}, not {ref!r}"), reply_to=message)
            status, details = SubStatus.FAILED, f"refused ClientApp {ref!r}"
            log(f"refused a run that asks for ClientApp {ref!r}")
        else:
            reply = answer(message, context)
            status, details = SubStatus.COMPLETED, ""
        push_message(client, reply, context)
        push_task_output(client, context, status, details)
    except Exception as exc:  # noqa: BLE001 - report to the SuperNode, keep serving
        log(f"task failed: {type(exc).__name__}: {exc}")
        if message is not None and context is not None:
            try:
                push_message(client, Message(Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, str(exc)),
                                             reply_to=message), context)
            except Exception:  # noqa: BLE001
                pass
        try:
            push_task_output(client, context, SubStatus.FAILED, f"{type(exc).__name__}: {exc}")
        except Exception:  # noqa: BLE001
            pass
    finally:
        if beat.is_running:
            beat.stop()
        client.close()


def serve_tasks(holder: NodeStateHolder, pacer: Pacer, stop: threading.Event, log=print) -> None:
    """Claim ClientApp tasks from this process's SuperNode (`--isolation process`: it starts no
    SuperExec) and answer them here, one at a time, until `stop` is set."""
    from flwr.proto.runtime_pb2 import AcquireTaskRequest
    from flwr.supernode.servicer.runtime.runtime_handlers import acquire_task

    from .hospital import answer

    while not holder.ready.wait(0.2):
        if stop.is_set():
            return
    request = AcquireTaskRequest(supported_task_types=["flwr-clientapp"])
    while not stop.is_set():
        res = acquire_task(request, holder.state)
        if res.HasField("task") and res.token:
            pacer.active()
            _run_task(DirectRuntime(holder.state, res.token), answer, log)
            pacer.active()
            pacer.replied.set()
        else:  # woken by the SuperNode loop when a message arrives; a slow poll as a safety net
            pacer.work.wait(pacer.idle_poll)
            pacer.work.clear()


def _load_toml(path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    return tomllib.loads(path.read_text())


def supernode_args(hospital: dict, node: dict, node_config: str, isolation: str = "process") -> list[str]:
    for key in ("superlink", "root-certificates", "auth-key"):
        if not node.get(key):
            raise SystemExit(f"hospital configuration: [supernode] {key} is required (TLS and node authentication "
                             f"are always on)")
    return [
        "--superlink", str(node["superlink"]),
        "--root-certificates", str(node["root-certificates"]),
        "--auth-supernode-private-key", str(node["auth-key"]),
        "--node-config", node_config,
        "--isolation", isolation,
        "--host", "127.0.0.1",
        "--port", str(int(node.get("runtime-port", 9094))),
    ]


def hospital_table(cfg: dict, config_path) -> dict:
    """The [hospital] table of a configuration; [site], its older name, still read with a warning."""
    from .hospital import HospitalFailure

    if "site" not in cfg:
        return cfg.get("hospital", {})
    if "hospital" in cfg:
        raise HospitalFailure("[site] is the older name of [hospital]: keep only [hospital]")
    warnings.warn(f"{config_path}: the [site] section is now called [hospital]", DeprecationWarning, stacklevel=2)
    print(f"[mpclr hospital] {config_path}: the [site] section is now called [hospital]; read as [hospital]",
          file=sys.stderr, flush=True)
    return cfg["site"]


def hospital_config(config_path):
    """The [hospital] table of a hospital's configuration file as a HospitalConfig, and the whole file."""
    from .hospital import HospitalConfig

    cfg = _load_toml(Path(config_path))
    h = hospital_table(cfg, config_path)
    sc = HospitalConfig.from_mapping({"hospital-name": h.get("name", ""), "keystore": h.get("keystore", ""),
                                      "data": h.get("data", ""), "part": h.get("part", ""),
                                      "label": str(h.get("label", "last")), "positive": str(h.get("positive", "")),
                                      "encrypt": h.get("encrypt", True),
                                      "passphrase-file": h.get("passphrase-file", ""),
                                      "glm-max-fraction": h.get("glm-max-fraction", 0.33),
                                      "min-cell": h.get("min-cell", 5),
                                      "share-keyed-uploads": h.get("share-keyed-uploads", True)})
    return sc, cfg


def run_hospital(config_path) -> None:
    """Start this hospital's SuperNode and answer its messages until stopped (SIGTERM or Ctrl-C)."""
    from .hospital import HospitalFailure, HospitalRuntime

    try:
        sc, cfg = hospital_config(config_path)
    except HospitalFailure as exc:
        raise SystemExit(f"[mpclr hospital] {config_path}: {exc}") from None
    node = cfg.get("supernode", {})

    def log(text):
        print(f"[mpclr hospital {sc.name}] {text}", file=sys.stderr, flush=True)

    # check the keystore and the data before connecting: a misconfigured hospital says so at start
    from . import hospital as hospital_module

    runtime = hospital_module._RUNTIMES.setdefault(sc, HospitalRuntime(sc, prompt=True))
    try:
        ident = runtime.identity()
        X, y = runtime.data()
    except HospitalFailure as exc:
        raise SystemExit(f"[mpclr hospital {sc.name}] cannot start: {exc}") from None
    key = runtime.key()
    threading.Thread(target=runtime.warm, name="mpclr-warm", daemon=True).start()
    log(f"{len(y)} rows x {X.shape[1]} features from {sc.data}{' part ' + sc.part if sc.part else ''}; "
        f"keystore {sc.keystore} ({'secrets encrypted at rest' if key else 'NOT ENCRYPTED: encrypt = false'}); "
        f"identity {ident.public_bytes.hex()[:16]}")
    pacer = Pacer(float(node.get("poll", 0.1)), float(node.get("idle-poll", 1.0)),
                  float(node.get("idle-after", 120.0)), float(node.get("reply-poll", 0.02)))
    tune_supernode(pacer, float(node.get("heartbeat", 10.0)))
    argv = supernode_args(cfg.get("hospital", cfg.get("site", {})), node, sc.node_config())
    holder = NodeStateHolder()
    holder.install()
    stop = threading.Event()
    worker = threading.Thread(
        target=serve_tasks, args=(holder, pacer, stop, log),
        name="mpclr-clientapp", daemon=True,
    )
    worker.start()
    from flwr.supernode.cli.flower_supernode import flower_supernode

    sys.argv = ["flower-supernode", *argv]
    try:
        flower_supernode()
    finally:
        stop.set()
