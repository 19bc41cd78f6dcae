"""A whole deployment on this machine (127.0.0.1 only): certificates, a SuperLink, n hospitals, a study.

Used by `python -m mpclr.deploy local`, the tests and the deployment benchmark. Every process it starts
carries an environment tag; `stop()` ends them by process id (each one's process group first, then any
tagged process left, such as the SuperLink's detached SuperExec and ServerApp), so nothing outlives it,
also when a study fails.

    with LocalDeployment(workdir, hospitals=[HospitalSpec("hospital-1", "breast_cancer", "1/3"), ...]) as dep:
        result = dep.run_study({"threshold": 2, "preset": "train", "folds": 5})
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..errors import MpclrError, renamed_keywords
from .appdir import run_config_args, write_app
from .certs import make_ca, make_node_keys, make_server_cert

__all__ = ["LocalDeployment", "HospitalSpec", "StudyFailed", "free_port", "submit_study", "tagged_processes"]

TAG = "MPCLR_DEPLOY_TAG"


class StudyFailed(MpclrError):
    """The deployed study stopped; `record` is the coordinator's failed.json (no result was written)."""

    def __init__(self, message: str, record: dict | None = None):
        super().__init__(message)
        self.record = record or {}


@dataclass
class HospitalSpec:
    name: str
    data: str  # path or built-in data set (mpclr.data.load)
    part: str = ""  # "i/n": only that contiguous part of `data`
    label: str = "last"


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _plain(env: dict) -> dict:
    """No colours from flwr's CLI (a Jupyter kernel forces them on), so its JSON parses."""
    for key in ("FORCE_COLOR", "CLICOLOR_FORCE", "PY_COLORS"):
        env.pop(key, None)
    env["NO_COLOR"] = "1"
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bin(name: str) -> str:
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


class LocalDeployment:
    """SuperLink + one SuperNode per hospital on 127.0.0.1, TLS and SuperNode authentication on.

    mode "tuned": each hospital is `python -m mpclr.deploy hospital` (long-lived ClientApp, fast polling);
    mode "flower": each hospital is a plain `flower-supernode` (a new ClientApp process per message, Flower's
    default polling): the out-of-the-box baseline.
    """

    @renamed_keywords(sites="hospitals")
    def __init__(self, workdir, hospitals: list[HospitalSpec], *, mode: str = "tuned", poll: float = 0.1,
                 superexec_poll: float = 0.1, log=None):
        if mode not in ("tuned", "flower"):
            raise ValueError(f"mode must be 'tuned' or 'flower', got {mode!r}")
        self.root = Path(workdir).resolve()
        self.hospitals = list(hospitals)
        self.mode = mode
        self.poll = poll
        self.superexec_poll = superexec_poll
        self.tag = uuid.uuid4().hex
        self.procs: dict[str, subprocess.Popen] = {}
        self.log = log or (lambda text: print(f"[mpclr local] {text}", file=sys.stderr, flush=True))
        self.port = 0
        self.timings: dict[str, float] = {}
        self.connection = "mpclr-local"

    # --- environment ----------------------------------------------------------------------------
    def env(self, home: Path) -> dict:
        env = dict(os.environ)
        env.update({
            TAG: self.tag,
            "FLWR_TELEMETRY_ENABLED": "0",
            "FLWR_DISABLE_UPDATE_CHECK": "1",
            "FLWR_HOME": str(home),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
        })
        return _plain(env)

    def _spawn(self, key: str, args: list[str], home: Path, extra_env: dict | None = None) -> subprocess.Popen:
        logs = self.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = self.env(home)
        env.update(extra_env or {})
        fh = open(logs / f"{key}.log", "ab")
        proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=self.root, start_new_session=True)
        fh.close()
        self.procs[key] = proc
        return proc

    def _cli(self, args: list[str], timeout: float = 120.0) -> str:
        res = subprocess.run([_bin("flwr"), *args], capture_output=True, text=True, env=self.env(self.home),
                             cwd=self.root, timeout=timeout, stdin=subprocess.DEVNULL)
        if res.returncode != 0:
            raise MpclrError(f"flwr {' '.join(args[:2])} failed ({res.returncode}): "
                             f"{res.stdout[-800:]} {res.stderr[-800:]}")
        return res.stdout

    @property
    def home(self) -> Path:
        return self.root / "coordinator" / "flwr-home"

    # --- start ----------------------------------------------------------------------------------
    def start(self) -> LocalDeployment:
        t0 = time.perf_counter()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.timings["start"] = time.perf_counter() - t0
        return self

    def _start(self) -> None:
        certs = self.root / "coordinator" / "certs"
        make_ca(certs)
        make_server_cert(certs, hosts=("127.0.0.1", "localhost"), name="superlink")
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        (self.home / "config.toml").write_text(
            f'[superlink]\ndefault = "{self.connection}"\n\n[superlink.{self.connection}]\n'
            f'address = "127.0.0.1:{self.port}"\nroot-certificates = "{certs / "ca.crt"}"\n'
        )
        self._spawn("superlink", [
            _bin("flower-superlink"),
            "--ssl-ca-certfile", str(certs / "ca.crt"),
            "--ssl-certfile", str(certs / "superlink.pem"),
            "--ssl-keyfile", str(certs / "superlink.key"),
            "--enable-supernode-auth",
            "--disable-runtime-dependency-installation",
            "--isolation", "subprocess",
            "--host", "127.0.0.1",
            "--port", str(self.port),
        ], self.home, {"FLWR_SUPEREXEC_TASK_POLL_INTERVAL": str(self.superexec_poll)})
        self._wait_port(self.port, "superlink")
        for spec in self.hospitals:
            folder = self.root / "hospitals" / spec.name
            folder.mkdir(parents=True, exist_ok=True)
            os.chmod(folder, 0o700)
            _, pub = make_node_keys(folder, "supernode-key")
            (folder / "ca.crt").write_bytes((certs / "ca.crt").read_bytes())
            out = self._cli(["supernode", "register", str(pub), self.connection, "--name", spec.name])
            self.log(f"registered {spec.name}: {out.strip().splitlines()[-1] if out.strip() else ''}")
        for spec in self.hospitals:
            self.start_hospital(spec)

    def passphrase_file(self, spec: HospitalSpec) -> Path:
        """The demo's keystore passphrase: random, made once per hospital, kept in a 0600 file beside the
        keystore. So `local` runs without prompting and its keystores are encrypted as a real hospital's are;
        at a real hospital the passphrase is not kept next to the keystore (docs/deployment.md)."""
        path = self.root / "hospitals" / spec.name / "keystore-passphrase"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(32))
        return path

    def hospital_config(self, spec: HospitalSpec, runtime_port: int) -> Path:
        folder = self.root / "hospitals" / spec.name
        cfg = folder / "hospital.toml"
        cfg.write_text(
            "[hospital]\n"
            f'name = "{spec.name}"\n'
            f'keystore = "{folder / "keystore"}"\n'
            f'passphrase-file = "{self.passphrase_file(spec)}"\n'
            f"data = {json.dumps(str(spec.data))}\n"
            f'part = "{spec.part}"\n'
            f'label = "{spec.label}"\n\n'
            "[supernode]\n"
            f'superlink = "127.0.0.1:{self.port}"\n'
            f'root-certificates = "{folder / "ca.crt"}"\n'
            f'auth-key = "{folder / "supernode-key"}"\n'
            f"runtime-port = {runtime_port}\n"
            f"poll = {self.poll}\n"
            "idle-poll = 1.0\n"
            "heartbeat = 10\n"
        )
        return cfg

    def start_hospital(self, spec: HospitalSpec) -> None:
        from .hospital import HospitalConfig

        folder = self.root / "hospitals" / spec.name
        home = folder / "flwr-home"
        home.mkdir(parents=True, exist_ok=True)
        runtime_port = free_port()
        cfg = self.hospital_config(spec, runtime_port)
        if self.mode == "tuned":
            args = [sys.executable, "-m", "mpclr.deploy", "hospital", "--config", str(cfg)]
        else:
            sc = HospitalConfig(spec.name, str(folder / "keystore"), str(spec.data), spec.part, spec.label,
                                passphrase_file=str(self.passphrase_file(spec)))
            args = [_bin("flower-supernode"), "--superlink", f"127.0.0.1:{self.port}",
                    "--root-certificates", str(folder / "ca.crt"),
                    "--auth-supernode-private-key", str(folder / "supernode-key"),
                    "--node-config", sc.node_config(), "--port", str(runtime_port)]
        self._spawn(f"hospital-{spec.name}", args, home)

    def _wait_port(self, port: int, key: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[key].poll() is not None:
                raise MpclrError(f"{key} exited at start (code {self.procs[key].returncode}); "
                                 f"see {self.root}/logs/{key}.log")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise MpclrError(f"{key} did not open port {port} within {timeout:.0f} s")

    # --- run ------------------------------------------------------------------------------------
    def run_study(self, run_config: dict | None = None, *, timeout: float = 1800.0, on_progress=None) -> dict:
        """Submit a study to this deployment (see submit_study)."""
        values = {"hospital-names": ",".join(s.name for s in self.hospitals), **(run_config or {})}
        out = self.root / "coordinator" / f"study-{int(time.time() * 1000)}"
        return submit_study(self.connection, values, out, flwr_home=self.home, timeout=timeout,
                            on_progress=on_progress, alive=lambda: self.procs["superlink"].poll() is None,
                            log=self.log)

    def kill_hospital(self, name: str, sig: int = signal.SIGKILL) -> None:
        """End a hospital at once (its SuperNode and ClientApp processes), as a crash or power cut would."""
        proc = self.procs[f"hospital-{name}"]
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)

    # --- stop -----------------------------------------------------------------------------------
    def stop(self) -> list[int]:
        """End every process this deployment started; returns the pids that needed SIGKILL."""
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 8
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        killed = []
        for _ in range(20):
            left = tagged_processes(self.tag)
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        return killed

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def tagged_processes(tag: str) -> list[int]:
    """Pids of live processes whose environment carries this deployment's tag (zombies excluded)."""
    needle = f"{TAG}={tag}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
            if state == b"Z":
                continue
            with open(f"/proc/{entry}/environ", "rb") as fh:
                if needle in fh.read().split(b"\0"):
                    found.append(int(entry))
        except (OSError, IndexError):
            continue
    return found


def submit_study(connection: str, run_config: dict, output, *, flwr_home=None, timeout: float = 6 * 3600.0,
                 on_progress=None, alive=None, log=None) -> dict:
    """Run a study on a running deployment and wait for its result: the coordinator's (or a notebook's)
    way in. `connection` names a SuperLink connection in FLWR_HOME/config.toml; the ServerApp runs on
    the SuperLink's machine and writes into `output` there (so this waits on the same machine).

    Returns result.json as a dict; raises StudyFailed with failed.json when the study stops."""
    log = log or (lambda text: print(f"[mpclr] {text}", file=sys.stderr, flush=True))
    out = Path(output).resolve()
    home = Path(flwr_home) if flwr_home else Path(os.environ.get("FLWR_HOME", Path.home() / ".flwr"))
    app = write_app(out.parent / f".{out.name}-app")
    values = {**run_config, "output": str(out)}
    env = _plain(dict(os.environ, FLWR_HOME=str(home), FLWR_TELEMETRY_ENABLED="0", FLWR_DISABLE_UPDATE_CHECK="1",
                      PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"))
    t0 = time.perf_counter()
    res = subprocess.run([_bin("flwr"), "run", str(app), connection, *run_config_args(values), "--format", "json"],
                         capture_output=True, text=True, env=env, timeout=300, stdin=subprocess.DEVNULL)
    text = _ANSI.sub("", res.stdout)
    try:
        reply = json.loads(text[text.index("{"):])
        run_id = reply["run-id"]
    except (ValueError, KeyError):
        raise MpclrError(f"flwr run did not start the study: {text[-800:]} {res.stderr[-800:]}") from None
    if not run_id:
        raise MpclrError(f"flwr run did not start the study: {reply.get('error-message', reply)}")
    log(f"study submitted as Flower run {run_id}; results in {out}")
    seen = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        progress = out / "progress.jsonl"
        if on_progress and progress.exists():
            for line in progress.read_text().splitlines()[seen:]:
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    break  # a line still being written
                seen += 1
                on_progress(event)
        if (out / "result.json").exists():
            result = json.loads((out / "result.json").read_text())
            result.update(wall_seconds=time.perf_counter() - t0, run_id=run_id, output=str(out))
            return result
        if (out / "failed.json").exists():
            rec = json.loads((out / "failed.json").read_text())
            raise StudyFailed(f"the study stopped in {rec.get('phase')}: {rec.get('error')}", rec)
        if alive is not None and not alive():
            raise StudyFailed("the SuperLink exited during the study")
        time.sleep(0.1)
    raise StudyFailed(f"no result after {timeout:.0f} s (see {out})")
