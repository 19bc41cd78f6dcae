"""A federation saved to per-node keystores resumes with the same session, keys and ciphertexts."""

import os

import numpy as np
import pytest

import mpclr
from mpclr.errors import FormatError, ProtocolError
from mpclr.keystore import Keystore
from mpclr.network import InProcessNetwork
from mpclr.wire import KIND_REQUEST

from .checks import assert_rotated


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("study")
    fed = mpclr.Federation(parties=3, threshold=2, preset="fast", rotations=[1])
    x = np.linspace(-1, 1, 16)
    a = fed.parties[0].encrypt(x)
    fed.researcher.ensure_keys()
    old_request = fed.server._seal(KIND_REQUEST, "no.such.step", "hospital-1", {})
    fed.parties[0].handle(old_request)  # delivered once before the save
    fed.save(path)
    fed.close()
    return path, a, x, old_request


def test_resumed_federation_decrypts_refreshes_and_switches(saved):
    path, a, x, _ = saved
    fed = mpclr.Federation.load(path)
    assert np.abs(fed.decrypt(a, by=[0, 2]) - x).max() < 2e-3  # ciphertext from before the save
    b = fed.server.rotate(fed.parties[1].encrypt(x), 1)  # rotation key and public key survived
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
    # 2-of-3: the additive share s_i was erased once re-shared; only the threshold share is kept
    assert secrets == ["secret-identity.bin", "secret-threshold-share.bin"]
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
    reply = fed.parties[0].handle(old_request)  # the same request, delivered again after the restart
    with pytest.raises(ProtocolError, match="replayed"):
        fed.server._reply_fields("hospital-1", "no.such.step", reply)
    fed.close()


def test_wrong_keystore_is_refused(saved, tmp_path):
    path, *_ = saved
    fed = mpclr.Federation.load(path)
    with pytest.raises(FormatError, match="belongs to"):
        fed.parties[0].load(Keystore(path / "nodes" / "hospital-2"))
    with pytest.raises(mpclr.ParameterError, match="no saved federation"):
        mpclr.Federation.load(tmp_path)
    fed.close()


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
    site does (mpclr.deploy.site): a secret left in the keystore comes back on the next message."""

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
    fed = mpclr.Federation(parties=3, threshold=2, preset="fast", network=ResumingNetwork(root))
    yield fed, root
    fed.close()


def test_spent_protocol_secrets_leave_the_keystore(resumed):
    fed, root = resumed
    for name in ("hospital-1", "hospital-2", "hospital-3"):
        files = sorted(p.name for p in (root / name).iterdir() if p.name.startswith("secret-"))
        # the CRS nonce, the public-key share, the relinearization round's u and the own Shamir point were
        # each used by the round after the one that made them: none of them is kept
        assert files == ["secret-identity.bin", "secret-threshold-share.bin"], (name, files)
    x = np.linspace(-1, 1, 8)
    assert np.abs(fed.decrypt(fed.parties[0].encrypt(x), by=[0, 2]) - x).max() < 2e-3  # the keys work


def test_the_additive_share_is_erased_once_reshared(resumed):
    fed, root = resumed
    for party in fed.parties:
        assert party._sk is None and party._tsk is not None  # the object holds no additive share
    # a step that needs s_i (it runs only in the key ceremony, before the re-sharing) is refused clearly,
    # also by a hospital resumed from its keystore
    for step in ("cpk.commit", "rlk.round1", "shamir.deal"):
        with pytest.raises(ProtocolError, match="erased its additive key share"):
            fed.server.call("hospital-2", step)
    assert not (root / "hospital-2" / "secret-key-share.bin").exists()


def test_an_n_of_n_hospital_keeps_its_share(tmp_path):
    fed = mpclr.Federation(parties=2, preset="fast", network=ResumingNetwork(tmp_path))
    files = sorted(p.name for p in (tmp_path / "hospital-1").iterdir() if p.name.startswith("secret-"))
    assert files == ["secret-identity.bin", "secret-key-share.bin"]  # s_i is the share every step uses
    x = np.linspace(-1, 1, 8)
    assert np.abs(fed.decrypt(fed.parties[1].encrypt(x)) - x).max() < 2e-3
    fed.close()
