"""A hospital's side of a deployment: its configuration, its keystore, and the Flower ClientApp.

Everything a hospital keeps stays in one folder of its own (`keystore`, mode 0700, secrets 0600):

    <keystore>/keystore-encryption.json   scrypt parameters, salt and check value (when encrypted)
    <keystore>/site/                     the hospital's long-term identity (signing and box keys), made once
    <keystore>/sessions/<id>/        one folder per study session: the Hospital's state (key share,
                                     threshold share, protocol secrets, sequence numbers), the row range
                                     the study assigned, the study manifest and what was answered against
                                     it (policy.json), and the last replies (for retried requests)
    <keystore>/audit.jsonl           the audit log: one JSON line per request answered or refused, every
                                     session (mpclr.roles.policy), for the hospital's IT to read

(mpclr.deploy.keystore_admin.FILES says what each file holds.) The secret files are encrypted under a
passphrase unless the hospital's IT opted out (`encrypt = false`); the key is derived once per process.

Nothing is kept in Flower's `context.state`. The hospital's data file is named in the SuperNode's own
configuration (`--node-config`) and is read here, at the hospital, on every message; it is never sent.

Each message is handled from scratch: resume the session's `Hospital` from its folder, load the
rows, answer, save. So a ClientApp may be a fresh process per message (Flower's default) or a
long-lived one (mpclr.deploy.worker) with the same result, and a restarted hospital picks up where it was.

Idempotency: a request that arrives again byte for byte (a retry after a lost reply) gets the reply it
got the first time, from the reply cache, instead of being refused as a replay or done twice. Except
the replies that carry a partial decryption of a ciphertext: decryption, key-switch and refresh shares
(NEVER_CACHED) are never written to disk, where they would outlive the round that needed them, and
never computed twice for one request (a second share of the same ciphertext with fresh smudging would
weaken the smudging). A retry of such a request is refused with an error saying so; the coordinator
then counts the hospital as unavailable, and a t-out-of-n round goes on without it (a new round, fresh
labels), while an n-out-of-n study stops naming the hospital.

Bootstrap (before a session exists), outside the authenticated envelope format:
  hello -> the hospital's name, identity public key, number of rows and features
  folds -> for a session about to be joined, with the study's fold count and the hospital's row offset: the
           hospital draws the session's secret fold key (kept in the session's folder, used by lr.folds) and
           answers the rows per fold of its own assignment (what lr.folds shows the server later anyway),
           for the study manifest
  join  -> the session (roster, key holders, threshold, parameter set, manifest digest), the study
           manifest and the hospital's global row offset; the hospital accepts only a built-in preset unchanged
           but for the coordinator's concrete upload mode (never "auto"; never share-keyed when its configuration
           says share-keyed-uploads = false), that passes the study check for the session's hospital count
           (mpclr.params.check_study_preset)
           and a study manifest (never "exploration"), checks it is in the roster with its own key,
           draws its key share, and logs the manifest and the session fingerprint for its IT staff to
           compare with the coordinator's
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

from ..errors import FormatError, MpclrError, ProtocolError
from ..keystore import Keystore
from ..keystore_crypto import HEADER, KeystoreKey
from ..network import Network
from ..roles.node import Session
from ..roles.policy import AuditLog, Manifest
from ..upload_mode import planned_mode
from ..wire import Identity, peek
from .hospital_config import (
    HospitalConfig,
    HospitalFailure,
    accepted_for_studies,
    hospital_passphrase,
    params_from_json,
    params_to_json,
)

__all__ = ["HospitalConfig", "HospitalFailure", "HospitalRuntime", "session_fingerprint", "params_to_json",
           "params_from_json",
           "answer", "make_client_app", "accepted_for_studies", "hospital_passphrase"]

REPLY_CACHE_SIZE = 4
NEVER_CACHED = frozenset({"decrypt.share", "pcks.share", "refresh.share"})  # replies with decryption shares


def session_fingerprint(session: Session) -> str:
    """A short digest of everything public about a session, for people to compare by phone."""
    canon = json.dumps(session.to_json(), sort_keys=True, separators=(",", ":")).encode()
    h = hashlib.sha256(b"mpclr/session/v1\x00" + canon).hexdigest()[:20].upper()
    return "-".join(h[i : i + 4] for i in range(0, 20, 4))


class _HospitalNetwork(Network):
    """A hospital only answers requests; its Hospital never starts one."""

    def register(self, node) -> None:
        pass

    def _deliver(self, recipient, message):
        raise ProtocolError("a hospital answers requests only; it does not send its own")


def _log(hospital: str, text: str) -> None:
    print(f"[mpclr hospital {hospital}] {text}", file=sys.stderr, flush=True)


class HospitalRuntime:
    """Answers bootstrap and protocol messages for one hospital (stateless between messages)."""

    def __init__(self, config: HospitalConfig, prompt: bool = False):
        self.config = config
        self.root = Path(config.keystore)
        self.audit = AuditLog(self.root / "audit.jsonl")
        self._note = ""
        self._data = None
        self._data_key = None
        self._lock = threading.Lock()
        self._prompt = prompt  # may ask for the passphrase on a terminal (run_hospital, at start)
        self._key: KeystoreKey | None = None
        self._written: dict = {}
        self._ctx_lock = threading.Lock()
        self.names: tuple[str, ...] = ()

    # --- the hospital's keystore, long-term identity and data --------------------------------------
    def key(self) -> KeystoreKey | None:
        """The keystore's encryption key, derived once per process and kept in memory only (None when the
        hospital's IT opted out and the keystore was never encrypted)."""
        if self._key is None:
            exists = (self.root / HEADER).exists()
            if not (exists or self.config.encrypt):
                return None
            passphrase = hospital_passphrase(self.config, self._prompt, new=not exists)
            try:
                self._key = KeystoreKey.open(self.root, passphrase, create=True)
            except FormatError as exc:
                hint = (" (written by an earlier mpclr or with encrypt = false): keep encrypt = false for it, or back "
                        "it up and destroy it (python -m mpclr.deploy keystore)") if "unencrypted" in str(exc) else ""
                raise HospitalFailure(f"{exc}{hint}") from None
        return self._key

    def context(self, params):
        """The parameter set's SEAL context, built once per process (under a lock: `warm` may be building it)."""
        from ..federation import seal_context

        with self._ctx_lock:
            return seal_context(params)

    def warm(self) -> None:
        """Build the SEAL contexts of the presets this hospital runs studies with (~2 s each) before a study
        asks: a hospital's process is long-lived, so its first join no longer waits for them."""
        from ..params import PRESETS

        for preset in PRESETS.values():
            if accepted_for_studies(preset):
                self.context(preset)

    def keystore(self, folder: Path, create: bool = False) -> Keystore:
        # the files this process wrote: a message's save leaves the unchanged ones (its key shares) alone
        return Keystore(folder, create=create, key=self.key(), written=self._written)

    def identity(self) -> Identity:
        ks = self.keystore(self.root / "site", create=True)
        os.chmod(self.root, 0o700)
        if not ks.has("identity", True):
            ks.put_secret("identity", Identity().export_private())
            ks.put_json("site", {"name": self.config.name, "created": time.time()})
        else:
            info = ks.get_json("site")
            if info["name"] != self.config.name:
                raise HospitalFailure(f"keystore {self.root} belongs to hospital {info['name']!r}, "
                                      f"not {self.config.name!r}")
        try:
            return Identity.from_private(ks.get_secret("identity"))
        except FormatError as exc:
            raise HospitalFailure(str(exc)) from None

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        """The hospital's rows (features, 0/1 labels), read from its own file; cached while it is unchanged.
        `self.names` then holds the features' names and the label's (the statistics protocols name columns)."""
        from .. import data as mdata

        spec = self.config.data
        path = Path(spec)
        stamp = (path.stat().st_mtime_ns, path.stat().st_size) if path.exists() else None
        key = (spec, self.config.part, self.config.label, self.config.positive, stamp)
        if self._data_key != key:
            try:
                if path.exists():
                    kw = {"label": int(self.config.label) if self.config.label.lstrip("-").isdigit()
                          else self.config.label}
                    if self.config.positive:
                        kw["positive"] = self.config.positive
                    ds = mdata.load_csv(path, **kw)
                else:
                    ds = mdata.load(spec)
            except (MpclrError, OSError, ValueError) as exc:
                raise HospitalFailure(f"cannot read the hospital's data {spec!r}: {exc}") from None
            X, y = ds.X, ds.y
            if self.config.part:
                i, n = (int(v) for v in self.config.part.split("/"))
                if not 1 <= i <= n:
                    raise HospitalFailure(f"part {self.config.part!r}: expected i/n with 1 <= i <= n")
                idx = np.array_split(np.arange(len(y)), n)[i - 1]
                X, y = X[idx], y[idx]
            label = ds.meta.get("label_name") or "y"
            self.names = (*ds.feature_names, label if label not in ds.feature_names else "label")
            self._data, self._data_key = (np.asarray(X), np.asarray(y)), key
        return self._data

    # --- dispatch -------------------------------------------------------------------------------
    def handle(self, kind: str, session_hex: str, body: bytes) -> tuple[bytes, float, bool]:
        """(reply bytes, seconds spent, whether the reply came from the cache)."""
        t0 = time.perf_counter()
        with self._lock:  # one message at a time per hospital, as the SuperNode delivers them
            try:
                if kind == "hello":
                    reply, cached = self._hello(body), False
                elif kind == "folds":
                    reply, cached = self._folds(body), False
                elif kind == "join":
                    reply, cached = self._join(body), False
                elif kind == "protocol":
                    reply, cached = self._protocol(session_hex, body)
                elif kind == "sequence":
                    reply, cached = self._sequence(session_hex, body)
                else:
                    raise HospitalFailure(f"unknown message kind {kind!r}")
            except Exception as exc:
                self._audit(kind, session_hex, body, b"", f"{type(exc).__name__}: {exc}")
                raise
            if kind not in ("protocol", "sequence") or cached and kind == "protocol":
                # a protocol request the node answered is in the log already (a sequence's: by _sequence)
                self._audit(kind, session_hex, body, reply, None, cached, self._note if kind == "join" else "")
        return reply, time.perf_counter() - t0, cached

    def _audit(self, kind, session_hex, body, reply, error, cached=False, note="") -> None:
        """Bootstrap messages, repeats answered from the reply cache, and refusals before a node answers."""
        from ..roles.policy import now_iso
        from ..wire import peek

        step, requester = kind, "coordinator (bootstrap)"
        if kind == "protocol":
            try:
                head = peek(body)
                step, requester = head.type, head.sender if cached else f"{head.sender} (unverified)"
            except Exception:
                pass
        self.audit.write({
            "time": now_iso(), "session": session_hex if kind == "protocol" else "", "hospital": self.config.name,
            "step": step, "label": "", "requester": requester, "bytes_in": len(body), "bytes_out": len(reply),
            "ciphertexts": 0, "decision": "refused" if error else "answered",
            "reason": error or note or ("repeat of a request answered before: the same reply again" if cached else ""),
        })

    def _hello(self, body: bytes) -> bytes:
        ident = self.identity()
        X, y = self.data()
        return json.dumps(
            {
                "hospital": self.config.name,
                "identity": ident.public_bytes.hex(),
                "rows": int(len(y)),
                "features": int(X.shape[1]),
                "min_cell": int(self.config.min_cell),  # its disclosure setting (public): a Table 1's manifest
                "mpclr": _version(),
            }
        ).encode()

    def _folds(self, body: bytes) -> bytes:
        """Rows per fold of the assignment lr.folds will make in the session about to be joined, for its
        manifest: the session's secret fold key is drawn now (OS CSPRNG) and kept in the session's folder,
        where the Hospital made at join takes it. Asked again for the same session, the same key."""
        from ..errors import ParameterError
        from ..plain.folds import check_fold_count
        from ..ring import SecretRandom
        from ..roles.hospital import FOLD_KEY_BYTES
        from ..training.party import fold_sizes

        req = json.loads(body)
        try:
            folds = check_fold_count(req["folds"])
        except ParameterError as exc:
            raise HospitalFailure(str(exc)) from None
        offset = int(req["row_offset"])
        folder = self._session_dir(str(req["session"]))
        if (folder / "site-session.json").exists():
            raise HospitalFailure(f"session {folder.name[:8]} is joined already: its fold sizes were asked before it")
        ks = self.keystore(folder, create=True)
        if ks.has("fold-key", True):
            key = ks.get_secret("fold-key")
        else:
            key = SecretRandom().bytes(FOLD_KEY_BYTES)
            ks.put_secret("fold-key", key)
        _, y = self.data()
        return json.dumps({"sizes": fold_sizes(y, folds, key, offset + np.arange(len(y))).tolist()}).encode()

    def _session_dir(self, session_hex: str) -> Path:
        if len(session_hex) != 32 or any(c not in "0123456789abcdef" for c in session_hex):
            raise HospitalFailure(f"malformed session id {session_hex[:40]!r}")
        return self.root / "sessions" / session_hex

    def _join(self, body: bytes) -> bytes:
        from ..evaluation import hospital as _evaluation_steps  # noqa: F401  (registers lr.encrypt_eval)
        from ..roles import Hospital
        from ..training import hospital as _training_steps  # noqa: F401  (registers lr.* training steps)

        req = json.loads(body)
        session = Session.from_json(req["session"])
        # a built-in study preset, for this many hospitals, with the coordinator's upload mode if this hospital takes it
        params = params_from_json(req["params"], session.n, self.config.share_keyed_uploads)
        try:
            manifest = Manifest.from_json(req.get("manifest"))
        except MpclrError as exc:
            raise HospitalFailure(f"the study manifest cannot be read: {exc}") from None
        if manifest.exploration:
            raise HospitalFailure("the coordinator proposed an exploration manifest (no budget): a hospital "
                                  "answers only a study's manifest")
        if session.manifest != manifest.digest:
            raise HospitalFailure("the session names another study manifest than the one proposed")
        if planned_mode(manifest) not in (None, params.upload):
            raise HospitalFailure(f"the study manifest plans {planned_mode(manifest)} uploads, the proposed parameter "
                                  f"set {params.upload} ones")
        ctx = self.context(params)
        if session.params != ctx.fingerprint:
            raise HospitalFailure("the session names another parameter set than the one proposed")
        ident = self.identity()
        name = self.config.name
        if session.roster.get(name) != ident.public_bytes:
            raise HospitalFailure(f"the session's roster does not hold this hospital's identity key under {name!r}")
        if name not in session.key_holders:
            raise HospitalFailure(f"{name} is not a key holder of this session")
        X, y = self.data()
        if int(req["rows"]) != len(y):
            raise HospitalFailure(f"the coordinator expects {req['rows']} rows from {name}; its data has {len(y)}")
        fp = session_fingerprint(session)
        self._note = (f"joined session {session.id.hex()}: study manifest {manifest.fingerprint}, "
                      f"{params.upload} uploads, session fingerprint {fp}")
        folder = self._session_dir(session.id.hex())
        ks = self.keystore(folder, create=True)
        if (folder / "site-session.json").exists():
            known = ks.get_json("site-session")
            if known["fingerprint"] != fp:
                raise HospitalFailure("this session id was joined before with different contents")
            return json.dumps({"fingerprint": fp, "again": True}).encode()  # a retried join: same answer
        dp = Hospital(name, ctx, _HospitalNetwork())
        dp.identity = ident
        dp.agree(manifest)
        dp.policy.log = self.audit
        if ks.has("fold-key", True):  # drawn when the hospital reported its fold sizes for the manifest
            dp.use_fold_key(ks.get_secret("fold-key"))
        dp.join(session)  # draws this hospital's key share, from the OS CSPRNG, here
        dp.save(ks)
        ks.put_json(
            "site-session",
            {
                "fingerprint": fp,
                "row_offset": int(req["row_offset"]),
                "rows": int(len(y)),
                "params": params_to_json(params),
                "threshold": session.threshold,
                "key_holders": list(session.key_holders),
                "manifest": manifest.fingerprint,
                "joined": time.time(),
            },
        )
        for line in manifest.table():
            _log(name, line)
        _log(name, f"joined study session {session.id.hex()[:8]} ({session.threshold}-of-{session.n}, "
                   f"preset {params.name}, key holders {', '.join(session.key_holders)}); rows "
                   f"{int(req['row_offset'])}..{int(req['row_offset']) + len(y) - 1}; "
                   f"study manifest {manifest.fingerprint}; SESSION FINGERPRINT {fp}: compare it with the "
                   f"coordinator's")
        return json.dumps({"fingerprint": fp, "again": False}).encode()

    def _sequence(self, session_hex: str, body: bytes) -> tuple[bytes, bool]:
        """Several protocol requests in one message (FlowerNetwork.request_sequences): each answered in
        order exactly as it would be alone (its checks, its policy budget, its audit record, its cache)."""
        from ..network import refused
        from .transport import pack_parts, unpack_parts

        replies, all_cached = [], True
        for part in unpack_parts(body):
            reply, cached = self._protocol(session_hex, part)
            if cached:
                self._audit("protocol", session_hex, part, reply, None, True)
            replies.append(reply)
            all_cached &= cached
            if refused(reply):
                break  # as the coordinator would stop there: the rest is not answered
        return pack_parts(replies), all_cached

    def _protocol(self, session_hex: str, body: bytes) -> tuple[bytes, bool]:
        from ..evaluation import hospital as _evaluation_steps  # noqa: F401  (registers lr.encrypt_eval)
        from ..roles import Hospital
        from ..training import hospital as _training_steps  # noqa: F401  (registers lr.* training steps)

        folder = self._session_dir(session_hex)
        if not (folder / "site-session.json").exists():
            raise HospitalFailure(f"{self.config.name} has not joined session {session_hex[:8]}")
        ks = self.keystore(folder)
        digest = hashlib.sha256(body).hexdigest()
        index = ks.get_json("reply-index") if (folder / "reply-index.json").exists() else []
        for h, name, *step in index:
            if h == digest:
                if name is None:
                    raise HospitalFailure(
                        f"{self.config.name} answered this {step[0]} request before and keeps no copy: "
                        "decryption, key-switch and refresh shares are neither stored nor computed twice for "
                        "one request (a second share of the same ciphertext would weaken its smudging); "
                        "start a new round"
                    )
                return ks.get_secret(name), True
        info = ks.get_json("site-session")
        ctx = self.context(params_from_json(info["params"], len(info["key_holders"])))
        X, y = self.data()
        if len(y) != info["rows"]:
            raise HospitalFailure(f"the hospital's data changed during the study ({info['rows']} rows, now {len(y)})")
        dp = Hospital(self.config.name, ctx, _HospitalNetwork())
        dp.load_data(X, y, info["row_offset"] + np.arange(len(y)))
        _statistics(dp, self.config, X, y, self.names)
        try:
            dp.load(ks)
        except FormatError as exc:
            raise HospitalFailure(f"the session keystore cannot be read: {exc}") from None
        reply = dp.handle(body)
        dp.save(ks)
        step = peek(reply).type  # the reply this hospital just sealed: its type is the request's
        if step in NEVER_CACHED:
            entry = [digest, None, step]  # only a note that it was answered, to refuse a retry clearly
        else:
            entry = [digest, f"reply-{digest[:16]}", step]
            ks.put_secret(entry[1], reply)
        index = [entry, *[e for e in index if e[0] != digest]]
        cached = [e for e in index if e[1] is not None]
        noted = [e for e in index if e[1] is None]
        for _, old, *_ in cached[REPLY_CACHE_SIZE:]:
            ks.delete_secret(old)
        ks.put_json("reply-index", cached[:REPLY_CACHE_SIZE] + noted[:REPLY_CACHE_SIZE])
        return reply, False


def _statistics(dp, config: HospitalConfig, X, y, names) -> None:
    """The hospital's rows as named columns, and its own disclosure settings, for mpclr.stats' protocols."""
    from ..stats.hospital import Settings, configure, give_data

    give_data(dp, np.column_stack([X, y]), names)
    configure(dp, Settings(config.glm_max_fraction, config.min_cell))


def _version() -> str:
    from ..version import __version__

    return __version__


# --- the Flower ClientApp -------------------------------------------------------------------------
_RUNTIMES: dict[HospitalConfig, HospitalRuntime] = {}


def runtime_for(node_config) -> HospitalRuntime:
    cfg = HospitalConfig.from_mapping(dict(node_config))
    if cfg not in _RUNTIMES:
        _RUNTIMES[cfg] = HospitalRuntime(cfg)
    return _RUNTIMES[cfg]


def answer(message, context):
    """Answer one Flower message: the reply Message (errors become a plain error string in it)."""
    from flwr.app import Message

    from .transport import decode_request, encode_reply

    node_config = dict(context.node_config)
    hospital = str(node_config.get("hospital-name") or node_config.get("site-name", "?"))  # site-name: older name
    if os.environ.get("MPCLR_DEPLOY_DEBUG"):
        _log(hospital, f"t={time.time():.3f} answering {message.metadata.group_id}")
    try:
        runtime = runtime_for(context.node_config)
        kind, session, body = decode_request(message.content)
        reply, seconds, cached = runtime.handle(kind, session, body)
        content = encode_reply(reply, seconds=seconds, cached=cached)
    except (MpclrError, OSError, ValueError, KeyError) as exc:
        _log(hospital, f"cannot answer: {exc}")
        content = encode_reply(error=f"hospital {hospital}: {type(exc).__name__}: {exc}")
    return Message(content, reply_to=message)


def make_client_app():
    """The Flower ClientApp (mpclr.deploy.apps:client_app)."""
    from flwr.clientapp import ClientApp

    client_app = ClientApp()

    @client_app.query()
    def query(message, context):
        return answer(message, context)

    return client_app
