"""A hospital's IT and its node's state: list, back up and destroy a keystore, one command each.

    python -m mpclr.deploy keystore list    --config /etc/mpclr/hospital.toml      (or a keystore folder)
    python -m mpclr.deploy keystore backup  --config ... --output /backup/mpclr-hospital-2.tar
    python -m mpclr.deploy keystore destroy --config ... [--session ID] --yes

None of them needs the passphrase: `list` reads only public files and file headers, `backup` copies the
files as they are (encrypted files stay encrypted), `destroy` overwrites and removes. What each file
holds is the table FILES below, the same one docs/deployment.md prints; a file it does not describe is
listed as such, never guessed.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import stat
import tarfile
import time
from pathlib import Path

from ..errors import MpclrError
from ..keystore_crypto import HEADER, is_sealed

__all__ = ["FILES", "describe", "inventory", "format_inventory", "backup", "destroy", "KeystoreAdminError"]

# (file name pattern, secret?, what the file holds). Secret files are the ones written by put_secret.
FILES = [
    (HEADER, False, "how the secret files are encrypted: scrypt parameters, this keystore's random salt and a "
                    "check value to recognise a wrong passphrase (no key, nothing secret)"),
    ("site.json", False, "the hospital's name and when its identity was made"),
    ("secret-identity.bin", True, "the node's identity private keys (Ed25519 signing, X25519 key agreement): "
                                  "sign its messages and open what other nodes sealed for it"),
    ("node.json", False, "the node's name and role, the study session (roster of identity public keys, key "
                         "holders, threshold, parameter fingerprint) and the message sequence numbers sent and "
                         "seen (replay protection)"),
    ("site-session.json", False, "what the hospital agreed to when it joined the study: session fingerprint, its "
                                 "row offset and row count, parameter set, threshold, key holders, join time"),
    ("data-provider.json", False, "protocol state: the common random string's seed, refresh labels already "
                                  "used, key-ceremony commitments in progress, the fold of each of its rows, "
                                  "and the kind (categorical or continuous) of each variable a Table 1 used"),
    ("secret-key-share.bin", True, "the hospital's share of the collective secret key (decrypting needs the "
                                   "shares of all key holders, or of t of them in a t-out-of-n study)"),
    ("secret-threshold-share.bin", True, "the hospital's Shamir share of the collective secret key "
                                         "(t-out-of-n studies)"),
    ("secret-upload-secret.bin", True, "the secret the hospital encrypts its uploads under (share-keyed uploads): "
                                       "it decrypts only the hospital's own uploads, not the collective key's"),
    ("secret-pending-crs_nonce.bin", True, "key ceremony: the hospital's nonce for the common random string, "
                                           "between commit and reveal"),
    ("secret-pending-cpk_share.bin", True, "key ceremony: the hospital's public-key share, between commit and "
                                           "reveal"),
    ("secret-pending-shamir_own.bin", True, "key ceremony: the Shamir share the hospital dealt to itself, until "
                                            "the threshold set-up completes"),
    ("secret-pending-rlk_u.bin", True, "key ceremony: the hospital's ephemeral secret between the two rounds "
                                       "of the relinearization key"),
    ("public-key.bin", False, "the collective public key (public)"),
    ("researcher-key.bin", False, "the researcher's public key, to which results are switched (public)"),
    ("reply-index.json", False, "digests of the last requests answered and the names of their cached replies"),
    ("secret-reply-*.bin", True, "a recent reply as it was sent, given again to a retried request instead of "
                                 "answering twice; kept as a secret because a reply can carry decryption shares "
                                 "meant for one recipient"),
    ("secret-fold-key.bin", True, "the secret randomness behind the hospital's fold assignment (which of its rows "
                                  "tests which fold model), kept so that a resumed study deals the same folds"),
    ("answered-c1.bin", False, "16-byte digests of every c1 the hospital has multiplied its key share by "
                               "(decryption, key switch, refresh): a c1 asked again is refused"),
    ("request-guard.json", False, "key-ceremony checks in progress: the commitments the hospital saw, the digest "
                                  "of its relinearization round-1 share and its signed check of the aggregate"),
    ("secret-pending-rlk_share.bin", True, "key ceremony: the hospital's relinearization round-1 share, kept "
                                           "until it has checked the aggregate (rlk.check)"),
    ("policy.json", False, "the study manifest the hospital agreed to at join and what it has answered against "
                           "each of its budgets (rounds, ciphertexts, values), so a restarted node goes on counting"),
    ("audit.jsonl", False, "the hospital's audit log: one line per request answered or refused (time, session, "
                           "step, label, requester, sizes, decision, reason); names and counts, no key, share or row"),
    # the other roles of an in-process federation (Federation.save: nodes/<name>/)
    ("federation.json", False, "a saved federation's public description: parameters, seed, hospitals, timings"),
    ("server.json", False, "the server's state: CRS seed, refresh counter, its stored ciphertexts' sizes"),
    ("relin-key.bin", False, "the collective relinearization key (an evaluation key, public)"),
    ("galois-keys.bin", False, "the collective rotation keys (evaluation keys, public)"),
    ("ct-*.bin", False, "a ciphertext the server stores (encrypted under the collective key)"),
    ("researcher.json", False, "the researcher's audit trail of what it decrypted, and its own key's digest"),
    ("secret-own-secret-key.bin", True, "the researcher's own secret key (results switched to it)"),
    ("own-public-key.bin", False, "the researcher's own public key"),
    ("*.tmp", None, "a file being written (left behind by a stop in the middle of a write)"),
]

SESSION = re.compile(r"^[0-9a-f]{32}$")


class KeystoreAdminError(MpclrError):
    pass


def describe(name: str) -> tuple[bool | None, str] | None:
    """(secret?, what it holds) for a file name, from FILES; None for a file mpclr does not write."""
    for pattern, secret, text in FILES:
        if fnmatch.fnmatchcase(name, pattern):
            return secret, text
    return None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def inventory(root) -> dict:
    """Every folder and file under a keystore root: sizes, modes, what each holds, whether encrypted."""
    root = Path(root)
    if not root.is_dir():
        raise KeystoreAdminError(f"keystore {root} does not exist")
    header = _read_json(root / HEADER) if (root / HEADER).exists() else None
    folders = []
    for here, dirs, names in os.walk(root):
        dirs.sort()
        folder = Path(here)
        rel = folder.relative_to(root).as_posix()
        files = []
        for name in sorted(names):
            path = folder / name
            st = path.lstat()
            known = describe(name)
            secret = name.startswith("secret-")
            with open(path, "rb") as fh:
                sealed = is_sealed(fh.read(16))
            files.append({"name": name, "bytes": st.st_size, "mode": oct(stat.S_IMODE(st.st_mode))[2:],
                          "secret": secret, "encrypted": sealed,
                          "holds": known[1] if known else "not a file mpclr writes"})
        entry = {"folder": rel, "mode": oct(stat.S_IMODE(folder.stat().st_mode))[2:], "files": files,
                 "bytes": sum(f["bytes"] for f in files)}
        if folder.parent.name == "sessions" and SESSION.match(folder.name):
            info = _read_json(folder / "site-session.json")
            entry["session"] = folder.name
            entry["study"] = {k: info[k] for k in ("fingerprint", "threshold", "key_holders", "row_offset", "rows")
                              if k in info}
            if "params" in info:
                entry["study"]["preset"] = info["params"].get("name")
            if "joined" in info:
                entry["study"]["joined"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["joined"]))
        folders.append(entry)
    return {"root": str(root), "encrypted": header, "folders": folders,
            "bytes": sum(f["bytes"] for f in folders),
            "plaintext_secrets": [f"{e['folder']}/{f['name']}" for e in folders for f in e["files"]
                                  if f["secret"] and not f["encrypted"]]}


def format_inventory(inv: dict) -> str:
    h = inv["encrypted"]
    lines = [f"keystore {inv['root']}: {inv['bytes'] / 1e6:.2f} MB, "
             + (f"secrets encrypted at rest (scrypt n={h.get('n')} r={h.get('r')} p={h.get('p')}, {h.get('aead')})"
                if h else "NOT ENCRYPTED at rest")]
    if inv["plaintext_secrets"]:
        lines.append(f"  unencrypted secret files: {len(inv['plaintext_secrets'])}")
    for e in inv["folders"]:
        title = f"{e['folder'] or '.'}/ (mode {e['mode']}, {len(e['files'])} files, {e['bytes'] / 1e6:.2f} MB)"
        if "session" in e:
            s = e["study"]
            title = (f"session {e['session']}: joined {s.get('joined', '?')}, fingerprint {s.get('fingerprint', '?')}, "
                     f"preset {s.get('preset', '?')}, {s.get('threshold', '?')}-of-{len(s.get('key_holders', []))}, "
                     f"rows {s.get('row_offset', '?')}+{s.get('rows', '?')}\n  " + title)
        lines.append(title)
        for f in e["files"]:
            state = ("encrypted" if f["encrypted"] else "PLAINTEXT") if f["secret"] else "public"
            lines.append(f"    {f['name']:<32} {f['bytes']:>11,} B  {f['mode']}  {state:<9}  {f['holds']}")
    return "\n".join(lines)


def backup(root, output) -> dict:
    """One tar archive of the whole keystore, files as they are (encrypted files stay encrypted; the
    header with the salt goes along, so a restored copy opens with the same passphrase). Written 0600."""
    root, output = Path(root).resolve(), Path(output).resolve()
    inv = inventory(root)
    if output == root or root in output.parents:
        raise KeystoreAdminError(f"the backup {output} would be inside the keystore {root} itself")
    tmp = output.with_name(output.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh, tarfile.open(fileobj=fh, mode="w") as tar:
        for e in inv["folders"]:
            folder = root / e["folder"]
            if e["folder"] != ".":
                tar.add(folder, arcname=e["folder"], recursive=False)
            for f in e["files"]:
                tar.add(folder / f["name"], arcname=(Path(e["folder"]) / f["name"]).as_posix(), recursive=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, output)
    return {"archive": str(output), "bytes": output.stat().st_size,
            "files": sum(len(e["files"]) for e in inv["folders"]),
            "encrypted": inv["encrypted"] is not None, "plaintext_secrets": inv["plaintext_secrets"]}


def _overwrite(path: Path) -> None:
    """Replace the file's bytes in place with random ones, on disk (fsync), before it is unlinked."""
    size = path.stat().st_size
    with open(path, "r+b", buffering=0) as fh:
        done = 0
        while done < size:
            done += fh.write(os.urandom(min(1 << 20, size - done)))
        os.fsync(fh.fileno())


def session_folder(root, session: str) -> Path:
    """The session folder for a full id or a unique prefix of at least 8 characters (as the logs show)."""
    base = Path(root) / "sessions"
    if len(session) < 8 or not re.fullmatch(r"[0-9a-f]+", session):
        raise KeystoreAdminError(f"session {session!r}: give the session id (at least its first 8 hex characters)")
    found = sorted(p for p in base.glob(f"{session}*") if p.is_dir() and SESSION.match(p.name)) \
        if base.is_dir() else []
    if len(found) != 1:
        raise KeystoreAdminError(f"session {session!r}: {'no' if not found else len(found)} matching session "
                                 f"folders under {base}")
    return found[0]


def destroy(root, session: str | None = None) -> dict:
    """Remove one session's folder, or the whole keystore: every secret file (and the encryption header)
    overwritten with random bytes and synced first, then everything unlinked."""
    root = Path(root)
    target = session_folder(root, session) if session else root
    if not target.is_dir():
        raise KeystoreAdminError(f"keystore {target} does not exist")
    secrets_, others = [], []
    for here, _, names in os.walk(target):
        for name in names:
            path = Path(here) / name
            if path.is_symlink() or not path.is_file():
                others.append(path)
            elif name.startswith("secret-") or name == HEADER:
                secrets_.append(path)
            else:
                others.append(path)
    secrets_.sort(key=lambda p: p.name == HEADER)  # the header (the salt) last
    for path in secrets_:
        _overwrite(path)
        path.unlink()
    shutil.rmtree(target)
    return {"removed": str(target), "overwritten": len(secrets_), "unlinked": len(secrets_) + len(others)}
