"""What notebook 01 records about a key ceremony: timings, traffic per node and message type, key sizes.

keys.json keeps only public facts about the keys. The keys themselves go to <run>/federation/, one
keystore folder per node (mpclr.notebooks.pipeline.save_federation): each hospital's secret share stays in
its own folder, in 0600 files, and the later steps resume the federation from there.
"""

from __future__ import annotations

import hashlib

from ..federation import Federation

__all__ = ["ceremony_record"]

_PHASES = {"public_key": "CRS + public key", "relin_key": "relinearization key"}


def ceremony_record(fed: Federation, rotation_steps=()) -> dict:
    """Public facts of `fed`'s key ceremony (after its rotation keys, if any, were made)."""
    traffic = fed.traffic()
    timings = {"setup": fed.timings.get("setup", 0.0)}
    timings.update({_PHASES.get(k, k): v for k, v in fed.server.timings.items() if k != "rotation_keys"})
    if "key_ceremony" in fed.timings:
        rest = fed.timings["key_ceremony"] - sum(v for k, v in timings.items() if k != "setup")
        if rest > 1e-3:
            timings["other setup"] = rest
    if fed.timings.get("rotation_keys"):
        timings["rotation_keys"] = fed.timings["rotation_keys"]
    pk = fed.server.public_key or b""
    hospitals = [p.name for p in fed.hospitals]
    sent = {h: traffic["by_sender"].get(h, {"bytes": 0})["bytes"] for h in hospitals}
    return {
        "key_holders": hospitals,
        "threshold": fed.session.threshold,
        "parameter_set": fed.params.describe(),
        "rotation_steps": [int(s) for s in rotation_steps],
        "galois_elements": fed.server.galois_elements,
        "public_key": {"bytes": len(pk), "sha256": hashlib.sha256(pk).hexdigest()},
        # what the hospitals agreed to answer in the later steps (mpclr.roles.policy)
        "manifest": {"fingerprint": fed.manifest.fingerprint, "table": fed.manifest.table()[1:],
                     "json": fed.manifest.to_json()} if getattr(fed, "manifest", None) else None,
        "timings": {k: round(float(v), 4) for k, v in timings.items()},
        "traffic": traffic,
        "summary": {
            "key_ceremony_s": round(float(fed.timings.get("key_ceremony", 0.0)), 4),
            "rotation_keys_s": round(float(fed.timings.get("rotation_keys", 0.0)), 4),
            "rotation_keys": len(fed.server.galois_elements),
            "total_mb": round(traffic["total_bytes"] / 1e6, 3),
            "mb_sent_per_hospital": round(max(sent.values()) / 1e6, 3),
            "public_key_kb": round(len(pk) / 1e3, 1),
        },
    }
