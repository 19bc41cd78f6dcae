"""A whole study in one process: hospitals, a server and a researcher on one network, keys made.

`Federation` is the convenience entry point for notebooks and tests. It only wires nodes together and
starts protocols; every protocol message still travels as bytes through `network`.
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np

from .errors import ParameterError, renamed_keywords
from .evaluation import hospital as _evaluation_steps  # noqa: F401  (registers lr.encrypt_eval)
from .network import InProcessNetwork, Network
from .params import Params, get_preset
from .roles import Ciphertext, Hospital, Researcher, Server, Session
from .roles.policy import Manifest
from .seal.context import seal_context
from .training import hospital as _training_steps  # noqa: F401  (registers lr.aggregate, folds, encrypt)
from .upload_mode import for_study

__all__ = ["Federation"]

class Federation:
    """n hospitals (data providers) with one key share each, a server and a researcher.

    Parameters
    ----------
    hospitals : number of hospitals (data providers, key holders), 2..64 (`parties`: its older name,
        deprecated)
    threshold : t for t-out-of-n (any t key holders decrypt, refresh or key-switch); default n
    preset : a preset name ("fast", "deep") or a Params; its upload mode "auto" (the presets') becomes the one
        the manifest's study plan chose (mpclr.upload_mode), public-key without a study plan
    seed : fixes public randomness only (data splits, synthetic data); never key material, errors,
        smudging, masks or a hospital's fold assignment, which always come from the OS CSPRNG
    names : the hospitals' names (default hospital-1..n)
    network : a transport (default: all nodes in this process)
    rotations : rotation steps to make keys for right away
    manifest : what the hospitals agree to answer (mpclr.roles.policy.Manifest): a study's, computed from
        its plan (mpclr.manifest), or "exploration" (no budget: interactive use, never accepted by a
        deployed hospital). Default: the key ceremony and `rotations` only, so no decryption, refresh or key
        switch is answered until a study's manifest is agreed. A function of the hospitals (Hospital nodes,
        not joined yet) returning the Manifest: for a plan that needs what each hospital counts on its own
        rows before it joins (its rows per fold, mpclr.training.hospital.fold_sizes), as a hospital does at bootstrap.
    audit_dir : where each hospital appends its audit log (<audit_dir>/<name>/audit.jsonl) from the first
        request; without it the records wait in memory and go to the hospital's keystore folder
        (nodes/<name>/audit.jsonl) when the federation is saved
    """

    @renamed_keywords(parties="hospitals")
    def __init__(
        self,
        hospitals: int = 3,
        preset: str | Params = "fast",
        seed: int | None = None,
        *,
        threshold: int | None = None,
        names: list[str] | None = None,
        network: Network | None = None,
        rotations=(),
        manifest: Manifest | str | None = None,
        audit_dir=None,
    ):
        n = hospitals
        if not isinstance(n, int | np.integer) or isinstance(n, bool) or not 2 <= n <= 64:
            raise ParameterError(f"parameter hospitals must be an integer in [2, 64], got {n!r}")
        if names is not None and len(names) != n:
            raise ParameterError(f"parameter names lists {len(names)} names for {n} hospitals")
        if threshold is None:
            threshold = n
        if not isinstance(threshold, int | np.integer) or isinstance(threshold, bool) or not 1 <= threshold <= n:
            raise ParameterError(
                f"parameter threshold must be an integer in [1, hospitals={n}], got {threshold!r}"
                + (
                    " (t > n: more key holders than exist would be needed)"
                    if isinstance(threshold, int) and threshold > n
                    else ""
                )
            )
        if seed is not None and not isinstance(seed, int | np.integer):
            raise ParameterError(f"parameter seed must be an integer or None, got {seed!r}")
        self.params = get_preset(preset)
        self.seed = seed
        self.ctx = seal_context(self.params)
        self.network = network or InProcessNetwork()
        names = list(names or [f"hospital-{i + 1}" for i in range(n)])
        if len(set(names)) != len(names):
            raise ParameterError(f"parameter names must be distinct, got {names}")
        self.timings: dict[str, float] = {}
        t0 = time.perf_counter()
        self.server = Server("server", self.ctx, self.network)
        self.researcher = Researcher("researcher", self.ctx, self.network)
        self.hospitals = [Hospital(name, self.ctx, self.network) for name in names]
        self.manifest = self._manifest(manifest, int(threshold) < n, rotations)
        # "auto" uploads: the mode the study's plan chose (mpclr.upload_mode), before the session binds it
        resolved = for_study(self.params, self.manifest)
        if resolved is not self.params:
            self.params, self.ctx = resolved, seal_context(resolved)
            for node in (self.server, self.researcher, *self.hospitals):
                node.rebind(self.ctx)
        for p in self.hospitals:
            p.agree(self.manifest)
            if audit_dir is not None:
                p.policy.log.attach(os.path.join(audit_dir, p.name, "audit.jsonl"))
        nodes = [self.server, self.researcher, *self.hospitals]
        self.session = Session(
            id=os.urandom(16),
            params=self.ctx.fingerprint,
            roster={node.name: node.identity.public_bytes for node in nodes},
            key_holders=tuple(names),
            threshold=int(threshold),
            server=self.server.name,
            researcher=self.researcher.name,
            manifest=self.manifest.digest,
        )
        for node in nodes:
            node.join(self.session)
        self.timings["setup"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.server.run_key_ceremony()
        if threshold < n:
            self.server.run_threshold_setup()
        self.timings["key_ceremony"] = time.perf_counter() - t0
        if rotations:
            self.generate_rotation_keys(rotations)

    def __repr__(self) -> str:
        return (
            f"Federation(hospitals={len(self.hospitals)}, threshold={self.session.threshold}, "
            f"preset={self.params.name!r})"
        )

    def _manifest(self, manifest, threshold_setup: bool, rotations) -> Manifest:
        if manifest is None:
            from .protocols.rotation import RotationKeyGen

            gkg = RotationKeyGen(self.ctx)
            elts = set()
            for step in rotations:
                try:
                    elts.add(gkg.galois_element(int(step)))
                except ValueError:
                    pass  # the server refuses it with the step named
            elts = sorted(elts)
            rounds = [len(elts[i : i + 16]) for i in range(0, len(elts), 16)]
            return Manifest.keys_only(threshold_setup, rounds)
        if isinstance(manifest, str) and manifest == "exploration":
            return Manifest.exploration_only()
        if callable(manifest):
            manifest = manifest(list(self.hospitals))
        if not isinstance(manifest, Manifest):
            raise ParameterError(
                f"parameter manifest must be a Manifest, 'exploration', None or a function of the hospitals "
                f"returning a Manifest, got {manifest!r}"
            )
        return manifest

    @property
    def n(self) -> int:
        return len(self.hospitals)

    @property
    def parties(self) -> list[Hospital]:
        """Deprecated: the older name of `hospitals`."""
        warnings.warn("Federation.parties is now Federation.hospitals", DeprecationWarning, stacklevel=2)
        return self.hospitals

    def party(self, who) -> Hospital:
        """Deprecated: the older name of `hospital`."""
        warnings.warn("Federation.party(...) is now Federation.hospital(...)", DeprecationWarning, stacklevel=2)
        return self.hospital(who)

    def hospital(self, who) -> Hospital:
        """The hospital with this index or name."""
        if isinstance(who, int | np.integer):
            return self.hospitals[who]
        for p in self.hospitals:
            if p.name == who:
                return p
        raise ParameterError(f"no hospital named {who!r}")

    @property
    def threshold(self) -> int:
        return self.session.threshold

    def generate_rotation_keys(self, steps, by=None, level: int | None = None) -> list[int]:
        """Collective rotation keys for these steps, valid at every level or (level=L) only at levels up to L:
        a fraction of the bytes (mpclr.protocols.rotation)."""
        t0 = time.perf_counter()
        elts = self.server.generate_rotation_keys(steps, by, level)
        self.timings["rotation_keys"] = self.timings.get("rotation_keys", 0.0) + time.perf_counter() - t0
        return elts

    def generate_rotation_key_sets(self, sets, by=None) -> list[int]:
        """Several (steps, level) sets of rotation keys in shared rounds (Server.generate_rotation_key_sets)."""
        t0 = time.perf_counter()
        elts = self.server.generate_rotation_key_sets(sets, by)
        self.timings["rotation_keys"] = self.timings.get("rotation_keys", 0.0) + time.perf_counter() - t0
        return elts

    def decrypt(self, c: Ciphertext, by=None, *, label: str = "", level: int | None = 0) -> np.ndarray:
        """Threshold decryption of c by the key holders `by` (indices or names; default: all), at the last
        prime (level 0) or, with level=None, at c's own level (for values too large for q_0)."""
        return self.researcher.decrypt(c, None if by is None else list(by), label=label, level=level)

    def decrypt_many(self, cs, by=None, *, labels=None, level: int | None = 0) -> list[np.ndarray]:
        """Threshold decryption of several ciphertexts in one round (see `decrypt`)."""
        return self.researcher.decrypt_many(cs, None if by is None else list(by), labels=labels, level=level)

    def refresh(self, c: Ciphertext, by=None, **kwargs) -> Ciphertext:
        """Collective refresh of c back to the top level (see Server.refresh)."""
        return self.server.refresh(c, by, **kwargs)

    def receive(self, c: Ciphertext, by=None, *, label: str = "") -> np.ndarray:
        """c switched by the key holders `by` to the researcher's own key and decrypted by the researcher
        only (the server sees a ciphertext it cannot decrypt)."""
        return self.researcher.receive(c, by, label=label)

    def receive_many(self, cs, by=None, *, labels=None) -> list[np.ndarray]:
        """Several results switched to the researcher's key in one round (see `receive`)."""
        return self.researcher.receive_many(cs, by, labels=labels)

    def traffic(self) -> dict:
        return self.network.traffic.summary()

    # --- persistence: every node to its own keystore folder --------------------------------------
    def save(self, path, passphrase: str | None = None) -> None:
        """Write each node's state to path/nodes/<name>/ (its own folder; secrets in 0600 files) and the
        federation's public description to path/federation.json, so a later step can resume.

        With a passphrase every node's folder is its own encrypted keystore (its own salt; secrets
        encrypted, mpclr.keystore_crypto); without one the secrets are plain 0600 files."""
        import json
        from pathlib import Path

        from .keystore import Keystore

        root = Path(path)
        for node in [self.server, self.researcher, *self.hospitals]:
            node.save(Keystore.open(root / "nodes" / node.name, passphrase, create=True))
        desc = {
            "params": self.params.to_json(),
            "seed": self.seed,
            "hospitals": [q.name for q in self.hospitals],
            "timings": self.timings,
        }
        (root / "federation.json").write_text(json.dumps(desc, indent=1))

    @classmethod
    def load(cls, path, network: Network | None = None, passphrase: str | None = None) -> Federation:
        """Resume a federation written by `save` (no new key ceremony; same session, keys and ciphertexts);
        `passphrase` when it was saved with one."""
        import json
        from pathlib import Path

        from .keystore import Keystore

        root = Path(path)
        try:
            desc = json.loads((root / "federation.json").read_text())
        except FileNotFoundError:
            raise ParameterError(f"{root} holds no saved federation (federation.json missing)") from None
        with warnings.catch_warnings():
            if desc["params"].get("allow_insecure"):
                warnings.simplefilter("ignore")
            params = Params.from_json(desc["params"])
        fed = cls.__new__(cls)
        fed.params = params
        fed.seed = desc["seed"]
        fed.ctx = seal_context(params)
        fed.network = network or InProcessNetwork()
        fed.timings = dict(desc.get("timings", {}))
        fed.server = Server("server", fed.ctx, fed.network)
        fed.researcher = Researcher("researcher", fed.ctx, fed.network)
        names = desc["hospitals"] if "hospitals" in desc else desc["parties"]  # "parties": saved before the rename
        fed.hospitals = [Hospital(name, fed.ctx, fed.network) for name in names]
        for node in [fed.server, fed.researcher, *fed.hospitals]:
            node.load(Keystore.open(root / "nodes" / node.name, passphrase))
        fed.session = fed.server.session
        fed.manifest = fed.hospitals[0].policy.manifest
        return fed

    def close(self) -> None:
        self.network.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
