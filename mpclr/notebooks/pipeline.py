"""What the study steps 01-05 share: the federation saved and resumed between steps, the study manifest, the
encrypted study saved and loaded. Each step's own logic is in its module (ceremony, step02_data,
step02b_table, step03_training, step04_evaluation, step05_comparison).

The steps hand each other, in the run folder:

    federation/        every node's own keystore folder (nodes/<name>/: state, public keys, and the
                       node's secrets in 0600 files, encrypted when MPCLR_KEYSTORE_PASSPHRASE is set in
                       the environment) and federation.json; 01 writes it after the key
                       ceremony, and every later step resumes it (`resume_federation`) and saves it again,
                       so the keys, the session, the message counters and the researcher's audit trail
                       carry on from step to step: no step runs a ceremony of its own
    encrypted_cv/      the encrypted study: public layout, fold ids, scaling, the hospitals' ciphertexts
                       (02), then the encrypted fold models (03)
    <step>.json        each step's record, with a "summary" of flat metrics for batch runs

A hospital's rows never go into the run folder: each step that needs them has every hospital load its
own rows again from the data source (`Study.hospital_data`), as a real hospital reads its own database.

What is only possible in a simulation is said where it happens: the plaintext twin and scikit-learn
(03, 05) need the pooled rows, which nobody holds in a real study.
"""

from __future__ import annotations

import hashlib
import os

from ..errors import DataError
from ..federation import Federation
from ..keystore import Keystore
from ..keystore_crypto import PASSPHRASE_ENV
from ..upload_mode import AUTO
from .rundir import RunFolder
from .study import HospitalData, Study

__all__ = [
    "FEDERATION",
    "ENCRYPTED",
    "STUDY_FIGURES",
    "save_federation",
    "resume_federation",
    "study_rotation_steps",
    "study_manifest",
    "keystore_rows",
    "save_encrypted",
    "load_encrypted",
]

FEDERATION = "federation"
ENCRYPTED = "encrypted_cv"

# The source study's figures (Lu et al., J Med Internet Res 2020;22(12):e22555; hardware not stated).
STUDY_FIGURES = {
    "rows": 49152,
    "features": 10,
    "folds": 10,
    "training_s": 7 * 60.0,
    "evaluation_s": 20 * 60.0,
    "source": "Lu et al. 2020 (threshold HE, client-server; hardware not stated)",
}


def _sha256(data: bytes | None) -> str:
    return hashlib.sha256(data or b"").hexdigest()


# ================================================================================================ federation
def _passphrase() -> str | None:
    """The run folder's keystores are encrypted when the environment gives a passphrase (optional in a
    simulation: every node's folder is on the one machine running it)."""
    return os.environ.get(PASSPHRASE_ENV) or None


def save_federation(fed: Federation, run: RunFolder):
    """Every node to its own keystore folder under <run>/federation/ (see the module docstring)."""
    path = run.path / FEDERATION
    fed.save(path, passphrase=_passphrase())
    return path


def resume_federation(run: RunFolder, study: Study, data: HospitalData | None = None) -> Federation:
    """The federation 01 made (same session, keys and stored ciphertexts), checked against the study.

    With `data`, every hospital also loads its own rows and then its own keystore again: giving a node
    rows resets its fold ids, which its keystore holds since 02 (a real hospital does the same: its rows
    from its database, its state from its keystore)."""
    root = run.path / FEDERATION
    if not (root / "federation.json").is_file():
        raise DataError(f"run folder {run.path} has no saved federation: run notebooks/01_key_ceremony.ipynb first")
    fed = Federation.load(root, passphrase=_passphrase())
    made_for = ([p.name for p in fed.hospitals], fed.params.name, fed.threshold)
    wanted = (study.hospital_names(), study.params().name, study.key_holders_needed)
    params = study.params()
    if params.upload == AUTO:  # 01 resolved it from the study's plan (mpclr.upload_mode)
        params = params.with_(upload=fed.params.upload)
    if made_for != wanted or fed.params != params:
        fed.close()
        raise DataError(
            f"the federation in {root} was made for hospitals {made_for[0]}, parameter set {made_for[1]!r}, "
            f"threshold {made_for[2]}; study.json asks for {wanted[0]}, {wanted[1]!r}, threshold {wanted[2]}: "
            "rerun notebooks/01_key_ceremony.ipynb (and the steps after it)"
        )
    if data is not None:
        for party, part in zip(fed.hospitals, data.parts):
            party.load_data(part.X, part.y, part.rows)
            party.load(Keystore.open(root / "nodes" / party.name, _passphrase()))
    return fed


def study_manifest(study: Study, data: HospitalData, rotation_steps=(), refine_rounds: int | None = None, *,
                   table_one: bool = True, regression_table: bool = False):
    """What the hospitals agree to answer for the steps 02-05 (mpclr.manifest), agreed in 01 with the
    keys: the scaling decryption, the training's refreshes, the secure evaluation of 04 (with
    `refine_rounds` rounds, the value 04 must be run with), the fold models' decryption of 05, and 01's
    rotation keys; with `table_one` 02b's Table 1 and with `regression_table` 07's pooled GLM, merged in
    (mpclr.stats.report.study_manifests). A function of the hospitals (the Federation's `manifest`): each
    loads its rows and counts its rows per fold with the secret fold key it then keeps for the study. A
    step run again asks for more than was agreed and is refused: rerun 01 (new keys, a new manifest) and
    the steps after it."""
    from ..manifest import study_manifest as make
    from ..pipeline import load_parts, study_plan, summed_fold_sizes
    from ..roles.policy import merge_manifests
    from ..stats.report import study_manifests

    def agree(hospitals):
        load_parts(hospitals, data.parts, own_rows=True)
        plan = study_plan(study, data.pooled.n_samples, data.pooled.n_features,
                          summed_fold_sizes(hospitals, study.folds), rotation_steps,
                          evaluation={} if refine_rounds is None else {"refine_rounds": int(refine_rounds)})
        stats = study_manifests(study, data, hospitals, table=table_one, regression=regression_table)
        return merge_manifests("notebook study", make(plan), *stats)

    return agree


def study_rotation_steps(study: Study, rows: int, extra=()) -> list[int]:
    """The rotations the study's public layout needs (its rotate-and-sums), then any extra ones."""
    from ..training.layout import Layout

    steps = Layout(study.params().slots, rows, study.folds).rotation_steps()
    return steps + [int(s) for s in extra if int(s) not in steps]


def keystore_rows(root) -> list[dict]:
    """One row per node folder of a saved federation: its files, and which of them are secret (with the
    file mode, 0600 for every secret)."""
    from pathlib import Path

    rows = []
    for folder in sorted(Path(root, "nodes").iterdir()):
        files = sorted(p for p in folder.iterdir() if p.is_file())
        secret = [p for p in files if p.name.startswith("secret-")]
        modes = sorted({oct(p.stat().st_mode & 0o777)[2:] for p in secret})
        rows.append(
            {
                "node": folder.name,
                "folder": f"{FEDERATION}/nodes/{folder.name}/ (mode {oct(folder.stat().st_mode & 0o777)[2:]})",
                "files": len(files),
                "MB": round(sum(p.stat().st_size for p in files) / 1e6, 2),
                "secret files": ", ".join(p.name for p in secret) or "none",
                "secret modes": ", ".join(modes) or "-",
            }
        )
    return rows


def save_encrypted(cv, run: RunFolder):
    """The encrypted study (ciphertexts and public facts only) to <run>/encrypted_cv/."""
    path = run.path / ENCRYPTED
    cv.save(path)
    return path


def load_encrypted(run: RunFolder, fed: Federation, *, trained: bool = False):
    """The encrypted study of 02 (with 03's fold models when `trained`), checked to be under the resumed
    federation's key: rerunning 01 makes new keys, and the old ciphertexts are then useless."""
    from ..training.cv import EncryptedCV

    path = run.path / ENCRYPTED
    if not (path / "encrypted_cv.json").is_file():
        raise DataError(
            f"run folder {run.path} has no encrypted study: run notebooks/02_data_and_encryption.ipynb first"
        )
    made_under = run.read_json("data.json").get("public_key_sha256")
    if made_under != _sha256(fed.server.public_key):
        raise DataError(
            "the data were encrypted under another collective key than the saved federation's (01 ran again "
            "after 02): rerun notebooks/02_data_and_encryption.ipynb and the steps after it"
        )
    cv = EncryptedCV.load(path)
    if trained and not cv.weights:
        raise DataError(f"the encrypted study in {path} has no fold models yet: run notebooks/03_training.ipynb first")
    return cv
