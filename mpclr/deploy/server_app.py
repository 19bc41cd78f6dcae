"""The coordinator's side: a Flower ServerApp that runs a whole study over the hospitals' SuperNodes.

    find the hospitals      hello to every connected SuperNode: name, identity key, row count
    manifest            the study hook's manifest (`function.manifest(HospitalsInfo, config)`): what the
                        hospitals will answer, computed from the study plan (the hospitals report their fold
                        sizes for it); a hook without one gets the key ceremony only
    bootstrap           build the session (roster, key holders, threshold, parameter set, manifest
                        digest), assign each hospital a contiguous range of global row numbers (in the order
                        of `hospitals`), send it with the manifest to every hospital (each draws its key share),
                        compare session fingerprints
    key ceremony        Server.run_key_ceremony, and run_threshold_setup when t < n
    the study           a function `study(fed, config) -> dict` (the hook, below), on a
                        `DeployedFederation`: a `mpclr.Federation` whose hospitals are remote
    results             <output>/result.json for the researcher (co-located with the coordinator);
                        on any failure <output>/failed.json with the error instead, and no result

The study hook: run-config key `study` = "package.module:function". The function is called as
`function(fed, config)` where `fed` behaves as an in-process `mpclr.Federation` (server, researcher,
hospitals by name, decrypt, refresh, receive, generate_rotation_keys, session, params, seed) and `config`
is a dict with the run configuration's study options (folds, schedule, degree, workers, seed, ...)
plus "progress": a callable progress(event: str, **info) that appends to <output>/progress.jsonl. It
returns a JSON-serialisable dict, stored under "study" in result.json. A function with an attribute
`check_config(preset, options)` has it called first, before any hospital is contacted, to refuse what it
could not run (the default study refuses unknown options and presets that cannot run a whole study).
Its hospitals' rows are at the hospitals: only steps that go through protocol messages (mpclr.training.cv and the
like) can use them.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path

from ..errors import MpclrError, NodeUnavailable, ParameterError, ProtocolError, renamed_keywords
from ..federation import Federation, seal_context
from ..params import check_study_preset, get_preset
from ..roles import Researcher, Server, Session
from ..roles.policy import Manifest
from ..upload_mode import for_study
from .hospital import params_to_json, session_fingerprint
from .transport import FlowerNetwork, HospitalError

__all__ = ["DeploymentConfig", "DeployedFederation", "RemoteParty", "run_deployed_study", "make_server_app",
           "DEFAULT_STUDY"]

DEFAULT_STUDY = "mpclr.deploy.study:encrypted_cv"

# run-config keys that belong to the deployment; every other key is a study option
_DEPLOYMENT_KEYS = {"hospital-names", "sites", "hospitals", "parties", "threshold", "preset", "upload", "seed", "study",
                    "output", "round-timeout", "join-timeout", "poll", "max-poll"}


def _natural(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


@dataclass
class DeploymentConfig:
    """How the coordinator runs a deployed study: where its result goes, which hospitals, the key ceremony's
    preset, upload mode ("auto": resolved from the study's plan, mpclr.upload_mode), threshold and seed, the
    transport's timeouts, and which study hook runs. The study itself is described by the hook from
    `options` (the default's: mpclr.spec.StudySpec.from_run_config)."""

    output: str
    hospital_names: list[str] = field(default_factory=list)
    hospitals: int = 0
    threshold: int = 0
    preset: str = "train"
    upload: str = "auto"
    seed: int | None = 0
    study: str = DEFAULT_STUDY
    round_timeout: float = 600.0
    join_timeout: float = 120.0
    poll: float = 0.005
    max_poll: float = 0.05
    options: dict = field(default_factory=dict)

    @classmethod
    def from_run_config(cls, rc) -> DeploymentConfig:
        rc = dict(rc)
        if not str(rc.get("output", "")):
            raise ParameterError("run config: `output` (the coordinator's result folder) is required")
        if str(rc.get("sites", "")):  # the key's older name
            if str(rc.get("hospital-names", "")):
                raise ParameterError("run config: `sites` is the older name of `hospital-names`: "
                                     "set only `hospital-names`")
            warnings.warn("run config: `sites` is now called `hospital-names`", DeprecationWarning, stacklevel=2)
            rc["hospital-names"] = rc["sites"]
        names = [s.strip() for s in str(rc.get("hospital-names", "")).split(",") if s.strip()]
        seed = rc.get("seed", 0)
        hospitals = int(rc.get("hospitals", 0) or 0)
        if int(rc.get("parties", 0) or 0):  # the key's older name
            if hospitals:
                raise ParameterError("run config: `parties` is the older name of `hospitals`: set only `hospitals`")
            warnings.warn("run config: `parties` is now called `hospitals`", DeprecationWarning, stacklevel=2)
            hospitals = int(rc["parties"])
        return cls(
            output=str(rc["output"]),
            hospital_names=names,
            hospitals=hospitals or len(names),
            threshold=int(rc.get("threshold", 0) or 0),
            preset=str(rc.get("preset", "train")),
            upload=str(rc.get("upload", "auto") or "auto"),
            seed=None if seed in ("", None) or (isinstance(seed, int) and seed < 0) else int(seed),
            study=str(rc.get("study", DEFAULT_STUDY) or DEFAULT_STUDY),
            round_timeout=float(rc.get("round-timeout", 600.0)),
            join_timeout=float(rc.get("join-timeout", 120.0)),
            poll=float(rc.get("poll", 0.005)),
            max_poll=float(rc.get("max-poll", 0.05)),
            options={k: v for k, v in rc.items() if k not in _DEPLOYMENT_KEYS},
        )


def _params(cfg: DeploymentConfig):
    """The preset with the configured upload mode (Params checks it and names the parameter)."""
    return get_preset(cfg.preset).with_(upload=cfg.upload)


DeploymentConfig.__init__ = renamed_keywords(sites="hospital_names")(DeploymentConfig.__init__)


class RemoteParty:
    """A hospital seen from the coordinator: a name and a row range. Its rows and key share are at
    the hospital; everything it does goes through protocol messages."""

    def __init__(self, name: str, rows: int, row_offset: int, node_id: int, identity: bytes):
        self.name = name
        self.rows = rows
        self.row_offset = row_offset
        self.node_id = node_id
        self.identity_public = identity

    def __repr__(self) -> str:
        return f"RemoteParty({self.name!r}, rows {self.row_offset}..{self.row_offset + self.rows - 1})"

    def _remote_only(self, *args, **kwargs):
        raise ProtocolError(f"{self.name} runs at its own hospital: its data and key share are not here")

    encrypt = load_data = handle = _remote_only


class DeployedFederation(Federation):
    """`mpclr.Federation` with the hospitals at their hospitals: the server and the researcher run here on a
    `FlowerNetwork`; `hospitals` are `RemoteParty` stubs. Made by `run_deployed_study` after bootstrap."""

    def __init__(self, network: FlowerNetwork, server: Server, researcher: Researcher, session: Session,
                 hospitals: list[RemoteParty], params, seed, manifest: Manifest | None = None):
        self.manifest = manifest
        self.params = params
        self.seed = seed
        self.ctx = server.ctx
        self.network = network
        self.timings = {}
        self.server = server
        self.researcher = researcher
        self.hospitals = hospitals
        self.session = session

    def run_key_ceremony(self) -> None:
        t0 = time.perf_counter()
        self.server.run_key_ceremony()
        if self.session.threshold < self.session.n:
            self.server.run_threshold_setup()
        self.timings["key_ceremony"] = time.perf_counter() - t0

    def save(self, path) -> None:
        raise ProtocolError("a deployed federation keeps its state at the hospitals (their keystores): nothing to save")

    @classmethod
    def load(cls, path, network=None):
        raise ProtocolError("a deployed federation cannot be loaded from files")


class ProgressLog:
    def __init__(self, path: Path):
        self.path = path
        self.t0 = time.time()

    def __call__(self, event: str, **info) -> None:
        rec = {"t": round(time.time() - self.t0, 3), "event": event, **info}
        with open(self.path, "a") as fh:
            fh.write(json.dumps(rec, default=str) + "\n")
        print(f"[mpclr coordinator] {event} {json.dumps(info, default=str) if info else ''}", file=sys.stderr,
              flush=True)


def _atomic_json(path: Path, value) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=1, default=_jsonable))
    os.replace(tmp, path)


def _jsonable(v):
    if hasattr(v, "tolist"):
        return v.tolist()
    if isinstance(v, set | tuple):
        return sorted(v) if isinstance(v, set) else list(v)
    return str(v)


def load_study(ref: str):
    module, _, attr = ref.partition(":")
    if not module or not attr:
        raise ParameterError(f"study must be 'package.module:function', got {ref!r}")
    fn = getattr(importlib.import_module(module), attr, None)
    if not callable(fn):
        raise ParameterError(f"study {ref!r} is not a function")
    return fn


def find_hospitals(grid, net: FlowerNetwork, cfg: DeploymentConfig, note) -> dict[str, dict]:
    """Say hello to every connected SuperNode until the study's hospitals are known by name; a SuperNode
    registered under a name (flwr supernode register --name) must answer with that name."""
    want = list(cfg.hospital_names)
    need = cfg.hospitals or len(want)
    if need < 2:
        raise ParameterError("a study needs at least 2 hospitals: set `hospital-names` (names) or `hospitals` "
                             "(a count)")
    found: dict[str, dict] = {}
    asked: set[int] = set()
    deadline = time.monotonic() + cfg.join_timeout
    while True:
        nodes = {n.node_id: n for n in grid.get_nodes()}
        new = [nid for nid in nodes if nid not in asked]
        if new:
            replies = net.probe(new, json.dumps({"hello": 1}).encode(), timeout=min(60.0, cfg.join_timeout))
            for nid, rep in replies.items():
                if isinstance(rep, NodeUnavailable):
                    continue  # starting up or gone: asked again when it shows up again
                asked.add(nid)
                if isinstance(rep, HospitalError):
                    raise ProtocolError(f"a hospital cannot take part: {rep}")
                info = json.loads(rep)
                name = info.get("hospital", info.get("site"))  # "site": a node of mpclr before the rename
                registered = getattr(nodes[nid], "name", "")
                if registered and registered != name:
                    note("hospital_refused", node=nid, claims=name, registered=registered)
                    continue
                if name in found and found[name]["node_id"] != nid:
                    raise ProtocolError(
                        f"two SuperNodes answer as {name!r} (node ids {found[name]['node_id']} and {nid})"
                    )
                if want and name not in want:
                    note("hospital_ignored", hospital=name, node=nid)
                    continue
                found[name] = {**info, "node_id": nid}
                note("hospital_found", hospital=name, node=nid, rows=info["rows"], features=info["features"],
                     identity=info["identity"][:16])
        ready = all(s in found for s in want) if want else len(found) >= need
        if ready:
            break
        if time.monotonic() > deadline:
            missing = [s for s in want if s not in found] if want else []
            raise ProtocolError(
                f"hospitals not connected after {cfg.join_timeout:.0f} s: "
                + (", ".join(missing) if missing else f"{len(found)} of {need} found ({', '.join(sorted(found))})")
            )
        time.sleep(0.5)
    names = want or sorted(found, key=_natural)[:need]
    return {n: found[n] for n in names}


def fold_sizes_of(net: FlowerNetwork, session_id: bytes, offsets: dict[str, int], folds: int) -> list[int]:
    """Rows per fold of the hospitals' own fold assignments (as lr.folds will make them), summed: one
    bootstrap round. Each hospital draws the secret fold key of the session now, keeps it, and counts its own
    rows (global numbers from its offset); the counts are what lr.folds shows the server later anyway."""
    bodies = {n: json.dumps({"session": session_id.hex(), "folds": int(folds), "row_offset": int(off)}).encode()
              for n, off in offsets.items()}
    total = [0] * int(folds)
    for name, rep in net.bootstrap("folds", bodies).items():
        if isinstance(rep, Exception):
            raise ProtocolError(f"{name} did not report its fold sizes: {rep}")
        sizes = json.loads(rep)["sizes"]
        if len(sizes) != folds:
            raise ProtocolError(f"{name} reported {len(sizes)} fold sizes for {folds} folds")
        total = [a + int(b) for a, b in zip(total, sizes)]
    return total


def study_manifest(net: FlowerNetwork, hospitals: dict[str, dict], cfg: DeploymentConfig, study, note,
                   session_id: bytes, offsets: dict[str, int]) -> Manifest:
    """What the hospitals are asked to agree to: the study hook's manifest for them (see the module docstring)."""
    from .study import HospitalsInfo

    names = list(hospitals)
    t = cfg.threshold or len(names)
    make = getattr(study, "manifest", None)
    if make is None:
        note("manifest", detail="the study hook declares no manifest: the hospitals answer the key ceremony only")
        return Manifest.keys_only(t < len(names))
    info = HospitalsInfo(names, [int(hospitals[n]["rows"]) for n in names],
                         int(next(iter(hospitals.values()))["features"]), _params(cfg), t,
                         bool(net.coalesce_rounds), lambda folds: fold_sizes_of(net, session_id, offsets, folds),
                         [hospitals[n].get("min_cell") for n in names])
    manifest = make(info, {**cfg.options, "seed": cfg.seed})
    if not isinstance(manifest, Manifest) or manifest.exploration:
        raise ProtocolError("the study hook's manifest must be a study manifest (hospitals refuse exploration)")
    return manifest


def bootstrap(net: FlowerNetwork, hospitals: dict[str, dict], cfg: DeploymentConfig, note,
              study=None) -> DeployedFederation:
    features = {info["features"] for info in hospitals.values()}
    if len(features) != 1:
        raise ProtocolError(f"the hospitals' data have different numbers of features: "
                            f"{ {n: i['features'] for n, i in hospitals.items()} }")
    names = list(hospitals)
    n = len(names)
    t = cfg.threshold or n
    if not 1 <= t <= n:
        raise ParameterError(f"threshold must be in 1..{n}, got {t}")
    for name, info in hospitals.items():
        net.hospitals[name] = info["node_id"]
    offsets = dict(zip(names, accumulate((int(hospitals[name]["rows"]) for name in names), initial=0)))
    session_id = os.urandom(16)
    manifest = study_manifest(net, hospitals, cfg, study or load_study(cfg.study), note, session_id, offsets)
    # "auto" uploads resolved by the study's plan (mpclr.upload_mode): the hospitals get the concrete mode
    params = for_study(_params(cfg), manifest)
    ctx = seal_context(params)
    server = Server("server", ctx, net)
    researcher = Researcher("researcher", ctx, net)
    roster = {"server": server.identity.public_bytes, "researcher": researcher.identity.public_bytes}
    parties = []
    for name in names:
        ident = bytes.fromhex(hospitals[name]["identity"])
        roster[name] = ident
        parties.append(RemoteParty(name, int(hospitals[name]["rows"]), offsets[name], hospitals[name]["node_id"],
                                   ident))
    session = Session(id=session_id, params=ctx.fingerprint, roster=roster, key_holders=tuple(names),
                      threshold=t, server="server", researcher="researcher", manifest=manifest.digest)
    server.join(session)
    researcher.join(session)
    net.session_hex = session.id.hex()
    fp = session_fingerprint(session)
    bodies = {
        p.name: json.dumps({"session": session.to_json(), "params": params_to_json(params),
                            "row_offset": p.row_offset, "rows": p.rows, "manifest": manifest.to_json()}).encode()
        for p in parties
    }
    replies = net.bootstrap("join", bodies)
    for name, rep in replies.items():
        if isinstance(rep, Exception):
            raise ProtocolError(f"{name} did not join the study: {rep}")
        got = json.loads(rep)["fingerprint"]
        if got != fp:
            raise ProtocolError(f"{name} computed session fingerprint {got}, the coordinator {fp}")
    note("joined", session=session.id.hex(), fingerprint=fp, threshold=t, hospitals=names,
         rows={p.name: [p.row_offset, p.row_offset + p.rows - 1] for p in parties},
         manifest=manifest.fingerprint)
    print("\n".join(f"[mpclr coordinator] {line}" for line in manifest.table()), file=sys.stderr, flush=True)
    print(f"[mpclr coordinator] SESSION FINGERPRINT {fp} ({t}-of-{n}, preset {params.name}, {params.upload} uploads, "
          f"manifest {manifest.fingerprint}): every hospital logs the same", file=sys.stderr, flush=True)
    return DeployedFederation(net, server, researcher, session, parties, params, cfg.seed, manifest)


def run_deployed_study(grid, cfg: DeploymentConfig, study=None) -> dict:
    """The whole study over `grid`; writes result.json (or failed.json) into cfg.output and returns
    the result. `study` overrides cfg.study (a function, see the module docstring)."""
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("result.json", "failed.json", "progress.jsonl"):
        (out / stale).unlink(missing_ok=True)
    note = ProgressLog(out / "progress.jsonl")
    phases: dict[str, float] = {}
    phase = "setup"
    net = None
    fed = None
    t_all = time.perf_counter()
    try:
        # before any hospital is contacted
        check_study_preset(_params(cfg), cfg.hospitals or len(cfg.hospital_names) or None)
        fn = study or load_study(cfg.study)
        check = getattr(fn, "check_config", None)  # a study may check its options before any hospital is contacted
        if check is not None:
            check(cfg.preset, cfg.options)
        net = FlowerNetwork(grid, timeout=cfg.round_timeout, poll=cfg.poll, max_poll=cfg.max_poll,
                            log=lambda text: note("network", detail=text))
        phase = "find_hospitals"
        t0 = time.perf_counter()
        hospitals = find_hospitals(grid, net, cfg, note)
        phases[phase] = time.perf_counter() - t0
        phase = "bootstrap"
        t0 = time.perf_counter()
        fed = bootstrap(net, hospitals, cfg, note, fn)
        phases[phase] = time.perf_counter() - t0
        phase = "key_ceremony"
        t0 = time.perf_counter()
        fed.run_key_ceremony()
        phases[phase] = time.perf_counter() - t0
        note("keys_ready", seconds=round(phases[phase], 2))
        phase = "study"
        t0 = time.perf_counter()
        options = {**cfg.options, "seed": cfg.seed, "progress": note}
        result = fn(fed, options)
        phases[phase] = time.perf_counter() - t0
        unavailable = sorted(set(fed.server.unavailable) | set(fed.researcher.unavailable) | set(net.dead))
        record = {
            "status": "ok",
            "session": fed.session.id.hex(),
            "fingerprint": session_fingerprint(fed.session),
            "manifest": fed.manifest.to_json(),
            "preset": fed.params.name,
            "threshold": fed.session.threshold,
            "hospitals": [{"name": p.name, "node_id": p.node_id, "rows": p.rows, "row_offset": p.row_offset,
                           "identity": p.identity_public.hex()} for p in fed.hospitals],
            "unavailable": unavailable,
            "unavailable_why": {k: v for k, v in net.dead.items()},
            "seconds": {**phases, "total": time.perf_counter() - t_all},
            "network": net.round_summary(),
            "bytes_per_hospital": net.bytes_per_hospital(),
            "traffic": net.traffic.summary(),
            "study": result,
        }
        _atomic_json(out / "result.json", record)
        note("done", seconds=round(time.perf_counter() - t_all, 2))
        return record
    except Exception as exc:
        record = {
            "status": "failed",
            "phase": phase,
            "error": f"{type(exc).__name__}: {exc}" if not isinstance(exc, MpclrError) else str(exc),
            "unavailable": sorted(net.dead) if net else [],
            "unavailable_why": dict(net.dead) if net else {},
            "seconds": {**phases, "total": time.perf_counter() - t_all},
            "network": net.round_summary() if net else {},
            "traceback": traceback.format_exc(),
        }
        _atomic_json(out / "failed.json", record)
        note("failed", phase=phase, error=record["error"])
        raise


def make_server_app():
    """The Flower ServerApp (mpclr.deploy.apps:server_app)."""
    from flwr.serverapp import ServerApp

    server_app = ServerApp()

    @server_app.main()
    def main(grid, context):
        from .tuning import fast_object_pulls

        fast_object_pulls()
        run_deployed_study(grid, DeploymentConfig.from_run_config(context.run_config))

    return server_app
