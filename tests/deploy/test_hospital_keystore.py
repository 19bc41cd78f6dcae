"""A hospital's keystore at rest, driven in process as in test_transport.py (no Flower processes).

Three hospitals join one study and run its key ceremony: hospital-1 and -2 with the default encryption at
rest, hospital-3 opted out (`encrypt = false`), which doubles as the control that the byte search below
finds secrets when they are on disk. Then the IT commands: list, backup (and restore), destroy.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

pytest.importorskip("flwr")

from mpclr.deploy import keystore_admin as ka  # noqa: E402
from mpclr.deploy.__main__ import main  # noqa: E402
from mpclr.deploy.hospital import HospitalConfig, HospitalFailure, HospitalRuntime  # noqa: E402
from mpclr.deploy.server_app import run_deployed_study  # noqa: E402
from mpclr.deploy.supernode import run_hospital  # noqa: E402
from mpclr.keystore import Keystore  # noqa: E402
from mpclr.keystore_crypto import HEADER, PASSPHRASE_ENV, KeystoreKey, is_sealed  # noqa: E402

from .test_transport import PASSPHRASE, FakeGrid, make_data, study_config, write_hospitals  # noqa: E402


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hospitals")
    X, y = make_data(n=90)
    hospitals = write_hospitals(tmp, X, y)
    hospitals[2] = HospitalConfig("hospital-3", hospitals[2].keystore, hospitals[2].data, encrypt=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(PASSPHRASE_ENV, PASSPHRASE)
        res = run_deployed_study(FakeGrid(hospitals), study_config(tmp, threshold=2), study=lambda fed, cfg: {})
    assert res["status"] == "ok"
    return tmp, hospitals, res["session"]


def cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["keystore", *argv])
    return code, out.getvalue(), err.getvalue()


def hospital_toml(tmp: Path, hospital: HospitalConfig) -> Path:
    path = tmp / f"{hospital.name}.toml"
    path.write_text(f'[hospital]\nname = "{hospital.name}"\nkeystore = "{hospital.keystore}"\n'
                    f'data = "{hospital.data}"\n'
                    + ("" if hospital.encrypt else "encrypt = false\n")
                    + '\n[supernode]\nsuperlink = "127.0.0.1:1"\nroot-certificates = "x"\nauth-key = "y"\n')
    return path


def secrets_of(root: Path, session: str, key) -> dict[str, bytes]:
    """The hospital's secrets as the hospital reads them (decrypted when the keystore is encrypted)."""
    out = {}
    for folder in (root / "site", root / "sessions" / session):
        ks = Keystore(folder, key=key)
        for p in folder.glob("secret-*.bin"):
            name = p.name[len("secret-"):-len(".bin")]
            out[f"{folder.name}/{name}"] = ks.get_secret(name)
    return out


def on_disk(root: Path) -> list[bytes]:
    return [p.read_bytes() for p in root.rglob("*") if p.is_file()]


def test_no_secret_bytes_on_disk_at_an_encrypting_hospital(deployed):
    tmp, hospitals, session = deployed
    for hospital in hospitals:
        root = Path(hospital.keystore)
        key = KeystoreKey.open(root, PASSPHRASE) if hospital.encrypt else None
        found = secrets_of(root, session, key)
        # 2-of-3: the additive share s_i is erased once re-shared, the threshold share is what the hospital keeps
        assert {"site/identity", f"{session}/threshold-share"} <= set(found)
        assert f"{session}/key-share" not in found
        assert any(name.startswith(f"{session}/reply-") for name in found)
        disk = on_disk(root)
        for name, secret in found.items():
            stretches = [secret[i : i + 64] for i in (len(secret) // 3, 2 * len(secret) // 3, len(secret) - 64)]
            hits = [any(s in blob for blob in disk) for s in stretches]
            if hospital.encrypt:
                assert not any(hits), f"{hospital.name}: {name} in the clear on disk"
            else:
                assert all(hits), f"{hospital.name}: the search does not find {name}"  # the control
        sealed = [is_sealed(p.read_bytes()) for p in root.rglob("secret-*")]
        assert all(sealed) if hospital.encrypt else not any(sealed)
        assert (root / HEADER).exists() == hospital.encrypt


def test_a_hospital_says_how_to_give_the_passphrase(deployed, tmp_path, monkeypatch):
    tmp, hospitals, _ = deployed
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    fresh = HospitalConfig("hospital-9", str(tmp_path / "keystore"), hospitals[0].data)
    with pytest.raises(HospitalFailure, match=f"no passphrase is available: set {PASSPHRASE_ENV}.*passphrase-file"
                                          ".*from a terminal.*encrypt = false"):
        HospitalRuntime(fresh).identity()
    with pytest.raises(SystemExit, match="hospital-9.*cannot start.*no passphrase is available"):
        run_hospital(hospital_toml(tmp_path, fresh))  # stops before any Flower process starts
    assert not any((tmp_path / "keystore").rglob("secret-*"))
    # an existing encrypted keystore needs its passphrase even with encrypt = false
    with pytest.raises(HospitalFailure, match="no passphrase"):
        config = HospitalConfig("hospital-1", hospitals[0].keystore, hospitals[0].data, encrypt=False)
        HospitalRuntime(config).identity()
    monkeypatch.setenv(PASSPHRASE_ENV, "a wrong passphrase, long enough")
    with pytest.raises(HospitalFailure, match=f"wrong passphrase for keystore {hospitals[0].keystore}"):
        HospitalRuntime(hospitals[0]).identity()
    # a passphrase file, which must be private
    pfile = tmp_path / "passphrase"
    pfile.write_text(PASSPHRASE + "\n")
    os.chmod(pfile, 0o644)
    with_file = HospitalConfig("hospital-1", hospitals[0].keystore, hospitals[0].data, passphrase_file=str(pfile))
    with pytest.raises(HospitalFailure, match="readable or writable by others"):
        HospitalRuntime(with_file).identity()
    os.chmod(pfile, 0o600)
    ident = HospitalRuntime(with_file).identity()  # the file wins over the (wrong) environment
    assert ident.export_private() == secrets_of(Path(hospitals[0].keystore), deployed[2],
                                                KeystoreKey.open(hospitals[0].keystore, PASSPHRASE))["site/identity"]
    # the opted-out keystore holds plaintext secrets: turning encryption on is refused, not half done
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    with pytest.raises(HospitalFailure, match="already holds unencrypted secrets.*keep encrypt = false"):
        HospitalRuntime(HospitalConfig("hospital-3", hospitals[2].keystore, hospitals[2].data)).identity()


def test_list_describes_every_file(deployed, tmp_path):
    tmp, hospitals, session = deployed
    code, out, _ = cli("list", "--config", str(hospital_toml(tmp_path, hospitals[0])))
    assert code == 0
    assert "secrets encrypted at rest (scrypt n=131072 r=8 p=1, AES-256-GCM)" in out
    assert f"session {session}: joined" in out and "2-of-3" in out
    assert "the hospital's Shamir share of the collective secret key" in out
    inv = ka.inventory(hospitals[0].keystore)
    files = [(e["folder"], f) for e in inv["folders"] for f in e["files"]]
    assert len(files) >= 10 and inv["plaintext_secrets"] == []
    for folder, f in files:
        known = ka.describe(f["name"])
        assert known is not None, f"{folder}/{f['name']} is not in keystore_admin.FILES"
        assert known[0] == f["secret"], f"{f['name']}: the table says secret={known[0]}"
        assert f["encrypted"] == f["secret"]
        assert f["bytes"] == (Path(hospitals[0].keystore) / folder / f["name"]).stat().st_size
    code, out, _ = cli("list", hospitals[2].keystore)
    assert "NOT ENCRYPTED at rest" in out and "PLAINTEXT" in out
    assert json.loads(cli("list", "--json", hospitals[2].keystore)[1])["plaintext_secrets"]


def test_backup_keeps_files_encrypted_and_restores_with_the_passphrase(deployed, tmp_path):
    _, hospitals, session = deployed
    root = Path(hospitals[0].keystore)
    archive = tmp_path / "backup.tar"
    code, out, _ = cli("backup", "--config", str(hospital_toml(tmp_path, hospitals[0])), "--output", str(archive))
    assert code == 0 and "a restored copy needs the keystore's passphrase" in out
    assert os.stat(archive).st_mode & 0o777 == 0o600
    with tarfile.open(archive) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
        restored = tmp_path / "restored"
        tar.extractall(restored, filter="data")
    assert set(members) == {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert all(is_sealed(blob) for name, blob in members.items() if Path(name).name.startswith("secret-"))
    original = secrets_of(root, session, KeystoreKey.open(root, PASSPHRASE))
    assert secrets_of(restored, session, KeystoreKey.open(restored, PASSPHRASE)) == original
    with pytest.raises(Exception, match="wrong passphrase"):
        KeystoreKey.open(restored, "not the passphrase of this keystore")
    code, _, err = cli("backup", str(root), "--output", str(root / "inside.tar"))
    assert code == 2 and "inside the keystore" in err
    code, out, _ = cli("backup", hospitals[2].keystore, "--output", str(tmp_path / "plain.tar"))
    assert "NOT ENCRYPTED" in out


def test_destroy_overwrites_secrets_then_removes(deployed, tmp_path):
    _, hospitals, session = deployed
    root = tmp_path / "keystore"
    shutil.copytree(hospitals[0].keystore, root)
    share = root / "sessions" / session / "secret-threshold-share.bin"
    before = share.read_bytes()
    os.link(share, tmp_path / "second-name")  # a second name for the same file: shows what destroy wrote
    code, out, err = cli("destroy", str(root), "--session", session[:8])
    assert code == 2 and "nothing removed" in err and share.exists()
    code, out, _ = cli("destroy", str(root), "--session", session[:8], "--yes")
    assert code == 0 and "secret files overwritten" in out
    assert not (root / "sessions" / session).exists() and (root / "site" / "secret-identity.bin").exists()
    after = (tmp_path / "second-name").read_bytes()
    assert len(after) == len(before) and after != before and after[:9] != before[:9]
    code, _, err = cli("destroy", str(root), "--session", "0123abcd", "--yes")
    assert code == 2 and "no matching session" in err
    code, out, _ = cli("destroy", str(root), "--yes")
    assert code == 0 and not root.exists()


def test_an_altered_secret_stops_the_message_naming_the_file(deployed, tmp_path, monkeypatch):
    _, hospitals, session = deployed
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    root = tmp_path / "keystore"
    shutil.copytree(hospitals[0].keystore, root)
    share = root / "sessions" / session / "secret-threshold-share.bin"
    blob = bytearray(share.read_bytes())
    blob[100] ^= 0x80
    share.write_bytes(bytes(blob))
    runtime = HospitalRuntime(HospitalConfig("hospital-1", str(root), hospitals[0].data))
    with pytest.raises(HospitalFailure, match=f"cannot be read: {share} was altered"):
        runtime.handle("protocol", session, b"any request: the state is loaded before it is read")
