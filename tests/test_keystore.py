"""A federation saved to per-node keystores resumes with the same session, keys and ciphertexts; saved
with a passphrase, its secrets are encrypted on disk and a wrong passphrase, an altered or a swapped
file is refused, naming the file."""

import json
import os
import shutil

import numpy as np
import pytest

import mpclr
from mpclr.errors import FormatError, ProtocolError
from mpclr.keystore import Keystore
from mpclr.keystore_crypto import HEADER, KeystoreKey, is_sealed
from mpclr.network import InProcessNetwork
from mpclr.params import get_preset
from mpclr.wire import KIND_REQUEST

from .checks import assert_rotated


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("study")
    fed = mpclr.Federation(manifest="exploration", hospitals=3, threshold=2,
                           preset=get_preset("fast").with_(upload="share-keyed"), rotations=[1])
    x = np.linspace(-1, 1, 16)
    a = fed.hospitals[0].encrypt(x)
    fed.researcher.ensure_keys()
    old_request = fed.server._seal(KIND_REQUEST, "no.such.step", "hospital-1", {})
    fed.hospitals[0].handle(old_request)  # delivered once before the save
    fed.save(path)
    fed.close()
    return path, a, x, old_request


def test_resumed_federation_decrypts_refreshes_and_switches(saved):
    path, a, x, _ = saved
    fed = mpclr.Federation.load(path)
    assert np.abs(fed.decrypt(a, by=[0, 2]) - x).max() < 2e-3  # ciphertext from before the save
    b = fed.server.rotate(fed.hospitals[1].encrypt(x), 1)  # rotation key and public key survived
    rolled = np.roll(np.pad(x, (0, fed.params.slots - x.size)), -1)
    assert_rotated(fed.decrypt(b, by=[1, 2]), rolled, 2e-3)
    assert_rotated(fed.receive(b, by=[0, 1]), rolled, 2e-3)
    r = fed.refresh(fed.server.multiply_plain(b, 2.0), bound_bits=4)
    assert r.level == fed.ctx.top_level
    fed.close()


def test_secrets_are_private_files(saved):
    path, *_ = saved
    node = path / "nodes" / "hospital-2"
    assert os.stat(node).st_mode & 0o777 == 0o700
    secrets = sorted(p.name for p in node.iterdir() if p.name.startswith("secret-"))
    # 2-of-3: the additive share s_i was erased once re-shared; only the threshold share is kept (and the
    # upload secret z_i, which decrypts only this hospital's own uploads: mpclr.protocols.upload)
    assert secrets == ["secret-fold-key.bin", "secret-identity.bin", "secret-threshold-share.bin",
                       "secret-upload-secret.bin"]
    for name in secrets:
        assert os.stat(node / name).st_mode & 0o777 == 0o600
    server_files = {p.name for p in (path / "nodes" / "server").iterdir()}
    assert {n for n in server_files if n.startswith("secret-")} == {"secret-identity.bin"}  # signing key only


def test_loose_permissions_are_refused(saved, tmp_path):
    path, *_ = saved
    ks = Keystore(tmp_path / "k", create=True)
    ks.put_secret("x", b"1")
    os.chmod(tmp_path / "k" / "secret-x.bin", 0o644)
    with pytest.raises(FormatError, match="readable by others"):
        ks.get_secret("x")


def test_replay_protection_survives_a_restart(saved):
    path, _, _, old_request = saved
    fed = mpclr.Federation.load(path)
    reply = fed.hospitals[0].handle(old_request)  # the same request, delivered again after the restart
    with pytest.raises(ProtocolError, match="replayed"):
        fed.server._reply_fields("hospital-1", "no.such.step", reply)
    fed.close()


def test_wrong_keystore_is_refused(saved, tmp_path):
    path, *_ = saved
    fed = mpclr.Federation.load(path)
    with pytest.raises(FormatError, match="belongs to"):
        fed.hospitals[0].load(Keystore(path / "nodes" / "hospital-2"))
    with pytest.raises(mpclr.ParameterError, match="no saved federation"):
        mpclr.Federation.load(tmp_path)
    fed.close()


# --- encryption at rest ---------------------------------------------------------------------------
PASSPHRASE = "correct horse battery staple"


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """The same federation saved twice: without and with a passphrase."""
    plain, enc = tmp_path_factory.mktemp("plain"), tmp_path_factory.mktemp("encrypted")
    fed = mpclr.Federation(manifest="exploration", hospitals=3, threshold=2, preset="fast")
    x = np.linspace(-1, 1, 16)
    a = fed.hospitals[0].encrypt(x)
    fed.researcher.ensure_keys()  # the researcher's own secret key is saved too
    fed.save(plain)
    fed.save(enc, passphrase=PASSPHRASE)
    identity = fed.hospitals[1].identity.export_private()
    fed.close()
    return plain, enc, a, x, identity


def _files(root):
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _windows(blob: bytes, size: int = 64) -> list[bytes]:
    """A few stretches of a secret file's bytes (past the array header) to look for elsewhere."""
    return [blob[i : i + size] for i in (len(blob) // 4, len(blob) // 2, 3 * len(blob) // 4, len(blob) - size)]


def test_encrypted_federation_resumes(both):
    _, enc, a, x, _ = both
    fed = mpclr.Federation.load(enc, passphrase=PASSPHRASE)
    assert np.abs(fed.decrypt(a, by=[0, 2]) - x).max() < 2e-3
    fed.close()
    node = enc / "nodes" / "hospital-2"
    header = json.loads((node / HEADER).read_text())
    assert (header["n"], header["r"], header["p"], header["aead"]) == (2**17, 8, 1, "AES-256-GCM")
    salts = {json.loads((f / HEADER).read_text())["salt"] for f in (enc / "nodes").iterdir()}
    assert len(salts) == 5  # one salt per node's keystore
    for path in (enc / "nodes").rglob("secret-*"):
        assert is_sealed(path.read_bytes()) and os.stat(path).st_mode & 0o777 == 0o600
    with pytest.raises(FormatError, match="encrypted keystore .*passphrase"):
        mpclr.Federation.load(enc)


def test_no_plaintext_secret_bytes_on_disk(both):
    plain, enc, _, _, identity = both
    plain_files, enc_files = _files(plain), _files(enc)
    secrets = [p for p in plain_files if p.name.startswith("secret-")]
    # a 2-of-3 hospital keeps its threshold share only: s_i is erased once it has been re-shared
    assert {p.name for p in secrets} >= {"secret-threshold-share.bin", "secret-identity.bin",
                                         "secret-own-secret-key.bin"}
    for path in secrets:
        for w in _windows(plain_files[path]):
            assert w in plain_files[path]  # the search finds what is there (the unencrypted save)
            assert not any(w in blob for blob in enc_files.values()), f"{path.name} in the clear"
    assert any(identity in blob for blob in plain_files.values())
    assert not any(identity in blob for blob in enc_files.values())


def test_wrong_passphrase_is_refused_naming_the_keystore(both, tmp_path):
    _, enc, *_ = both
    with pytest.raises(FormatError, match=r"wrong passphrase for keystore .*nodes/server"):
        mpclr.Federation.load(enc, passphrase="not the passphrase at all")
    copy = tmp_path / "c"
    shutil.copytree(enc, copy)
    header = copy / "nodes" / "server" / HEADER
    h = json.loads(header.read_text())
    header.write_text(json.dumps({**h, "n": 2**14}))  # a header weakened by someone with disk access
    with pytest.raises(FormatError, match=r"wrong passphrase .*\(or its keystore-encryption.json was altered\)"):
        mpclr.Federation.load(copy, passphrase=PASSPHRASE)


@pytest.mark.parametrize("change", ["flip", "other-node", "other-name", "plaintext"])
def test_altered_or_swapped_secret_file_is_refused(both, tmp_path, change):
    plain, enc, *_ = both
    copy = tmp_path / "c"
    shutil.copytree(enc, copy)
    # the federation is 2-of-3: its hospitals keep their threshold shares (s_i is erased after re-sharing)
    target = copy / "nodes" / "hospital-2" / "secret-threshold-share.bin"
    if change == "flip":
        blob = bytearray(target.read_bytes())
        blob[len(blob) // 2] ^= 1
        target.write_bytes(bytes(blob))
    elif change == "other-node":  # hospital-1's share, encrypted under hospital-1's key
        target.write_bytes((copy / "nodes" / "hospital-1" / "secret-threshold-share.bin").read_bytes())
    elif change == "other-name":  # the same node's identity key, same key, another name
        target.write_bytes((copy / "nodes" / "hospital-2" / "secret-identity.bin").read_bytes())
    else:  # the unencrypted share (a downgrade)
        target.write_bytes((plain / "nodes" / "hospital-2" / "secret-threshold-share.bin").read_bytes())
    expected = "is not encrypted although" if change == "plaintext" else "was altered, moved"
    with pytest.raises(FormatError, match=f"hospital-2/secret-threshold-share.bin {expected}"):
        mpclr.Federation.load(copy, passphrase=PASSPHRASE)


def test_encryption_refuses_unsafe_set_ups(both, tmp_path):
    plain, *_ = both
    with pytest.raises(FormatError, match="already holds unencrypted secrets"):
        KeystoreKey.open(plain / "nodes" / "hospital-1", PASSPHRASE, create=True)
    with pytest.raises(FormatError, match="shorter than 12"):
        KeystoreKey.open(tmp_path / "new", "short", create=True)
    ks = Keystore.open(tmp_path / "k", PASSPHRASE, create=True)
    ks.put_secret("x", b"secret bytes")
    unkeyed = Keystore(tmp_path / "k")  # the same folder opened without its passphrase
    with pytest.raises(FormatError, match="encrypted keystore"):
        unkeyed.put_secret("y", b"would be written in the clear")
    with pytest.raises(FormatError, match="encrypted keystore"):
        unkeyed.get_secret("x")
    assert not (tmp_path / "k" / "secret-y.bin").exists()
    assert Keystore.open(tmp_path / "k", PASSPHRASE).get_secret("x") == b"secret bytes"
def test_a_deleted_secret_is_overwritten_then_gone(tmp_path):
    ks = Keystore(tmp_path / "k", create=True)
    ks.put_secret("x", b"\x17" * 100)
    path = tmp_path / "k" / "secret-x.bin"
    os.link(path, tmp_path / "other-name")  # a second name for the same blocks, to see them after the unlink
    assert ks.delete_secret("x") is True
    assert not path.exists() and not ks.has("x", secret=True)
    assert (tmp_path / "other-name").read_bytes() == bytes(100)  # overwritten in place before the unlink
    assert ks.delete_secret("x") is False  # nothing left to delete


class ResumingNetwork(InProcessNetwork):
    """Every hospital resumed from its keystore for each message and saved after it, as a deployed
    hospital does (mpclr.deploy.hospital): a secret left in the keystore comes back on the next message."""

    def __init__(self, root):
        super().__init__()
        self.root = root

    def _deliver(self, recipient, message):
        node = self._nodes[recipient]
        if not recipient.startswith("hospital"):
            return super()._deliver(recipient, message)
        folder = self.root / recipient
        if folder.exists():
            node.load(Keystore(folder))
        reply = node.handle(message)
        node.save(Keystore(folder, create=True))
        return reply


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """A 2-of-3 federation whose hospitals live in their keystores between messages."""
    root = tmp_path_factory.mktemp("resumed")
    fed = mpclr.Federation(manifest="exploration", hospitals=3, threshold=2,
                           preset=get_preset("fast").with_(upload="share-keyed"), network=ResumingNetwork(root))
    yield fed, root
    fed.close()


def test_spent_protocol_secrets_leave_the_keystore(resumed):
    fed, root = resumed
    for name in ("hospital-1", "hospital-2", "hospital-3"):
        files = sorted(p.name for p in (root / name).iterdir() if p.name.startswith("secret-"))
        # the CRS nonce, the public-key share, the relinearization round's u and the own Shamir point were
        # each used by the round after the one that made them: none of them is kept (the upload secret is the
        # key of this hospital's uploads for the whole study)
        assert files == ["secret-fold-key.bin", "secret-identity.bin", "secret-threshold-share.bin",
                         "secret-upload-secret.bin"], (name, files)
    x = np.linspace(-1, 1, 8)
    assert np.abs(fed.decrypt(fed.hospitals[0].encrypt(x), by=[0, 2]) - x).max() < 2e-3  # the keys work


def test_the_additive_share_is_erased_once_reshared(resumed):
    fed, root = resumed
    for party in fed.hospitals:
        assert party._sk is None and party._tsk is not None  # the object holds no additive share
    # anything that needs s_i now fails clearly, also in a hospital resumed from its keystore
    with pytest.raises(ProtocolError, match="erased its additive key share"):
        fed.hospitals[1]._secret()
    # the key-ceremony steps that use s_i are refused (each is also answered once per session only)
    owners = {"owners": [p.name for p in fed.hospitals]}
    for step, fields in (("cpk.commit", {}), ("rlk.round1", {}), ("shamir.deal", {}), ("upk.share", owners)):
        with pytest.raises(ProtocolError, match="erased its additive key share|already"):
            fed.server.call("hospital-2", step, **fields)
    assert not (root / "hospital-2" / "secret-key-share.bin").exists()


def test_an_n_of_n_hospital_keeps_its_share(tmp_path):
    fed = mpclr.Federation(manifest="exploration", hospitals=2, preset="fast", network=ResumingNetwork(tmp_path))
    files = sorted(p.name for p in (tmp_path / "hospital-1").iterdir() if p.name.startswith("secret-"))
    # s_i is the share every step uses (and the fold key the secret behind the hospital's fold assignment); no
    # upload secret: a federation planning no study uploads with the public key (mpclr.upload_mode)
    assert files == ["secret-fold-key.bin", "secret-identity.bin", "secret-key-share.bin"]
    x = np.linspace(-1, 1, 8)
    assert np.abs(fed.decrypt(fed.hospitals[1].encrypt(x)) - x).max() < 2e-3
    fed.close()


def test_a_keystore_with_a_memo_skips_rewriting_what_it_wrote_unchanged(tmp_path):
    """A hospital's process keeps a memo of what it wrote: the same contents are not sealed and written
    again, but a changed value, or a file someone else replaced or removed, is written."""
    key = KeystoreKey.open(tmp_path, "a long passphrase", create=True)
    memo: dict = {}
    Keystore(tmp_path / "s", create=True, key=key, written=memo).put_secret("share", b"a" * 100)
    path = tmp_path / "s" / "secret-share.bin"
    before = os.stat(path)
    ks = Keystore(tmp_path / "s", key=key, written=memo)  # the next message's keystore
    ks.put_secret("share", b"a" * 100)
    assert os.stat(path).st_ino == before.st_ino and os.stat(path).st_mtime_ns == before.st_mtime_ns
    ks.put_secret("share", b"b" * 100)  # changed: written
    assert ks.get_secret("share") == b"b" * 100
    path.write_bytes(b"tampered")  # replaced behind the process's back: written again, not trusted
    ks.put_secret("share", b"b" * 100)
    assert ks.get_secret("share") == b"b" * 100
    ks.delete_secret("share")
    ks.put_secret("share", b"b" * 100)  # deleted, then the same value again: written
    assert ks.get_secret("share") == b"b" * 100
    ks.put_json("state", {"x": 1})
    os.remove(tmp_path / "s" / "state.json")
    ks.put_json("state", {"x": 1})
    assert ks.get_json("state") == {"x": 1}
