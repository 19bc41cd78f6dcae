"""A hospital's configuration (hospital.toml's keys, its passphrase) and the one rule for the parameter sets it
accepts from a coordinator: a built-in study preset, unchanged but for the coordinator's concrete upload mode."""

from __future__ import annotations

import getpass
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import MpclrError
from ..keystore_crypto import PASSPHRASE_ENV

__all__ = ["HospitalConfig", "HospitalFailure", "hospital_passphrase", "params_to_json", "params_from_json",
           "accepted_for_studies"]


class HospitalFailure(MpclrError):
    """This hospital cannot answer (its configuration, data or keystore): sent back as a plain error."""


def params_to_json(p) -> dict:
    """A parameter set as the coordinator proposes it (never with an insecure opt-in)."""
    return {k: v for k, v in p.to_json().items() if k != "allow_insecure"}


def _same(got, want) -> bool:
    """Equal as JSON carries them (a tuple arrives as a list), and a bool never stands for a number."""
    if isinstance(want, tuple):
        return isinstance(got, list | tuple) and len(got) == len(want) and all(_same(a, b) for a, b in zip(got, want))
    return (type(got) is bool) == (type(want) is bool) and got == want


def accepted_for_studies(p, hospitals: int | None = None) -> bool:
    """The one rule for which built-in presets a hospital runs a study with: 128-bit secure (HE standard)
    and passing mpclr.params' study check (a study preset whose smudging is sized against its measured
    noise, for this many hospitals; 64-bit refresh masks), the check the coordinator, CLI and notebooks run."""
    from ..params import study_problems

    return bool(p.is_secure) and not study_problems(p, hospitals)


# the upload modes a hospital takes from the coordinator: both reviewed (mpclr.protocols.upload), never "auto",
# which the coordinator resolves from the study's plan before proposing the set (mpclr.upload_mode)
CHOSEN_BY_COORDINATOR = {"upload": ("share-keyed", "public-key")}


def params_from_json(d: dict, hospitals: int | None = None, share_keyed: bool = True):
    """The built-in preset the coordinator names, only if it may run a study with `hospitals` hospitals
    (accepted_for_studies) and every field it proposes equals the preset's (compared field by field over
    all of Params, so a new field is pinned too): a coordinator cannot lower the smudging, the refresh
    masks or anything else. Refused with the field or the study check's reason named otherwise. Except
    the upload mode: the coordinator's concrete choice (CHOSEN_BY_COORDINATOR), share-keyed only when
    this hospital accepts it (`share_keyed`, its configuration's share-keyed-uploads)."""
    from dataclasses import fields

    from ..errors import ParameterError
    from ..params import PRESETS, Params, check_study_preset

    if not isinstance(d, dict):
        raise HospitalFailure(f"the proposed parameter set is not a JSON object: {str(d)[:80]!r}")
    name = d.get("name")
    preset = PRESETS.get(name) if isinstance(name, str) else None
    if preset is None:
        raise HospitalFailure(f"the coordinator proposed parameter set {name!r}; this hospital runs only the built-in "
                              f"presets {sorted(PRESETS)}")
    if not preset.is_secure:
        raise HospitalFailure(f"preset {name!r} is below 128-bit security: this hospital runs no study on it")
    try:
        check_study_preset(preset, hospitals)
    except ParameterError as exc:
        raise HospitalFailure(f"this hospital refuses the session: {exc}") from None
    if d.get("allow_insecure"):
        raise HospitalFailure("the coordinator proposed an insecure parameter set (allow_insecure): refused")
    known = {f.name for f in fields(Params)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise HospitalFailure(f"the proposed parameter set has fields this hospital does not know: {unknown}")
    for f in fields(Params):
        if f.name == "allow_insecure":
            continue
        want = getattr(preset, f.name)
        if f.name not in d:
            raise HospitalFailure(f"the proposed parameter set lacks field {f.name} (preset {name}: {want!r})")
        got = d[f.name]
        if f.name in CHOSEN_BY_COORDINATOR:
            preset = preset.with_(**{f.name: _chosen(f.name, got, share_keyed)})
        elif not _same(got, want):
            raise HospitalFailure(f"parameter {f.name} = {got!r} differs from preset {name}'s {want!r}: "
                                  f"this hospital runs "
                              f"the built-in presets unchanged")
    return preset


def _chosen(field: str, got, share_keyed: bool):
    allowed = CHOSEN_BY_COORDINATOR[field]
    if got == "auto":
        raise HospitalFailure(f"parameter {field} = 'auto' is unresolved: the coordinator resolves it from the "
                              f"study's plan before the session; this hospital takes {' or '.join(allowed)}")
    if not isinstance(got, str) or got not in allowed:
        raise HospitalFailure(f"parameter {field} = {got!r} is not a mode this hospital runs: "
                              f"{' or '.join(allowed)}")
    if got == "share-keyed" and not share_keyed:
        raise HospitalFailure(f"parameter {field} = 'share-keyed': this hospital's configuration accepts only "
                              f"public-key uploads (share-keyed-uploads = false)")
    return got


@dataclass(frozen=True)
class HospitalConfig:
    """What a hospital is told by its own IT, never by the coordinator.

    name : the hospital's name in studies (hospital-1, ...), the same the coordinator lists
    keystore : the hospital's private folder (created 0700)
    data : the hospital's rows: a path to a delimited file (label in the last column unless `label` says
        otherwise) or a built-in set ("breast_cancer", "synthetic:NxD", ...), see mpclr.data.load
    part : "i/n" to use only the i-th (1-based) of n contiguous parts of `data` (demos and tests,
        where every hospital reads the same built-in set)
    label, positive : passed to mpclr.data.load_csv for files
    encrypt : keep the keystore's secrets encrypted at rest (the default; False only for test deployments)
    passphrase_file : a file (0600) holding the keystore's passphrase; else MPCLR_KEYSTORE_PASSPHRASE
    glm_max_fraction, min_cell : the hospital's disclosure settings for the statistics protocols
        (mpclr.stats.hospital.Settings: a model's parameters at most this fraction of its rows; the
        smallest pooled cell a table shows)
    share_keyed_uploads : accept a study whose coordinator chose share-keyed uploads (the default); False:
        public-key uploads only (README, "Share-keyed uploads": a substituted decryption could reveal the
        hospital's upload secret, which decrypts its own uploads)
    """

    name: str
    keystore: str
    data: str
    part: str = ""
    label: str = "last"
    positive: str = ""
    encrypt: bool = True
    passphrase_file: str = ""
    glm_max_fraction: float = 0.33
    min_cell: int = 5
    share_keyed_uploads: bool = True

    KEYS = ("hospital-name", "keystore", "data", "part", "label", "positive", "encrypt", "passphrase-file",
            "glm-max-fraction", "min-cell", "share-keyed-uploads")

    @classmethod
    def from_mapping(cls, m) -> HospitalConfig:
        m = dict(m)
        if str(m.get("site-name", "") or "") and not str(m.get("hospital-name", "") or ""):
            m["hospital-name"] = m["site-name"]  # the key's older name (a SuperNode started before the rename)
        missing = [k for k in ("hospital-name", "keystore", "data") if not str(m.get(k, "") or "")]
        if missing:
            raise HospitalFailure(
                f"the hospital configuration lacks {', '.join(missing)} (--node-config of the SuperNode)")
        return cls(
            name=str(m["hospital-name"]),
            keystore=str(m["keystore"]),
            data=str(m["data"]),
            part=str(m.get("part", "") or ""),
            label=str(m.get("label", "last") or "last"),
            positive=str(m.get("positive", "") or ""),
            encrypt=_flag(m.get("encrypt", True), "encrypt"),
            passphrase_file=str(m.get("passphrase-file", "") or ""),
            glm_max_fraction=_setting(m, "glm-max-fraction", float, 0.33),
            min_cell=_setting(m, "min-cell", int, 5),
            share_keyed_uploads=_flag(m.get("share-keyed-uploads", True), "share-keyed-uploads"),
        )

    def node_config(self) -> str:
        """The value of flower-supernode's --node-config for this hospital."""
        pairs = {"hospital-name": self.name, "keystore": self.keystore, "data": self.data, "part": self.part,
                 "label": self.label, "positive": self.positive, "passphrase-file": self.passphrase_file}
        if (self.glm_max_fraction, self.min_cell) != (0.33, 5):  # the disclosure settings, when not the defaults
            pairs.update({"glm-max-fraction": self.glm_max_fraction, "min-cell": self.min_cell})
        text = " ".join(f"{k}={json.dumps(v)}" for k, v in pairs.items() if v)
        return text + ("" if self.encrypt else " encrypt=false") + \
            ("" if self.share_keyed_uploads else " share-keyed-uploads=false")


def _setting(m, key: str, kind, default):
    """A disclosure setting of the hospital's configuration, checked as mpclr.stats checks it."""
    from ..errors import ParameterError
    from ..stats.hospital import Settings

    value = m.get(key, default)
    try:
        value = kind(default if value in (None, "") else value)
        Settings(**{key.replace("-", "_"): value})
    except (TypeError, ValueError, ParameterError) as exc:
        raise HospitalFailure(f"the hospital configuration's {key}: {exc}") from None
    return value


def _flag(value, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("true", "false", "1", "0", "yes", "no"):
        raise HospitalFailure(f"the hospital configuration's {name} must be true or false, not {value!r}")
    return text in ("true", "1", "yes")


def hospital_passphrase(config: HospitalConfig, prompt: bool = False, new: bool = False) -> str:
    """The keystore's passphrase: from `passphrase_file`, else the environment, else (only when asked
    to and a terminal is attached) a prompt; otherwise an error saying how to give one."""
    if config.passphrase_file:
        path = Path(config.passphrase_file)
        try:
            # others' bits only: a systemd credential (0400 plus a read ACL for the service) shows group r
            if os.stat(path).st_mode & 0o026:
                raise HospitalFailure(f"the passphrase file {path} is readable or writable by others: chmod 600 it")
            return path.read_text().rstrip("\r\n")
        except OSError as exc:
            raise HospitalFailure(f"cannot read the passphrase file {path}: {exc}") from None
    if os.environ.get(PASSPHRASE_ENV):
        return os.environ[PASSPHRASE_ENV]
    if prompt and sys.stdin is not None and sys.stdin.isatty():
        text = getpass.getpass(f"passphrase for the keystore {config.keystore}: ")
        if new and getpass.getpass("the same passphrase again: ") != text:
            raise HospitalFailure("the two passphrases differ")
        return text
    raise HospitalFailure(
        f"the keystore {config.keystore} of {config.name} is encrypted at rest and no passphrase is available: "
        f"set {PASSPHRASE_ENV} in the hospital's environment, or name a file holding it (mode 0600) with "
        f"passphrase-file = \"...\" under [hospital] in the hospital's configuration, or start the hospital from a "
        f"terminal "
        f"to be asked; only for a test deployment, encrypt = false under [hospital] keeps the keystore unencrypted")
